use sagaflow::step;

pub struct Trip;
pub struct Booking;

// A `&mut` hidden inside another type.
pub struct Ledger;

#[step(retriable)]
async fn record(ledger: Option<&mut Ledger>, amount: u64) -> Result<(), String> {
    let _ = (ledger, amount);
    Ok(())
}

fn main() {}
