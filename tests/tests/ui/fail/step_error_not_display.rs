use sagaflow::step;

pub struct Trip;
pub struct Booking;

// A step whose error type does not implement `Display`.
#[derive(Debug)]
pub struct BookError;

#[step(compensate = cancel)]
async fn book(trip: &Trip) -> Result<Booking, BookError> {
    let _ = trip;
    Ok(Booking)
}

async fn cancel(_trip: &Trip, _booking: &Booking) -> Result<(), BookError> {
    Ok(())
}

fn main() {}
