use sagaflow::step;

struct Trip;
struct Booking;

#[step(compensate)]
async fn book_flight(trip: &Trip) -> Result<Booking, String> {
    let _ = trip;
    Ok(Booking)
}

fn main() {}
