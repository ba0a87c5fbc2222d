use sagaflow::step;

pub struct Trip;
pub struct Booking;

// `retry(3)` instead of `retry = 3`.
#[step(compensate = cancel, retry(3))]
async fn book(trip: &Trip) -> Result<Booking, String> {
    let _ = trip;
    Ok(Booking)
}

async fn cancel(_trip: &Trip, _booking: &Booking) -> Result<(), String> {
    Ok(())
}

fn main() {}
