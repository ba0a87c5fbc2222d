use sagaflow::{saga, step};

pub struct Airline;
pub struct Hotels;
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

#[step(compensate = cancel_hotel)]
async fn book_hotel(hotels: &Hotels, trip: &Trip) -> Result<Booking, String> {
    let _ = (hotels, trip);
    Ok(Booking { price: 80 })
}

async fn cancel_hotel(_hotels: &Hotels, _trip: &Trip, _booking: &Booking) -> Result<(), String> {
    Ok(())
}

// Booking the flight and the hotel at once, as one would outside a saga.
#[saga]
async fn book_trip(airline: &Airline, hotels: &Hotels, trip: Trip) -> Result<u64, String> {
    let (flight, hotel) = tokio::try_join!(book_flight(airline, &trip), book_hotel(hotels, &trip))?;
    Ok(flight.price + hotel.price)
}

fn main() {}
