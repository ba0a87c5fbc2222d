use sagaflow::step;

struct Trip;
struct Quote(u64);

#[step(read_only)]
async fn quote_flight(trip: &Trip) -> Option<Quote> {
    let _ = trip;
    Some(Quote(420))
}

fn main() {}
