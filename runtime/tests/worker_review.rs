//! Worker mode under the cases a review found broken: a worker with room
//! keeps looking for work, sagas behind a long one are not starved, a saga it
//! cannot run does not spin it, and (on PostgreSQL) a late lease release
//! never hands a saga it drives to another worker.

use std::sync::Arc;
use std::time::Duration;

use sagaflow::durable::{Durability, Executor, SqliteStore, Waited, WorkerConfig};
use sagaflow::{saga, step};
use tokio::sync::Notify;

#[derive(Debug)]
struct E;
impl std::fmt::Display for E {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("e")
    }
}

#[derive(Clone, Default)]
struct Gate(Arc<Notify>, Arc<Notify>);

#[step(read_only)]
async fn work(gate: &Gate, slow: bool) -> Result<u32, E> {
    if slow {
        gate.1.notify_one(); // started
        gate.0.notified().await; // held until released
    }
    Ok(1)
}

#[saga]
async fn job(gate: &Gate, slow: bool) -> Result<u32, E> {
    let v = work(gate, slow).await?;
    Ok(v)
}

#[step(read_only)]
async fn other_step(n: u32) -> Result<u32, E> {
    Ok(n)
}

#[saga]
async fn other(n: u32) -> Result<u32, E> {
    let v = other_step(n).await?;
    Ok(v)
}

const POLL: Duration = Duration::from_millis(5);

fn setup() -> (tempfile::TempDir, Executor<SqliteStore>, Gate) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db"), Durability::Normal).unwrap();
    let gate = Gate::default();
    let ex = Executor::new(store)
        .resource(gate.clone())
        .register::<JobSaga>();
    (dir, ex, gate)
}

/// A worker with room to spare takes up newly submitted work while a long saga runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_busy_worker_still_takes_up_new_work() {
    let (_dir, ex, gate) = setup();
    ex.submit(JobSaga::new(&gate, true)).await.unwrap();
    let worker = ex.worker(WorkerConfig {
        concurrency: 4,
        poll: POLL,
    });
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    gate.1.notified().await; // the slow saga is being driven
    let fast = ex.submit(JobSaga::new(&gate, false)).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(2), ex.wait::<JobSaga>(fast, POLL)).await;
    gate.0.notify_one();
    stop.shutdown();
    running.await.unwrap().unwrap();
    assert!(
        waited.is_ok(),
        "fast saga not taken up while the slow one ran (3 free slots)"
    );
}

/// Sagas queued behind one long saga are run, not starved: claim_runnable(free)
/// keeps returning the saga this worker already drives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_behind_a_long_one_are_not_starved() {
    let (_dir, ex, gate) = setup();
    ex.submit(JobSaga::new(&gate, true)).await.unwrap();
    let mut fast = Vec::new();
    for _ in 0..4 {
        fast.push(ex.submit(JobSaga::new(&gate, false)).await.unwrap());
    }
    let worker = ex.worker(WorkerConfig {
        concurrency: 2,
        poll: POLL,
    });
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    let all = async {
        for id in &fast {
            ex.wait::<JobSaga>(*id, POLL).await.unwrap();
        }
    };
    let waited = tokio::time::timeout(Duration::from_secs(2), all).await;
    gate.0.notify_one();
    stop.shutdown();
    running.await.unwrap().unwrap();
    assert!(waited.is_ok(), "fast sagas starved behind the slow one");
}

/// A saga this executor cannot run (type not registered here) is refused, released,
/// and taken up again at once, forever: a busy loop that starves every other saga.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_saga_does_not_spin_the_worker() {
    let (_dir, ex, gate) = setup();
    ex.submit(OtherSaga::new(7)).await.unwrap(); // not registered on `ex`
    let id = ex.submit(JobSaga::new(&gate, false)).await.unwrap();
    let worker = ex.worker(WorkerConfig {
        concurrency: 1,
        poll: POLL,
    });
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    let waited = tokio::time::timeout(Duration::from_secs(1), ex.wait::<JobSaga>(id, POLL)).await;
    stop.shutdown();
    let report = running.await.unwrap().unwrap();
    let refused = report.sagas.len();
    assert!(
        refused < 50,
        "refused saga taken up {refused} times in ~1s (poll 5ms)"
    );
    assert!(
        matches!(waited, Ok(Ok(Waited::Committed(1)))),
        "the runnable saga starved"
    );
}

/// PgStore::release is queued (Claim::drop), so a claim by this same process right
/// after (recover, or a worker's poll) can be undone by the late release: the row's
/// owner is set NULL while this process drives the saga, and another worker takes it.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_release_does_not_hand_a_driven_saga_to_another_worker() {
    use sagaflow::durable::{PgConfig, PgStore, Store};
    let url = std::env::var("SAGAFLOW_PG_URL").unwrap();
    let schema = format!("review_{:08x}", fastrand::u32(..));
    let connect = || async {
        let c = PgConfig::new(url.clone())
            .schema(schema.clone())
            .lease(Duration::from_secs(30));
        PgStore::connect_with(c).await.unwrap()
    };
    let (a, b) = (connect().await, connect().await);
    let gate = Gate::default();
    let ea = Executor::new(a.clone())
        .resource(gate.clone())
        .register::<JobSaga>();
    let mut doubled = 0;
    eprintln!("connected");
    for i in 0..20 {
        eprintln!("iter {i}");
        let started = ea.start(JobSaga::new(&gate, true)).await.unwrap();
        let id = started.id();
        drop(started); // its claim ends: release queued
        let rec = tokio::spawn(ea.recover()); // claims it again at once
        if tokio::time::timeout(Duration::from_secs(3), gate.1.notified())
            .await
            .is_err()
        {
            eprintln!(
                "not driven (claim skipped the row locked by the release?): {:?}",
                rec.await
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        eprintln!("driving");
        let stolen = b.claim_runnable(10).await.unwrap();
        eprintln!("stolen {}", stolen.len());
        if stolen.iter().any(|r| r.id == id) {
            doubled += 1;
            b.release(id);
        }
        gate.0.notify_one();
        eprintln!("{}", rec.await.unwrap().unwrap());
    }
    assert_eq!(
        doubled, 0,
        "another worker claimed a saga this process was driving, {doubled}/20 times"
    );
}
