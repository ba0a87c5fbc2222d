use sagaflow::{saga, step};

pub struct Airline;
pub struct Trip;
pub struct SeatHold;

async fn confirm_seat(_airline: &Airline, _trip: &Trip, _hold: &SeatHold) -> Result<(), String> {
    Ok(())
}

async fn release_seat(_airline: &Airline, _trip: &Trip, _hold: Option<&SeatHold>) -> Result<(), String> {
    Ok(())
}

#[step(tcc(confirm = confirm_seat, cancel = release_seat))]
async fn hold_seat(airline: &Airline, trip: &Trip) -> Result<SeatHold, String> {
    let _ = (airline, trip);
    Ok(SeatHold)
}

#[step(read_only)]
async fn look_up(trip: &Trip) -> Result<u64, String> {
    let _ = trip;
    Ok(100)
}

#[saga]
async fn book_trip(airline: &Airline, trip: Trip) -> Result<u64, String> {
    let (_hold, price) = sagaflow::join!(hold_seat(airline, &trip), look_up(&trip))?;
    Ok(price)
}

fn main() {}
