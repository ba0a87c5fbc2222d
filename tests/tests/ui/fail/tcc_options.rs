use sagaflow::step;

pub struct Airline;
pub struct Trip;
pub struct SeatHold;

async fn confirm_seat(_airline: &Airline, _trip: &Trip, _hold: &SeatHold) -> Result<(), String> {
    Ok(())
}

async fn release_seat(_airline: &Airline, _trip: &Trip, _hold: Option<&SeatHold>) -> Result<(), String> {
    Ok(())
}

async fn undo(_airline: &Airline, _trip: &Trip, _hold: &SeatHold) -> Result<(), String> {
    Ok(())
}

// A confirm is retried until it succeeds: no count.
#[step(tcc(confirm = confirm_seat, cancel = release_seat), confirm_retry(max = 3, backoff = "10ms"))]
async fn hold_seat(airline: &Airline, trip: &Trip) -> Result<SeatHold, String> {
    let _ = (airline, trip);
    Ok(SeatHold)
}

// A TCC step is undone by its cancel.
#[step(tcc(confirm = confirm_seat, cancel = release_seat), compensate_retry = 2)]
async fn hold_other(airline: &Airline, trip: &Trip) -> Result<SeatHold, String> {
    let _ = (airline, trip);
    Ok(SeatHold)
}

// A compensatable step has no cancel.
#[step(compensate = undo, cancel_timeout = "2s")]
async fn book(airline: &Airline, trip: &Trip) -> Result<SeatHold, String> {
    let _ = (airline, trip);
    Ok(SeatHold)
}


fn main() {}
