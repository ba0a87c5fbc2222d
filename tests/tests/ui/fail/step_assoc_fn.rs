use sagaflow::step;

pub struct Trip;
pub struct Booking;

// A step declared as an associated function (no `self`) in an `impl` block.
pub struct Airline;

impl Airline {
    #[step(compensate = cancel)]
    async fn book(trip: &Trip) -> Result<Booking, String> {
        let _ = trip;
        Ok(Booking)
    }
}

async fn cancel(_trip: &Trip, _booking: &Booking) -> Result<(), String> {
    Ok(())
}

fn main() {}
