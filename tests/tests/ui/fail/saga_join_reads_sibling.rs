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

#[step(read_only)]
async fn hotel_for(hotels: &Hotels, flight: &u64) -> Result<u64, String> {
    let _ = hotels;
    Ok(*flight)
}

// A member reading the output of another member of its group.
#[saga]
async fn book_trip(airline: &Airline, hotels: &Hotels, trip: Trip) -> Result<u64, String> {
    let (flight, hotel) = sagaflow::join!(book_flight(airline, &trip), hotel_for(hotels, &flight))?;
    Ok(flight + hotel)
}

fn main() {}
