use sagaflow::step;

struct Ledger {
    entries: Vec<u64>,
}

#[step(retriable)]
async fn record_payment(ledger: &mut Ledger, amount: u64) -> Result<(), String> {
    ledger.entries.push(amount);
    Ok(())
}

fn main() {}
