use sagaflow::{saga, step};

pub struct Order {
    pub id: u32,
}

#[step(read_only)]
async fn check_order(order: &Order) -> Result<u32, String> {
    Ok(order.id)
}

// A saga awaits another saga's function as if it were a step.
#[saga]
async fn validate(order: Order) -> Result<u32, String> {
    let id = check_order(&order).await?;
    Ok(id)
}

#[saga]
async fn place(order: Order) -> Result<u32, String> {
    let id = check_order(&order).await?;
    let _ = validate(order).await?;
    Ok(id)
}

fn main() {}
