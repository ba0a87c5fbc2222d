//! A saga over a `!Sync` resource (a `Cell` counter, as a test fake would be)
//! and with a `!Send` local compiles and runs in memory: only a durable
//! executor, which can move its runs between threads, asks for `Send + Sync`.

use std::cell::Cell;
use std::rc::Rc;

use sagaflow::{saga, step};

pub struct Counter {
    pub calls: Cell<u32>,
}

#[step(compensate = untick)]
async fn tick(counter: &Counter, by: u32) -> Result<u32, String> {
    counter.calls.set(counter.calls.get() + by);
    tokio::task::yield_now().await;
    Ok(counter.calls.get())
}

async fn untick(counter: &Counter, by: u32, _now: &u32) -> Result<(), String> {
    counter.calls.set(counter.calls.get() - by);
    Ok(())
}

#[step(read_only)]
async fn fail_if(over: u32, now: u32) -> Result<(), String> {
    if now > over { Err(format!("{now} is over {over}")) } else { Ok(()) }
}

#[saga]
async fn tally(counter: &Counter, by: u32) -> Result<u32, String> {
    let first = tick(counter, by).await?;
    let shared: Rc<u32> = Rc::new(first);
    let second = tick(counter, *shared).await?;
    fail_if(10, second).await?;
    Ok(second)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let counter = Counter { calls: Cell::new(0) };
    assert_eq!(rt.block_on(tally(&counter, 2)).unwrap(), 4);
    // 4 + 4 = 8, then 8 + 8 = 16 is over 10: both ticks are undone.
    let err = rt.block_on(tally(&counter, 4)).unwrap_err();
    assert_eq!(err.failed_step(), "fail_if");
    assert_eq!(counter.calls.get(), 4);
}
