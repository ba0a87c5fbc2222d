use sagaflow::step;

pub struct Trip;
pub struct Booking;

// A `const` step.
#[step(read_only)]
const async fn book(trip: &Trip) -> Result<u32, String> {
    let _ = trip;
    Ok(1)
}

fn main() {}
