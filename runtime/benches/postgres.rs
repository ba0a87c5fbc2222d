//! What the PostgreSQL store does against what the server can do, in the same
//! run on the same server.
//!
//! Run with `SAGAFLOW_PG_URL=postgres://… cargo bench -p sagaflow --features
//! postgres --bench postgres`. A measurement, not a test: it prints a table and
//! exits 0 (without the URL it says so and does nothing).
//!
//! 1. `pgbench`'s single-row insert rate on the same server (one `INSERT` per
//!    transaction, `-c 1` and `-c 4`): what one commit per write costs here.
//! 2. Durable 5-step sagas (`Executor::start(..).outcome()`, each step adds one
//!    to a number) with 1 and with 4 workers, 64 sagas in flight per worker.
//!    A worker is a `PgStore` of its own (its own owner, writer connection and
//!    leases) with an executor over it; the workers run in this process, on one
//!    tokio runtime. Transitions are the journal entries written: an intent and
//!    an outcome per step plus `Finished`, 11 per saga, counted in the database
//!    afterwards, not computed.
//! 3. Takeover: a worker holding 64 sagas dies (dropped without `close`); the
//!    time until another worker, claiming every 20 ms, holds all of them. It is
//!    the lease (here 1 s) plus at most one claim interval.
//!
//! Environment: `PG_BENCH_SECS` (seconds per measurement, default 5).

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sagaflow::durable::{Executor, NewSaga, PgConfig, PgStore, Store};
use sagaflow::{SagaId, saga, step};

#[derive(Default)]
struct Counter(AtomicU64);

#[derive(Debug)]
struct BenchError;

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("bench error")
    }
}

macro_rules! trivial_step {
    ($($name:ident),*) => {$(
        #[step(compensate = undo)]
        async fn $name(counter: &Counter, x: u64) -> Result<u64, BenchError> {
            counter.0.fetch_add(1, Ordering::Relaxed);
            Ok(x + 1)
        }
    )*};
}

async fn undo(counter: &Counter, _x: u64, _out: &u64) -> Result<(), BenchError> {
    counter.0.fetch_sub(1, Ordering::Relaxed);
    Ok(())
}

trivial_step!(step_a, step_b, step_c, step_d, step_e);

#[saga]
async fn five(counter: &Counter, x: u64) -> Result<u64, BenchError> {
    let a = step_a(counter, x).await?;
    let b = step_b(counter, a).await?;
    let c = step_c(counter, b).await?;
    let d = step_d(counter, c).await?;
    let e = step_e(counter, d).await?;
    Ok(e)
}

const IN_FLIGHT: usize = 64;

