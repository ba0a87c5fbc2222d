use sagaflow::{saga, step};

pub struct Airline;
pub struct Trip {
    pub id: u32,
}
pub struct Booking {
    pub price: u64,
}

#[step(compensate = cancel_flight)]
async fn book_flight(airline: &Airline, trip: &Trip) -> Result<Booking, String> {
    let _ = (airline, trip);
    Ok(Booking { price: 100 })
}

async fn cancel_flight(_airline: &Airline, _trip: &Trip, _booking: &Booking) -> Result<(), String> {
    Ok(())
}

#[saga]
async fn book_trip(airline: &Airline, trip: Trip) {
    book_flight(airline, &trip).await?;
}

fn main() {}
