//! `#[saga(name = ..)]` names the generated type.

use sagaflow::{Runner, saga, step};

#[step(read_only)]
async fn lookup(id: u32) -> Result<u32, String> {
    Ok(id + 1)
}

#[saga(name = Lookup)]
async fn look_it_up(id: u32) -> Result<u32, String> {
    let next = lookup(id).await?;
    Ok(next)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(Runner::new().run(Lookup::new(41))).unwrap(), 42);
    assert_eq!(rt.block_on(look_it_up(1)).unwrap(), 2);
    assert!(Lookup::graph().to_mermaid().contains("lookup"));
}
