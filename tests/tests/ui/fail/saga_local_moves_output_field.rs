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

// A typed local that moves a field out of a step output that the compensation still needs.
#[step(read_only)]
async fn check_seat(seat: &str) -> Result<u64, String> {
    Ok(seat.len() as u64)
}

#[saga]
async fn book_trip(airline: &Airline, trip: Trip) -> Result<u64, String> {
    let flight = book_flight(airline, &trip).await?;
    let seat: String = flight.seat;
    let n = check_seat(&seat).await?;
    let paid = charge(airline, n).await?;
    Ok(paid)
}

fn main() {}
