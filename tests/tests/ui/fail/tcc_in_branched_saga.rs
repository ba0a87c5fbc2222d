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

#[step(compensate = refund)]
async fn charge_card(trip: &Trip) -> Result<u64, String> {
    let _ = trip;
    Ok(100)
}

async fn refund(_trip: &Trip, _paid: &u64) -> Result<(), String> {
    Ok(())
}

pub struct Order {
    pub seat: bool,
}

#[saga]
async fn book_trip(airline: &Airline, trip: Trip, order: Order) -> Result<u64, String> {
    let paid = charge_card(&trip).await?;
    if order.seat {
        hold_seat(airline, &trip).await?;
    }
    Ok(paid)
}

fn main() {}
