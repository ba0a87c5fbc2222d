use sagaflow::step;

pub struct Trip;
pub struct Booking;

// `#[step]` on a trait method declaration.
pub trait Airline {
    #[step(read_only)]
    async fn quote(&self, trip: &Trip) -> Result<u64, String>;
}

fn main() {}
