use sagaflow::saga;

pub struct Audit;

#[saga]
async fn audit(audit: &Audit) -> Result<u32, String> {
    // The output's type is not written.
    let seen = sagaflow::inline!(count, read_only, async {
        let _ = audit;
        Ok(3)
    })?;
    Ok(seen)
}

fn main() {}
