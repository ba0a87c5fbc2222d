// A group of twelve, the most a group takes, with unnamed members, then a
// bare group of two: both compile, and the saga runs them all.
use sagaflow::{saga, step};

#[step(compensate = undo)]
async fn put(n: u32) -> Result<u32, String> {
    Ok(n)
}

async fn undo(_n: u32, _out: &u32) -> Result<(), String> {
    Ok(())
}

#[step(read_only)]
async fn look(n: u32) -> Result<u32, String> {
    Ok(n)
}

#[saga]
async fn twelve(base: u32) -> Result<u32, String> {
    let (a, b, c, d, e, f, g, h, i, j, k, _) = sagaflow::join!(
        put(base), put(1), put(2), put(3), put(4), put(5),
        put(6), put(7), put(8), put(9), look(10), look(11),
    )?;
    sagaflow::join!(look(a), put(b))?;
    let sum: u32 = a + b + c + d + e + f + g + h + i + j + k;
    Ok(sum)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(runtime.block_on(twelve(0)).unwrap(), 55);
}
