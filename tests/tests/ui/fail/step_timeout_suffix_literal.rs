use sagaflow::step;

pub struct Trip;
pub struct Booking;

// A duration written as a suffixed number literal.
#[step(compensate = cancel, retry(max = 3, backoff = 10ms))]
async fn book(trip: &Trip) -> Result<Booking, String> {
    let _ = trip;
    Ok(Booking)
}

async fn cancel(_trip: &Trip, _booking: &Booking) -> Result<(), String> {
    Ok(())
}

fn main() {}
