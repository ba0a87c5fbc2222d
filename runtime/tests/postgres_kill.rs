//! Three worker processes over one PostgreSQL schema, one SIGKILLed at random
//! moments over and over (at least 100 kills) and restarted, while sagas keep
//! being submitted. Afterwards every saga is committed, and a ledger written by
//! the steps themselves (each attempt's start and end, with the worker process,
//! its fencing token and the time) shows that no two worker processes ran the
//! same step of the same saga at overlapping times, and the journals show that
//! no write of a fenced-off worker landed (one outcome per step, attempts in
//! order, nothing after the end).
//!
//! The workers are this test binary run again (`worker_process`, which does
//! nothing unless `KILL_TEST_WORKER` is set), each an executor in worker mode
//! (`Executor::worker`), claiming up to 32 sagas at a time.
#![cfg(feature = "postgres")]

mod support;

use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sagaflow::durable::{Entry, Executor, PgConfig, PgStore, SagaStatus, Store, WorkerConfig};
use sagaflow::{StepContext, saga, step};

/// Kills at least this many workers (`KILL_TEST_KILLS` overrides).
const KILLS: usize = 100;
const LEASE: Duration = Duration::from_millis(600);

#[derive(Debug)]
struct JobError;

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("job error")
    }
}

/// Where the steps write their ledger lines, and the store whose token they
/// record.
struct Ledger {
    worker: String,
    file: Mutex<Option<std::fs::File>>,
    store: PgStore,
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

impl Ledger {
    fn line(&self, line: String) {
        if let Some(file) = self.file.lock().unwrap().as_mut() {
            // One write per line, O_APPEND: a kill cuts at most the last one.
            file.write_all(line.as_bytes()).unwrap();
        }
    }

