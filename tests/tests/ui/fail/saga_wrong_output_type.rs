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

pub struct Hotels;
pub struct Room;

#[step(read_only)]
async fn find_room(hotels: &Hotels, flight: &Booking) -> Result<Room, String> {
    let _ = (hotels, flight);
    Ok(Room)
}

#[saga]
async fn book_trip(airline: &Airline, hotels: &Hotels, trip: Trip) -> Result<u64, String> {
    let flight = book_flight(airline, &trip).await?;
    let room = find_room(hotels, &flight).await?;
    let _ = find_room(hotels, &room).await?;
    Ok(flight.price)
}

fn main() {}
