use sagaflow::step;

pub struct Trip;
pub struct Booking;

// A step whose output is `impl Trait`.
#[step(read_only)]
async fn quote(trip: &Trip) -> Result<impl std::fmt::Display, String> {
    let _ = trip;
    Ok(5u32)
}

fn main() {}
