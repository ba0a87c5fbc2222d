use sagaflow::{saga, step};

pub struct Order<'a> {
    pub item: &'a str,
}

#[step(compensate = release)]
async fn reserve(item: &str) -> Result<u64, String> {
    Ok(item.len() as u64)
}

async fn release(_: &str, _: &u64) -> Result<(), String> {
    Ok(())
}

// Owned inputs are data that a durable saga persists: they cannot borrow.
#[saga]
async fn buy<'a>(order: Order<'a>, note: Option<&str>) -> Result<u64, String> {
    let n = reserve(note.unwrap_or(order.item)).await?;
    Ok(n)
}

fn main() {}
