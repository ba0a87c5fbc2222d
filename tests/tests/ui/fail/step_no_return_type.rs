use sagaflow::step;

struct Trip;

#[step(retriable)]
async fn send_confirmation(trip: &Trip) {
    let _ = trip;
}

fn main() {}
