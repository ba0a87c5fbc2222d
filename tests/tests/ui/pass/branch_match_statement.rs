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

// A step per case, chosen by a `match` statement on an input.
#[saga]
async fn book_trip(airline: &Airline, hotels: &Hotels, trip: Trip) -> Result<u64, String> {
    match trip.id {
        0 => book_flight(airline, &trip).await?,
        _ => book_hotel(hotels, &trip).await?,
    };
    Ok(1)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(rt.block_on(book_trip(&Airline, &Hotels, Trip { id: 0 })).unwrap(), 1);
}
