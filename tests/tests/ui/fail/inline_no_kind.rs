use sagaflow::{saga, step};

pub struct Audit;

#[step(read_only)]
async fn look(_audit: &Audit) -> Result<u32, String> {
    Ok(1)
}

#[saga]
async fn audit(audit: &Audit) -> Result<u32, String> {
    let seen = look(audit).await?;
    // An inline step without a kind.
    let _ = sagaflow::inline!(log_it, async { Ok(()) })?;
    Ok(seen)
}

fn main() {}
