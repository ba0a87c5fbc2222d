use sagaflow::step;

pub struct Trip;
pub struct Booking;

// `#[step]` with no arguments.
#[step]
async fn book(trip: &Trip) -> Result<Booking, String> {
    let _ = trip;
    Ok(Booking)
}

fn main() {}
