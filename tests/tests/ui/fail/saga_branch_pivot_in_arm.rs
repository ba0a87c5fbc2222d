use sagaflow::{saga, step};

pub struct Carrier {
    pub region: u8,
}
pub struct Order {
    pub express: bool,
    pub region: Region,
}
#[derive(Clone, Copy)]
pub enum Region {
    Eu,
    Us(u8),
}

#[step(compensate = cancel)]
async fn ship(carrier: &Carrier, order: &Order) -> Result<u64, String> {
    let _ = (carrier, order);
    Ok(1)
}
async fn cancel(_carrier: &Carrier, _order: &Order, _n: &u64) -> Result<(), String> {
    Ok(())
}
#[step(read_only)]
async fn check(carrier: &Carrier, order: &Order) -> Result<bool, String> {
    let _ = (carrier, order);
    Ok(true)
}
#[step(pivot)]
async fn charge(carrier: &Carrier, amount: u64) -> Result<u64, String> {
    let _ = carrier;
    Ok(amount)
}

// A pivot inside an arm: the other arm has no point of no return.
#[saga]
async fn send(carrier: &Carrier, order: Order) -> Result<u64, String> {
    let n = ship(carrier, &order).await?;
    if order.express {
        charge(carrier, n).await?;
    }
    Ok(n)
}

fn main() {}
