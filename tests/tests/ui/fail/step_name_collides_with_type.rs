use sagaflow::step;

pub struct Trip;
pub struct Booking;

// A step named like a type in the same module.
#[allow(non_camel_case_types)]
pub struct book {}

#[step(compensate = cancel)]
async fn book(trip: &Trip) -> Result<Booking, String> {
    let _ = trip;
    Ok(Booking)
}

async fn cancel(_trip: &Trip, _booking: &Booking) -> Result<(), String> {
    Ok(())
}

fn main() {}
