use sagaflow::step;

pub struct Trip;
pub struct Booking;

// A negative timeout.
#[step(compensate = cancel, timeout = "-1s")]
async fn book(trip: &Trip) -> Result<Booking, String> {
    let _ = trip;
    Ok(Booking)
}

async fn cancel(_trip: &Trip, _booking: &Booking) -> Result<(), String> {
    Ok(())
}

fn main() {}
