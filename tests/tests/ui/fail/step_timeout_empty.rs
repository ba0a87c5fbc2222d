use sagaflow::step;

pub struct Trip;
pub struct Booking;

// An empty timeout string.
#[step(compensate = cancel, timeout = "")]
async fn book(trip: &Trip) -> Result<Booking, String> {
    let _ = trip;
    Ok(Booking)
}

async fn cancel(_trip: &Trip, _booking: &Booking) -> Result<(), String> {
    Ok(())
}

fn main() {}
