use sagaflow::durable::{Durability, Executor, SqliteStore};
use sagaflow::{saga, step};

pub struct Airline;

// Not `Serialize`: fine in memory, not for a durable saga's input.
pub struct Trip {
    pub id: u32,
}

#[step(read_only)]
async fn check(_airline: &Airline, trip: &Trip) -> Result<u32, String> {
    Ok(trip.id)
}

#[saga]
async fn book_trip(airline: &Airline, trip: Trip) -> Result<u32, String> {
    let id = check(airline, &trip).await?;
    Ok(id)
}

fn main() {
    let store = SqliteStore::open("never-opened.db", Durability::Full).unwrap();
    let _ = Executor::new(store).resource(Airline).register::<BookTripSaga>();
}
