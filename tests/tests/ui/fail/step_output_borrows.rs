use sagaflow::step;

pub struct Trip {
    pub card: String,
}

// The output borrows from the argument: the saga could not keep it.
#[step(read_only)]
async fn card_of<'t>(trip: &'t Trip) -> Result<&'t str, String> {
    Ok(&trip.card)
}

fn main() {}
