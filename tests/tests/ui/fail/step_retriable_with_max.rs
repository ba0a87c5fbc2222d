use sagaflow::step;

struct Trip;

#[step(retriable, retry(max = 5, backoff = "100ms"))]
async fn send_confirmation(trip: &Trip) -> Result<(), String> {
    let _ = trip;
    Ok(())
}

fn main() {}
