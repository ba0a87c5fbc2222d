use sagaflow::step;

pub struct Trip {
    pub card: String,
}

#[step(read_only)]
async fn card_of(trip: &Trip) -> Result<&str, String> {
    Ok(&trip.card)
}

fn main() {}
