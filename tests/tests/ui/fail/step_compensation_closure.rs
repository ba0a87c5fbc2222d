use sagaflow::step;

pub struct Trip;
pub struct Booking;

// A closure as the compensation.
#[step(compensate = |_trip: &Trip, _b: &Booking| async { Ok::<(), String>(()) })]
async fn book(trip: &Trip) -> Result<Booking, String> {
    let _ = trip;
    Ok(Booking)
}

fn main() {}
