use sagaflow::step;

struct Trip;
struct Quote(u64);

#[step(read_only, compensate_retry = 3)]
async fn quote_flight(trip: &Trip) -> Result<Quote, String> {
    let _ = trip;
    Ok(Quote(420))
}

fn main() {}
