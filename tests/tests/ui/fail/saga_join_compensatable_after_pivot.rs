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

#[step(pivot)]
async fn charge_card(trip: &Trip) -> Result<u64, String> {
    Ok(u64::from(trip.id))
}

// A compensatable member in a group after the pivot.
#[saga]
async fn book_trip(airline: &Airline, hotels: &Hotels, trip: Trip) -> Result<u64, String> {
    let paid = charge_card(&trip).await?;
    let (flight, hotel) = sagaflow::join!(book_flight(airline, &trip), book_hotel(hotels, &trip))?;
    Ok(paid + flight + hotel)
}

fn main() {}
