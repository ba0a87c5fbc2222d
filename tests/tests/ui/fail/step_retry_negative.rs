use sagaflow::step;

pub struct Trip;
pub struct Booking;

// A negative retry count.
#[step(compensate = cancel, retry = -1)]
async fn book(trip: &Trip) -> Result<Booking, String> {
    let _ = trip;
    Ok(Booking)
}

async fn cancel(_trip: &Trip, _booking: &Booking) -> Result<(), String> {
    Ok(())
}

fn main() {}
