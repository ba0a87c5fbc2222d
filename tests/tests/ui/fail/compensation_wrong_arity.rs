use sagaflow::step;

struct Airline;
struct Trip;
struct Booking;

#[step(compensate = cancel_flight)]
async fn book_flight(airline: &Airline, trip: &Trip) -> Result<Booking, String> {
    let _ = (airline, trip);
    Ok(Booking)
}

// Forgot the `trip` parameter: a compensation takes all of its step's
// arguments, then the step's output.
async fn cancel_flight(_airline: &Airline, _booking: &Booking) -> Result<(), String> {
    Ok(())
}

fn main() {}
