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

#[step(pivot)]
async fn charge_card(trip: &Trip) -> Result<u64, String> {
    let _ = trip;
    Ok(100)
}

#[saga]
async fn book_trip(airline: &Airline, trip: Trip) -> Result<u64, String> {
    let paid = charge_card(&trip).await?;
    let _hold = hold_seat(airline, &trip).await?;
    Ok(paid)
}

fn main() {}
