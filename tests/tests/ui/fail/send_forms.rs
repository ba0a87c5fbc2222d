use sagaflow::{saga, step};

#[step(read_only)]
async fn look(id: &u32) -> Result<u32, String> {
    Ok(*id)
}

async fn fetch() -> u32 {
    1
}

// `send!` with too few arguments, a key without `key =`, and an await in its message.
#[saga]
async fn s(id: u32) -> Result<u32, String> {
    let found = look(&id).await?;
    sagaflow::send!("audit");
    sagaflow::send!("audit", id, &found);
    sagaflow::send!("audit", &fetch().await);
    Ok(found)
}

fn main() {}
