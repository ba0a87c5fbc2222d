use sagaflow::step;

// A pivot has no compensation, so there is nothing for the timeout to limit.
#[step(pivot, compensate_timeout = "5s")]
async fn ship(order: u32) -> Result<u32, String> {
    Ok(order)
}

fn main() {}
