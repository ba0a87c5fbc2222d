//! A saga over `Send` inputs is a `Send` future, so it can be spawned.

use std::sync::Arc;

use sagaflow::{Runner, saga, step};

pub struct Inventory {
    pub stock: std::sync::Mutex<u32>,
}

#[step(compensate = put_back, timeout = "1s")]
async fn take(inventory: &Inventory, count: u32) -> Result<u32, String> {
    let mut stock = inventory.stock.lock().unwrap();
    *stock = stock.checked_sub(count).ok_or("out of stock")?;
    Ok(count)
}

async fn put_back(inventory: &Inventory, _count: u32, taken: &u32) -> Result<(), String> {
    *inventory.stock.lock().unwrap() += *taken;
    Ok(())
}

#[step(retriable, retry(backoff = "1ms"))]
async fn ship(address: &str) -> Result<(), String> {
    tokio::task::yield_now().await;
    let _ = address;
    Ok(())
}

#[saga]
async fn order(inventory: &Inventory, address: String, count: u32) -> Result<u32, String> {
    let taken = take(inventory, count).await?;
    ship(&address).await?;
    Ok(taken)
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    let inventory = Inventory {
        stock: std::sync::Mutex::new(5),
    };
    assert_send(order(&inventory, "Main St".to_owned(), 1));
    assert_send(Runner::new().run(OrderSaga::new(&inventory, "Main St".to_owned(), 1)));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let shared = Arc::new(inventory);
    let taken = rt
        .block_on(async {
            let inventory = Arc::clone(&shared);
            tokio::spawn(async move { order(&inventory, "Main St".to_owned(), 2).await })
                .await
                .unwrap()
        })
        .unwrap();
    assert_eq!(taken, 2);
    assert_eq!(*shared.stock.lock().unwrap(), 3);
}
