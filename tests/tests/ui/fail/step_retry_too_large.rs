use sagaflow::step;

pub struct Trip;
pub struct Booking;

// A retry count that does not fit in `u32`.
#[step(compensate = cancel, retry = 4294967296)]
async fn book(trip: &Trip) -> Result<Booking, String> {
    let _ = trip;
    Ok(Booking)
}

async fn cancel(_trip: &Trip, _booking: &Booking) -> Result<(), String> {
    Ok(())
}

fn main() {}
