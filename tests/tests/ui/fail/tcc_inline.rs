use sagaflow::saga;

pub struct Seats;

#[saga]
async fn book(seats: &Seats) -> Result<u32, String> {
    let hold: u32 = sagaflow::inline!(hold_seat, tcc(confirm = confirm, cancel = release), async {
        let _ = seats;
        Ok(1)
    })?;
    Ok(hold)
}

fn main() {}
