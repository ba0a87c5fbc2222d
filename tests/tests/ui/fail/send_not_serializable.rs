use sagaflow::{saga, step};

#[step(read_only)]
async fn look(id: &u32) -> Result<u32, String> {
    Ok(*id)
}

struct Plain(u32);

// A message that serde cannot serialize.
#[saga]
async fn s(id: u32) -> Result<u32, String> {
    let found = look(&id).await?;
    sagaflow::send!("audit", &Plain(found));
    Ok(found)
}

fn main() {}
