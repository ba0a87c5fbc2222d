use std::cell::Cell;

use sagaflow::durable::{Durability, Executor, SqliteStore};
use sagaflow::{saga, step};

// Fine as a reference parameter in memory; not `Sync`, so not a shared resource.
pub struct Counter {
    pub calls: Cell<u32>,
}

#[step(read_only)]
async fn count(counter: &Counter) -> Result<u32, String> {
    counter.calls.set(counter.calls.get() + 1);
    Ok(counter.calls.get())
}

#[saga]
async fn tally(counter: &Counter) -> Result<u32, String> {
    let n = count(counter).await?;
    Ok(n)
}

fn main() {
    let store = SqliteStore::open("never-opened.db", Durability::Full).unwrap();
    let _ = Executor::new(store).register::<TallySaga>();
}
