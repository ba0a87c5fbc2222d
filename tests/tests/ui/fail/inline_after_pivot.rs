use sagaflow::{saga, step};

pub struct Bank;

#[step(pivot)]
async fn charge(_bank: &Bank) -> Result<u64, String> {
    Ok(1)
}

#[saga]
async fn pay(bank: &Bank) -> Result<u64, String> {
    let paid = charge(bank).await?;
    // A compensatable inline step after the pivot.
    let _ = sagaflow::inline!(note, compensate = async |_out| Ok::<(), String>(()), async {
        let _ = bank;
        Ok(())
    })?;
    Ok(paid)
}

fn main() {}
