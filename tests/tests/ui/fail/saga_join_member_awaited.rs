use sagaflow::{saga, step};

pub struct Airline;
pub struct Hotels;
pub struct Trip {
    pub id: u32,
}

#[step(compensate = cancel_flight)]
async fn book_flight(airline: &Airline, trip: &Trip) -> Result<u64, String> {
    let _ = (airline, trip);
    Ok(100)
}

async fn cancel_flight(_airline: &Airline, _trip: &Trip, _price: &u64) -> Result<(), String> {
    Ok(())
}

#[step(compensate = cancel_hotel)]
async fn book_hotel(hotels: &Hotels, trip: &Trip) -> Result<u64, String> {
    let _ = (hotels, trip);
    Ok(80)
}

async fn cancel_hotel(_hotels: &Hotels, _trip: &Trip, _price: &u64) -> Result<(), String> {
    Ok(())
}

// A member written with `.await?`, as a step on its own would be.
#[saga]
async fn book_trip(airline: &Airline, hotels: &Hotels, trip: Trip) -> Result<u64, String> {
    let (flight, hotel) = sagaflow::join!(book_flight(airline, &trip).await?, book_hotel(hotels, &trip))?;
    Ok(flight + hotel)
}

fn main() {}
