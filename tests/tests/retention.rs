//! An executor's retention: finished sagas older than it are purged by the
//! executor itself; parked and running sagas are kept.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sagaflow::durable::{Durability, Executor, SagaStatus, SqliteStore, Store};
use sagaflow::{saga, step};

#[derive(Default)]
struct Desk {
    refunds_fail: AtomicBool,
}

#[step(compensate = refund)]
async fn charge(desk: &Desk, cents: u64) -> Result<u64, String> {
    let _ = desk;
    Ok(cents)
}

async fn refund(desk: &Desk, _cents: u64, _paid: &u64) -> Result<(), String> {
    if desk.refunds_fail.load(Ordering::SeqCst) {
        return Err("the bank is offline".into());
    }
    Ok(())
}

#[step(read_only)]
async fn check(cents: u64) -> Result<(), String> {
    if cents > 100 {
        return Err(format!("{cents} is too much"));
    }
    Ok(())
}

#[saga]
async fn pay(desk: &Desk, cents: u64) -> Result<u64, String> {
    let paid = charge(desk, cents).await?;
    check(cents).await?;
    Ok(paid)
}

#[tokio::test]
async fn finished_sagas_past_the_retention_go_and_parked_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db"), Durability::Normal).unwrap();
    let desk = Desk::default();
    let plain = Executor::new(store.clone())
        .resource(Desk::default())
        .register::<PaySaga>();
    let run = async |cents| {
        let started = plain.start(PaySaga::new(&desk, cents)).await.unwrap();
        let id = started.id();
        let _ = started.outcome().await.unwrap();
        id
    };
    let committed = run(50).await;
    let compensated = run(500).await;
    desk.refunds_fail.store(true, Ordering::SeqCst);
    let parked = run(600).await;
    let status = async |id| store.get(id).await.unwrap().map(|r| r.status);
    assert_eq!(status(parked).await, Some(SagaStatus::Parked));

    // A retention of an hour keeps all three.
    let hour = Executor::new(store.clone())
        .resource(Desk::default())
        .register::<PaySaga>()
        .retention(Duration::from_secs(3600));
    assert_eq!(hour.recover().await.unwrap().purged, 0);

    // A retention of nothing purges what finished, and only that.
    let none = hour.clone().retention(Duration::ZERO);
    let report = none.recover().await.unwrap();
    assert_eq!(report.purged, 2, "{report}");
    assert_eq!(status(committed).await, None);
    assert_eq!(status(compensated).await, None);
    assert_eq!(status(parked).await, Some(SagaStatus::Parked));
}
