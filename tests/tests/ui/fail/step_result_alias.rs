use sagaflow::step;

pub struct Trip;
pub struct Booking;

// A step returning through an alias not named `Result`.
pub type Outcome<T> = Result<T, String>;

#[step(compensate = cancel)]
async fn book(trip: &Trip) -> Outcome<Booking> {
    let _ = trip;
    Ok(Booking)
}

async fn cancel(_trip: &Trip, _booking: &Booking) -> Result<(), String> {
    Ok(())
}

fn main() {}
