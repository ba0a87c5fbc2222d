use sagaflow::{saga, step};

#[step(read_only)]
async fn look(id: &u32) -> Result<u32, String> {
    Ok(*id)
}

#[derive(serde::Serialize)]
struct Event<'a> {
    id: u32,
    note: &'a str,
}

// Messages in every form: a literal or computed destination, a key, a value or a reference.
#[saga]
async fn s(id: u32, topic: String) -> Result<u32, String> {
    sagaflow::send!("audit", &Event { id, note: "start" });
    let found = look(&id).await?;
    sagaflow::send!(topic, key = found, found + 1);
    sagaflow::send!(&topic, &format!("{found}"));
    Ok(found)
}

fn main() {
    let _ = s;
}
