use sagaflow::{saga, step};

pub struct Airline;
pub struct Trip {
    pub id: u32,
    pub code: String,
}
pub struct Booking {
    pub price: u64,
    pub seat: String,
}

#[step(compensate = cancel_flight)]
async fn book_flight(airline: &Airline, trip: &Trip) -> Result<Booking, String> {
    let _ = (airline, trip);
    Ok(Booking { price: 100, seat: String::new() })
}

async fn cancel_flight(_airline: &Airline, _trip: &Trip, _booking: &Booking) -> Result<(), String> {
    Ok(())
}

#[step(pivot)]
async fn charge(airline: &Airline, amount: u64) -> Result<u64, String> {
    let _ = airline;
    Ok(amount)
}

// A step's output bound with the wrong type.
#[saga]
async fn book_trip(airline: &Airline, trip: Trip) -> Result<u64, String> {
    let flight: u64 = book_flight(airline, &trip).await?;
    Ok(flight)
}

fn main() {}
