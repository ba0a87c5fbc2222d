use sagaflow::step;

struct Trip;
struct Booking;

#[step(compensate = cancel_flight, retries = 3)]
async fn book_flight(trip: &Trip) -> Result<Booking, String> {
    let _ = trip;
    Ok(Booking)
}

async fn cancel_flight(_trip: &Trip, _booking: &Booking) -> Result<(), String> {
    Ok(())
}

fn main() {}
