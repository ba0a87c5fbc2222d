use sagaflow::step;

pub struct Trip;
pub struct Booking;

// An `extern "C"` step.
#[step(read_only)]
async extern "C" fn book(trip: &Trip) -> Result<u32, String> {
    let _ = trip;
    Ok(1)
}

fn main() {}
