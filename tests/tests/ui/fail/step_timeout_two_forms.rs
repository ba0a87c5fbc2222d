use sagaflow::step;

pub struct Trip;
pub struct Booking;

// `timeout` written twice, in two forms.
#[step(compensate = cancel, timeout = "2s", timeout("3s"))]
async fn book(trip: &Trip) -> Result<Booking, String> {
    let _ = trip;
    Ok(Booking)
}

async fn cancel(_trip: &Trip, _booking: &Booking) -> Result<(), String> {
    Ok(())
}

fn main() {}
