use sagaflow::step;

pub struct Airline;
pub struct Trip;
pub struct SeatHold;

// The confirm takes the hold as an `Option`, the cancel takes it by reference.
async fn confirm_seat(_airline: &Airline, _trip: &Trip, _hold: Option<&SeatHold>) -> Result<(), String> {
    Ok(())
}

async fn release_seat(_airline: &Airline, _trip: &Trip, _hold: &SeatHold) -> Result<(), String> {
    Ok(())
}

#[step(tcc(confirm = confirm_seat, cancel = release_seat))]
async fn hold_seat(airline: &Airline, trip: &Trip) -> Result<SeatHold, String> {
    let _ = (airline, trip);
    Ok(SeatHold)
}

fn main() {}
