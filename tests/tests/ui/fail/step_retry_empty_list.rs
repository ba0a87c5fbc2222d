use sagaflow::step;

pub struct Trip;
pub struct Booking;

// `retry()` with nothing in it.
#[step(compensate = cancel, retry())]
async fn book(trip: &Trip) -> Result<Booking, String> {
    let _ = trip;
    Ok(Booking)
}

async fn cancel(_trip: &Trip, _booking: &Booking) -> Result<(), String> {
    Ok(())
}

fn main() {}
