use sagaflow::{saga, step};

pub struct Trip;
pub struct Booking;

// An `unsafe` step: accepted by `#[step]`, but no saga can call it.
#[step(compensate = cancel)]
async unsafe fn book(trip: &Trip) -> Result<Booking, String> {
    let _ = trip;
    Ok(Booking)
}

async fn cancel(_trip: &Trip, _booking: &Booking) -> Result<(), String> {
    Ok(())
}

#[saga]
async fn trip(trip: Trip) -> Result<(), String> {
    let _booking = book(&trip).await?;
    Ok(())
}

fn main() {}