fn main() {
    let Ok(url) = std::env::var("SAGAFLOW_PG_URL") else {
        println!("SAGAFLOW_PG_URL not set: nothing measured");
        return;
    };
    let secs: f64 = std::env::var("PG_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let time = Duration::from_secs_f64(secs);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    println!(
        "PostgreSQL store bench, {secs} s per row, server {}",
        redact(&url)
    );
    let (pg1, pg4) = rt.block_on(pgbench(&url, time));
    println!("pgbench single-row INSERT, 1 client : {pg1:>9.0} tx/s");
    println!("pgbench single-row INSERT, 4 clients: {pg4:>9.0} tx/s");
    for workers in [1, 4] {
        let (sagas, entries, elapsed) = rt.block_on(sagas(&url, workers, time));
        let per = |n: u64| n as f64 / elapsed.as_secs_f64();
        let pg = if workers == 1 { pg1 } else { pg4 };
        println!(
            "{workers} worker(s) x {IN_FLIGHT} in flight: {:>7.0} sagas/s, {:>8.0} transitions/s \
             ({:.2}x pgbench's {} client rate)",
            per(sagas),
            per(entries),
            per(entries) / pg,
            workers
        );
    }
    let takeover = rt.block_on(takeover(&url));
    println!("takeover of a dead worker's {IN_FLIGHT} sagas (1 s lease): {takeover:?}");
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

fn schema(what: &str) -> String {
    format!("bench_{what}_{:08x}", fastrand::u32(..))
}

/// pgbench's rate of one-row INSERT transactions, with 1 and with 4 clients.
async fn pgbench(url: &str, time: Duration) -> (f64, f64) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(
            "DROP TABLE IF EXISTS sagaflow_pgbench;
             CREATE TABLE sagaflow_pgbench (id bigserial PRIMARY KEY, v bigint, b bytea)",
        )
        .await
        .unwrap();
    let script = std::env::temp_dir().join(format!("sagaflow-pgbench-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "\\set r random(1, 1000000)\nINSERT INTO sagaflow_pgbench (v, b) VALUES (:r, '\\x0102030405');\n",
    )
    .unwrap();
    let bin = pgbench_binary();
    let run = |clients: u32| -> f64 {
        let out = Command::new(&bin)
            .args(["-n", "-f"])
            .arg(&script)
            .args([
                "-c",
                &clients.to_string(),
                "-j",
                &clients.min(2).to_string(),
            ])
            .args(["-T", &time.as_secs().max(1).to_string(), url])
            .output()
            .expect("run pgbench");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| {
                l.strip_prefix("tps = ")
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or_else(|| {
                panic!(
                    "pgbench said: {text}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
    };
    let rates = (run(1), run(4));
    let _ = std::fs::remove_file(&script);
    client
        .batch_execute("DROP TABLE sagaflow_pgbench")
        .await
        .unwrap();
    rates
}

fn pgbench_binary() -> std::path::PathBuf {
    let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/pgbench"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| "pgbench".into())
}

/// `workers` stores over one schema, each driving `IN_FLIGHT` sagas at a time
/// until `time` is up: sagas and transitions done, and the time taken.
async fn sagas(url: &str, workers: usize, time: Duration) -> (u64, u64, Duration) {
    let schema = schema(&format!("w{workers}"));
    let mut executors = Vec::new();
    for _ in 0..workers {
        let store = PgStore::connect_with(PgConfig::new(url).schema(schema.clone()).pool_size(4))
            .await
            .expect("connect");
        executors.push(Arc::new(
            Executor::new(store)
                .resource(Counter::default())
                .register::<FiveSaga>(),
        ));
    }
    let start = Instant::now();
    let deadline = start + time;
    let mut tasks = tokio::task::JoinSet::new();
    for (w, exec) in executors.iter().enumerate() {
        for t in 0..IN_FLIGHT {
            let exec = Arc::clone(exec);
            tasks.spawn(async move {
                let counter = exec.resources().get::<Counter>().unwrap();
                let mut x = ((w * IN_FLIGHT + t) as u64) << 32;
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let started = exec.start(FiveSaga::new(counter, x)).await.unwrap();
                    assert_eq!(started.outcome().await.unwrap().unwrap(), x + 5);
                    x += 1;
                    n += 1;
                }
                n
            });
        }
    }
    let mut sagas = 0;
    while let Some(n) = tasks.join_next().await {
        sagas += n.expect("bench task");
    }
    let elapsed = start.elapsed();
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            &format!(
                "SELECT (SELECT count(*) FROM \"{schema}\".journal),
                        (SELECT count(*) FROM \"{schema}\".sagas WHERE status = 'committed')"
            ),
            &[],
        )
        .await
        .unwrap();
    let (entries, committed): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(committed as u64, sagas, "every saga counted is committed");
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
    (sagas, entries as u64, elapsed)
}

/// How long until a live worker holds all of a dead worker's sagas.
async fn takeover(url: &str) -> Duration {
    let schema = schema("takeover");
    let config = PgConfig::new(url)
        .schema(schema.clone())
        .lease(Duration::from_secs(1));
    let dead = PgStore::connect_with(config.clone()).await.unwrap();
    let alive = PgStore::connect_with(config).await.unwrap();
    for _ in 0..IN_FLIGHT {
        let saga = NewSaga {
            id: SagaId::time_ordered(),
            saga_type: "five".into(),
            fingerprint: String::new(),
            input: b"{}".to_vec(),
        };
        dead.create(saga).await.unwrap();
    }
    drop(dead);
    let died = Instant::now();
    loop {
        alive.claim_runnable(IN_FLIGHT).await.unwrap();
        if alive.held().len() >= IN_FLIGHT {
            return died.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
