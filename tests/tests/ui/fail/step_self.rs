use sagaflow::step;

pub struct Trip;
pub struct Booking;

// A step written as a method.
pub struct Airline;

impl Airline {
    #[step(compensate = cancel)]
    async fn book(&self, trip: &Trip) -> Result<Booking, String> {
        let _ = trip;
        Ok(Booking)
    }
}

async fn cancel(_trip: &Trip, _booking: &Booking) -> Result<(), String> {
    Ok(())
}

fn main() {}
