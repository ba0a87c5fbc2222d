use sagaflow::{saga, step};

pub struct Bank;
pub struct Order {
    pub customer: String,
    pub total: u64,
}

// Takes the customer by value, as a newcomer writes first.
#[step(compensate = refund)]
async fn charge(bank: &Bank, customer: String, total: u64) -> Result<u64, String> {
    let _ = (bank, customer);
    Ok(total)
}

async fn refund(_bank: &Bank, _customer: String, _total: u64, _paid: &u64) -> Result<(), String> {
    Ok(())
}

#[saga]
async fn checkout(bank: &Bank, order: Order) -> Result<u64, String> {
    let paid = charge(bank, order.customer, order.total).await?;
    Ok(paid)
}

fn main() {}
