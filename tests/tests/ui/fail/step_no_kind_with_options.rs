use sagaflow::step;

struct Trip;
struct Booking;

#[step(retry = 3, timeout = "2s")]
async fn book_flight(trip: &Trip) -> Result<Booking, String> {
    let _ = trip;
    Ok(Booking)
}

fn main() {}
