//! Worker mode: sagas submitted by one executor are run by workers, and waited
//! for by id; a worker shut down stops claiming, finishes what it drives and
//! lets go of it. On SQLite (one process) and, with `SAGAFLOW_PG_URL`, on
//! PostgreSQL with two workers and a submitter that runs nothing itself.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sagaflow::durable::{
    Durability, Executor, SagaStatus, SqliteStore, Store, Waited, WorkerConfig,
};
use sagaflow::{Phase, SagaId, StepContext, saga, step};

#[derive(Debug)]
struct JobError(String);

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A saga's step, and whether it is its compensation.
type Run = (SagaId, &'static str, bool);

/// Which worker ran each step (and compensation) of each saga, and how often.
#[derive(Clone, Default)]
struct Ledger {
    worker: &'static str,
    runs: Arc<Mutex<HashMap<Run, Vec<&'static str>>>>,
}

impl Ledger {
    fn ran(&self) {
        let cx = StepContext::current().unwrap();
        self.runs
            .lock()
            .unwrap()
            .entry((cx.saga_id(), cx.step(), cx.phase() == Phase::Compensation))
            .or_default()
            .push(self.worker);
    }
}

#[step(compensate = unreserve)]
async fn reserve(ledger: &Ledger, n: u32) -> Result<u32, JobError> {
    ledger.ran();
    tokio::time::sleep(Duration::from_millis(2)).await;
    Ok(n)
}

async fn unreserve(ledger: &Ledger, _n: u32, _held: &u32) -> Result<(), JobError> {
    ledger.ran();
    Ok(())
}

#[step(read_only)]
async fn check(ledger: &Ledger, n: u32) -> Result<(), JobError> {
    ledger.ran();
    if n.is_multiple_of(4) {
        return Err(JobError(format!("{n} is a multiple of 4")));
    }
    Ok(())
}

#[saga]
async fn job(ledger: &Ledger, n: u32) -> Result<u32, JobError> {
    let held = reserve(ledger, n).await?;
    check(ledger, n).await?;
    Ok(held * 10)
}

fn expected(n: u32) -> Waited<u32> {
    if n.is_multiple_of(4) {
        Waited::Compensated {
            failed_step: "check".into(),
            error: format!("{n} is a multiple of 4"),
        }
    } else {
        Waited::Committed(n * 10)
    }
}

fn executor<St: Store + Clone>(store: St, ledger: &Ledger) -> Executor<St> {
    Executor::new(store)
        .resource(ledger.clone())
        .register::<JobSaga>()
}

const POLL: Duration = Duration::from_millis(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_what_was_submitted_and_each_outcome_is_waited_for_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db"), Durability::Normal).unwrap();
    let ledger = Ledger {
        worker: "one",
        ..Ledger::default()
    };
    let executor = executor(store.clone(), &ledger);
    let mut ids = Vec::new();
    for n in 1..=40u32 {
        ids.push((n, executor.submit(JobSaga::new(&ledger, n)).await.unwrap()));
    }
    let worker = executor.worker(WorkerConfig {
        concurrency: 8,
        poll: POLL,
    });
    let shutdown = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    for (n, id) in &ids {
        let waited = executor.wait::<JobSaga>(*id, POLL).await.unwrap();
        assert_eq!(waited, expected(*n), "saga {n}");
    }
    shutdown.shutdown();
    let report = running.await.unwrap().unwrap();
    assert_eq!(report.sagas.len(), 40);
    for runs in ledger.runs.lock().unwrap().values() {
        assert_eq!(runs.len(), 1, "a step ran more than once: {runs:?}");
    }
    // Shut down with nothing left: nothing is running in the store.
    assert!(
        store
            .with_status(SagaStatus::Running)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_shut_down_finishes_what_it_drives() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db"), Durability::Normal).unwrap();
    let ledger = Ledger {
        worker: "one",
        ..Ledger::default()
    };
    let executor = executor(store.clone(), &ledger);
    for n in 1..=20u32 {
        executor.submit(JobSaga::new(&ledger, n)).await.unwrap();
    }
    let worker = executor.worker(WorkerConfig {
        concurrency: 4,
        poll: POLL,
    });
    let shutdown = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    // Let it take up a first portion, then stop it.
    tokio::time::sleep(Duration::from_millis(3)).await;
    shutdown.shutdown();
    let report = running.await.unwrap().unwrap();
    // What it took up, it finished; what it did not is still there, untouched.
    let finished = report.sagas.len();
    assert!((1..20).contains(&finished), "finished {finished}");
    let running_now = store.with_status(SagaStatus::Running).await.unwrap();
    assert_eq!(running_now.len(), 20 - finished);
    assert!(running_now.iter().all(|r| r.journal.is_empty()));
    // A second worker takes up the rest.
    let worker = executor.worker(WorkerConfig {
        concurrency: 4,
        poll: POLL,
    });
    let shutdown = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    for record in running_now {
        executor.wait::<JobSaga>(record.id, POLL).await.unwrap();
    }
    shutdown.shutdown();
    assert_eq!(running.await.unwrap().unwrap().sagas.len(), 20 - finished);
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_workers_share_what_a_third_process_submits() {
    use sagaflow::durable::{PgConfig, PgStore};

    let Some(url) = support::pg_url() else {
        return;
    };
    let schema = support::schema_for("worker_share");
    let connect = || async {
        PgStore::connect_with(
            PgConfig::new(url.clone())
                .schema(schema.clone())
                .lease(Duration::from_secs(5)),
        )
        .await
        .unwrap()
    };
    let runs = Arc::new(Mutex::new(HashMap::new()));
    let ledger = |worker| Ledger {
        worker,
        runs: Arc::clone(&runs),
    };
    let (a, b, front) = (connect().await, connect().await, connect().await);
    let (la, lb, lf) = (ledger("a"), ledger("b"), ledger("front"));
    let (ea, eb, ef) = (
        executor(a.clone(), &la),
        executor(b.clone(), &lb),
        executor(front.clone(), &lf),
    );
    let config = WorkerConfig {
        concurrency: 8,
        poll: POLL,
    };
    let (wa, wb) = (ea.worker(config), eb.worker(config));
    let (sa, sb) = (wa.shutdown_handle(), wb.shutdown_handle());
    let (ra, rb) = (tokio::spawn(wa.run()), tokio::spawn(wb.run()));
    let mut ids = Vec::new();
    for n in 1..=120u32 {
        ids.push((n, ef.submit(JobSaga::new(&lf, n)).await.unwrap()));
    }
    for (n, id) in &ids {
        let waited = ef.wait::<JobSaga>(*id, POLL).await.unwrap();
        assert_eq!(waited, expected(*n), "saga {n}");
    }
    sa.shutdown();
    sb.shutdown();
    let (ra, rb) = (ra.await.unwrap().unwrap(), rb.await.unwrap().unwrap());
    assert_eq!(ra.sagas.len() + rb.sagas.len(), 120);
    assert!(
        !ra.sagas.is_empty() && !rb.sagas.is_empty(),
        "one worker took all"
    );
    for ((id, step, _), by) in runs.lock().unwrap().iter() {
        assert_eq!(by.len(), 1, "{step} of {id} ran {} times: {by:?}", by.len());
        assert_ne!(by[0], "front", "the submitter ran a step");
    }
    // Both let go of every lease.
    assert!(a.held().is_empty() && b.held().is_empty());
}
