use sagaflow::step;

struct Airline;
struct Trip;
struct Booking;
struct Refund;

#[step(compensate = cancel_flight)]
async fn book_flight(airline: &Airline, trip: &Trip) -> Result<Booking, String> {
    let _ = (airline, trip);
    Ok(Booking)
}

async fn cancel_flight(_airline: &Airline, _trip: &Trip, _refund: &Refund) -> Result<(), String> {
    Ok(())
}

fn main() {}
