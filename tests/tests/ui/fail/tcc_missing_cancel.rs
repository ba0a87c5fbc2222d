use sagaflow::step;

pub struct Airline;
pub struct SeatHold;

async fn confirm_seat(_airline: &Airline, _hold: &SeatHold) -> Result<(), String> {
    Ok(())
}

#[step(tcc(confirm = confirm_seat))]
async fn hold_seat(airline: &Airline) -> Result<SeatHold, String> {
    let _ = airline;
    Ok(SeatHold)
}

// An unknown key, a value that is not a function, and `tcc` without its list.
#[step(tcc(confirm = confirm_seat, undo = confirm_seat))]
async fn hold_again(airline: &Airline) -> Result<SeatHold, String> {
    let _ = airline;
    Ok(SeatHold)
}

#[step(tcc(confirm = "confirm_seat", cancel = confirm_seat))]
async fn hold_quoted(airline: &Airline) -> Result<SeatHold, String> {
    let _ = airline;
    Ok(SeatHold)
}

#[step(tcc)]
async fn hold_bare(airline: &Airline) -> Result<SeatHold, String> {
    let _ = airline;
    Ok(SeatHold)
}

fn main() {}
