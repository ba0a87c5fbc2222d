use sagaflow::step;

pub struct Trip;
pub struct Booking;

// A kind with the wrong case.
#[step(ReadOnly)]
async fn book(trip: &Trip) -> Result<u32, String> {
    let _ = trip;
    Ok(1)
}

fn main() {}
