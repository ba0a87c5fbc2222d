//! Every statement form of a saga body: named, typed, ignored and bare step
//! calls, typed locals between them, and a final `Ok(..)` that moves outputs.

use sagaflow::{saga, step};

pub struct Account {
    pub id: u32,
}

#[step(read_only)]
async fn balance(account: &Account) -> Result<u64, String> {
    Ok(u64::from(account.id) * 100)
}

#[step(compensate = unreserve)]
async fn reserve(account: &Account, amount: u64) -> Result<String, String> {
    Ok(format!("hold-{}-{amount}", account.id))
}

async fn unreserve(_account: &Account, _amount: u64, _hold: &String) -> Result<(), String> {
    Ok(())
}

#[step(retriable)]
async fn audit(message: &str) -> Result<(), String> {
    let _ = message;
    Ok(())
}

#[step(read_only)]
async fn ping() -> Result<(), String> {
    Ok(())
}

#[saga]
async fn transfer(account: &Account, fee: u64) -> Result<(String, u64), String> {
    ping().await?;
    let available: u64 = balance(account).await?;
    let amount: u64 = available / 2 + fee;
    let label: String = format!("transfer of {amount}");
    let hold = reserve(account, amount).await?;
    let _ = audit(&label).await?;
    audit(&hold).await?;
    Ok((hold, amount))
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (hold, amount) = rt.block_on(transfer(&Account { id: 7 }, 5)).unwrap();
    assert_eq!(amount, 355);
    assert_eq!(hold, "hold-7-355");
}
