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

// A typed local that borrows an input and is passed to a step.
#[step(compensate = release_seat)]
async fn hold_seat(code: &str) -> Result<u32, String> {
    Ok(code.len() as u32)
}

async fn release_seat(_code: &str, _seat: &u32) -> Result<(), String> {
    Ok(())
}

#[saga]
async fn book_trip(airline: &Airline, trip: Trip) -> Result<u64, String> {
    let code: &str = &trip.code;
    let seat = hold_seat(code).await?;
    let paid = charge(airline, u64::from(seat)).await?;
    Ok(paid)
}

fn main() {}
