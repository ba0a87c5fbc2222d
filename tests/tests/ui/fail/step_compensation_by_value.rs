use sagaflow::step;

pub struct Trip;
pub struct Booking;

// A compensation that takes the step's output by value instead of by reference.
#[step(compensate = release)]
async fn reserve(trip: &Trip) -> Result<u64, String> {
    let _ = trip;
    Ok(1)
}

async fn release(_trip: &Trip, _hold: u64) -> Result<(), String> {
    Ok(())
}

fn main() {}
