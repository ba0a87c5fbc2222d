use sagaflow::step;

pub struct Trip;
pub struct Booking;

// A timeout too long to represent.
#[step(compensate = cancel, timeout = "1h 99999999999999999999d")]
async fn book(trip: &Trip) -> Result<Booking, String> {
    let _ = trip;
    Ok(Booking)
}

async fn cancel(_trip: &Trip, _booking: &Booking) -> Result<(), String> {
    Ok(())
}

fn main() {}
