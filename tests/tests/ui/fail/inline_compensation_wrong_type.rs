use sagaflow::{saga, step};

pub struct Seats;
pub struct Hold {
    pub id: u32,
}

#[step(read_only)]
async fn look(_seats: &Seats) -> Result<u32, String> {
    Ok(1)
}

#[saga]
async fn book(seats: &Seats) -> Result<u32, String> {
    // The compensation returns a number, not a `Result<(), E>`.
    let hold: Hold = sagaflow::inline!(hold_seat, compensate = async |hold| hold.id, async {
        let _ = seats;
        Ok(Hold { id: 1 })
    })?;
    let seen = look(seats).await?;
    Ok(hold.id + seen)
}

fn main() {}