    async fn attempt(&self) {
        let ctx = StepContext::current().expect("in a step");
        let id = ctx.saga_id();
        let token = self.store.token(id).unwrap_or(0);
        let what = format!(
            "{} {} {id} {} {}",
            self.worker,
            token,
            ctx.index(),
            ctx.attempt()
        );
        self.line(format!("start {what} {}\n", now_ns()));
        tokio::time::sleep(Duration::from_millis(fastrand::u64(2..25))).await;
        self.line(format!("end {what} {}\n", now_ns()));
    }
}

#[step(read_only)]
async fn one(ledger: &Ledger, n: u32) -> Result<u32, JobError> {
    ledger.attempt().await;
    Ok(n + 1)
}

#[step(read_only)]
async fn two(ledger: &Ledger, n: &u32) -> Result<u32, JobError> {
    ledger.attempt().await;
    Ok(n + 1)
}

#[step(read_only)]
async fn three(ledger: &Ledger, n: &u32) -> Result<u32, JobError> {
    ledger.attempt().await;
    Ok(n + 1)
}

#[saga]
async fn job(ledger: &Ledger, n: u32) -> Result<u32, JobError> {
    let a = one(ledger, n).await?;
    let b = two(ledger, &a).await?;
    let c = three(ledger, &b).await?;
    Ok(c)
}

async fn executor(
    url: &str,
    schema: &str,
    worker: &str,
    ledger: Option<std::fs::File>,
) -> Executor<PgStore> {
    let store = PgStore::connect_with(PgConfig::new(url).schema(schema).lease(LEASE).pool_size(3))
        .await
        .expect("connect");
    Executor::new(store.clone())
        .resource(Ledger {
            worker: worker.to_owned(),
            file: Mutex::new(ledger),
            store,
        })
        .register::<JobSaga>()
}

/// A worker process: drives whatever it can claim until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_process() {
    let Ok(worker) = std::env::var("KILL_TEST_WORKER") else {
        return; // not a worker: the test below starts these
    };
    let url = std::env::var("SAGAFLOW_PG_URL").unwrap();
    let schema = std::env::var("KILL_TEST_SCHEMA").unwrap();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(std::env::var("KILL_TEST_LEDGER").unwrap())
        .unwrap();
    let executor = executor(&url, &schema, &worker, Some(file)).await;
    println!("ready");
    // Worker mode, restarted if the store fails when asked for work.
    loop {
        let config = WorkerConfig {
            concurrency: 32,
            poll: Duration::from_millis(20),
        };
        if let Err(error) = executor.worker(config).run().await {
            eprintln!("{worker}: {error}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

struct Worker {
    name: String,
    child: Child,
}

fn spawn_worker(
    slot: usize,
    generation: usize,
    url: &str,
    schema: &str,
    ledger: &std::path::Path,
) -> Worker {
    let name = format!("w{slot}.{generation}");
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "worker_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KILL_TEST_WORKER", &name)
        .env("SAGAFLOW_PG_URL", url)
        .env("KILL_TEST_SCHEMA", schema)
        .env("KILL_TEST_LEDGER", ledger)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start a worker");
    Worker { name, child }
}

#[derive(Debug, Clone)]
struct Attempt {
    worker: String,
    token: u64,
    start: u128,
    end: Option<u128>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_sagas_through_a_hundred_kills() {
    if std::env::var("KILL_TEST_WORKER").is_ok() {
        return;
    }
    let Some(url) = support::pg_url() else {
        return;
    };
    let kills = support::env_count("KILL_TEST_KILLS", KILLS);
    let schema = support::schema_for("kill");
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.txt");
    // The submitter: starts sagas and lets them go (dropping the handle
    // releases them to whichever worker claims them).
    let submitter = executor(&url, &schema, "submitter", None).await;
    let nobody = submitter.resources().get::<Ledger>().unwrap();
    let mut ids = Vec::new();
    let submit = async |n: usize, ids: &mut Vec<_>| {
        for _ in 0..n {
            let started = submitter
                .start(JobSaga::new(nobody, ids.len() as u32))
                .await
                .unwrap();
            ids.push(started.id());
        }
    };
    submit(200, &mut ids).await;

    let mut workers: Vec<Worker> = (0..3)
        .map(|slot| spawn_worker(slot, 0, &url, &schema, &ledger))
        .collect();
    let mut deaths: HashMap<String, u128> = HashMap::new();
    for generation in 1..=kills {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(30..250))).await;
        let slot = fastrand::usize(..workers.len());
        let victim = &mut workers[slot];
        victim.child.kill().expect("SIGKILL");
        victim.child.wait().unwrap();
        deaths.insert(victim.name.clone(), now_ns());
        workers[slot] = spawn_worker(slot, generation, &url, &schema, &ledger);
        if generation % 10 == 0 {
            submit(20, &mut ids).await;
        }
    }
    // Let the last ones finish: every saga ends.
    let store = submitter.store();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let running = store.with_status(SagaStatus::Running).await.unwrap().len();
        if running == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{running} sagas still running");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for mut worker in workers {
        worker.child.kill().unwrap();
        worker.child.wait().unwrap();
        deaths.insert(worker.name, now_ns());
    }

    // Every saga committed, and its journal is one story.
    for &id in &ids {
        let record = store.get(id).await.unwrap().unwrap();
        assert_eq!(record.status, SagaStatus::Committed, "saga {id}");
        check_journal(id, &record.journal);
    }

    // The ledger: no two worker processes in one step of one saga at once.
    let text = std::fs::read_to_string(&ledger).unwrap();
    let mut attempts: HashMap<(String, u32), Vec<Attempt>> = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let [kind, worker, token, saga, step, _attempt, time] = f[..] else {
            continue; // the line a kill cut short
        };
        let Ok(time) = time.parse::<u128>() else {
            continue;
        };
        let key = (saga.to_owned(), step.parse().unwrap());
        let list = attempts.entry(key).or_default();
        match kind {
            "start" => list.push(Attempt {
                worker: worker.to_owned(),
                token: token.parse().unwrap(),
                start: time,
                end: None,
            }),
            "end" => {
                if let Some(a) = list
                    .iter_mut()
                    .rev()
                    .find(|a| a.worker == worker && a.end.is_none())
                {
                    a.end = Some(time);
                }
            }
            _ => {}
        }
    }
    let mut overlaps = Vec::new();
    let mut reruns = 0;
    for ((saga, step), list) in &attempts {
        reruns += list.len() - 1;
        for (i, a) in list.iter().enumerate() {
            // An attempt cut by a kill ended when its process died.
            let a_end = a
                .end
                .or(deaths.get(&a.worker).copied())
                .unwrap_or(u128::MAX);
            for b in &list[i + 1..] {
                let b_end = b
                    .end
                    .or(deaths.get(&b.worker).copied())
                    .unwrap_or(u128::MAX);
                if a.worker != b.worker && a.start < b_end && b.start < a_end {
                    overlaps.push(format!("saga {saga} step {step}: {a:?} and {b:?}"));
                }
            }
        }
        assert!(
            list.iter().all(|a| a.token > 0),
            "a step ran with no lease: {list:?}"
        );
    }
    assert!(
        overlaps.is_empty(),
        "{} overlaps, e.g. {}",
        overlaps.len(),
        overlaps[0]
    );
    assert_eq!(
        attempts.len(),
        ids.len() * 3,
        "every step of every saga ran"
    );
    eprintln!(
        "{} sagas, {kills} kills, {} step attempts, {reruns} re-runs after a kill, no overlap",
        ids.len(),
        attempts.values().map(Vec::len).sum::<usize>()
    );
}

/// One outcome per step, attempts numbered in order, one end, nothing after it.
fn check_journal(id: sagaflow::SagaId, journal: &[Entry]) {
    let mut last_attempt: HashMap<u32, u32> = HashMap::new();
    let mut succeeded: HashMap<u32, usize> = HashMap::new();
    for (i, entry) in journal.iter().enumerate() {
        match entry {
            Entry::StepStarted { index, attempt } => {
                let last = last_attempt.insert(*index, *attempt).unwrap_or(0);
                assert!(
                    *attempt > last,
                    "saga {id}: attempts out of order: {journal:?}"
                );
                assert!(
                    !succeeded.contains_key(index),
                    "saga {id}: a start after success: {journal:?}"
                );
            }
            Entry::StepSucceeded { index, .. } => *succeeded.entry(*index).or_default() += 1,
            Entry::Finished { .. } => assert_eq!(i, journal.len() - 1, "saga {id}: {journal:?}"),
            other => panic!("saga {id}: unexpected {other:?}"),
        }
    }
    assert_eq!(
        succeeded,
        HashMap::from([(0, 1), (1, 1), (2, 1)]),
        "saga {id}: {journal:?}"
    );
}
