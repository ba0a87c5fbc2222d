//! What durability costs: durable sagas per second against what the disk and
//! SQLite can do, measured in the same run on the same disk.
//!
//! Run with `cargo bench -p sagaflow-tests --bench durable`. It is a measurement,
//! not a test: it prints a table and whether the targets are met, and always
//! exits 0 (unless the machinery itself fails, e.g. the store cannot be opened).
//!
//! Everything is written to a temporary directory under cargo's
//! `CARGO_TARGET_TMPDIR` (the target directory, so the project's disk, not a
//! tmpfs `/tmp`); the file system and its device are printed.
//!
//! What it measures, in order:
//! 1. The disk's fsync rate: `write` of a 64-byte record appended to a file, then
//!    `sync_data`, in a loop for about a second.
//! 2. Raw SQLite through rusqlite (the same bundled SQLite as the store), WAL,
//!    `synchronous=FULL`, a table shaped like the store's journal: transactions
//!    of one row per second, and rows per second at 64 rows per transaction (all
//!    rows of one saga, so consecutive keys). The one-row rate with
//!    `synchronous=NORMAL` too, for the other durability level. Then the same
//!    64 rows/tx with each row of another saga, ids random (as `SagaId::random`
//!    makes them) or in creation order, which is what decides how many pages a
//!    commit writes; and the store's own pattern with its schema: 256 sagas
//!    interleaved, one commit per round holding one write of each (create, 11
//!    journal entries, status update on the last), with none of the store's
//!    machinery: the ceiling of the durable rows below.
//! 3. A durable 5-step saga (each step adds one to a `u64` and returns it; the
//!    outputs are JSON numbers; each has a compensation, never run here), run
//!    through `Executor::start(..).outcome()` with 1, 16 and 256 sagas in
//!    flight: that many tokio tasks on a multi-thread
//!    runtime (one worker per core), each starting and awaiting sagas one after
//!    another until the time is up, all sharing one executor through an `Arc`;
//!    then the time until the last task has finished its saga. Once with
//!    `Durability::Full`, once with `Durability::Normal`, a fresh file each time.
//!
//!    Transitions are the journal entries a saga writes: an intent and an outcome
//!    per step plus `Finished`, 11 for this saga. Each is awaited before the saga
//!    goes on; so is the `create` that makes the input durable, which makes 12
//!    awaited writes per saga (the "writes/s" column). The counts are read back
//!    from the file afterwards (rows of `journal`; sagas with status
//!    `committed`), not computed. The CPU columns are the share of one core used
//!    by the store's threads (in effect the writer) and by the tokio workers,
//!    from `/proc/self/task` (Linux only).
//! 4. Recovery: 10,000 sagas written straight into a store as a crash would leave
//!    them (input, step 0 and 1 done, the intent of step 2 without an outcome),
//!    then the time of `Executor::recover()` on a freshly opened store until every
//!    one has committed (each writes 7 more entries: step 2's second intent, its
//!    outcome, steps 3 and 4, `Finished`). With `Durability::Full` and with
//!    `Durability::Normal`, on copies of the same file.
//!
//! Environment:
//! - `DURABLE_SECS`: seconds per saga measurement (default 2.5).
//! - `DURABLE_RECOVER`: how many crashed sagas to recover (default 10000).
//! - `DURABLE_ONLY`: `disk`, `sqlite`, `sagas` or `recover` to run one part.
//! - `DURABLE_INFLIGHT`: `1`, `16` or `256` to run one concurrency (for profiling).
//! - `DURABLE_LEVEL`: `full` or `normal` to run the sagas at one durability level.
//! - `DURABLE_SQL_EXTRA`: SQL run on the raw SQLite connections after setup, for
//!   experiments (e.g. `PRAGMA wal_autocheckpoint=20000;`).

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sagaflow::durable::{
    Durability, Entry, Executor, NewSaga, RecoveredOutcome, SqliteStore, Store, fingerprint,
};
use sagaflow::{Saga, SagaId, saga, step};

// ---------------------------------------------------------------------------
// The saga
// ---------------------------------------------------------------------------

/// The one resource: counts step executions, so the steps are not optimised away.
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

/// Journal entries of one committed `five` saga: intent + outcome per step, Finished.
const ENTRIES_PER_SAGA: u64 = 5 * 2 + 1;
/// Writes each awaited by one saga: its `create` and its journal entries.
const WRITES_PER_SAGA: u64 = ENTRIES_PER_SAGA + 1;

type Exec = Executor<SqliteStore>;

fn executor(store: SqliteStore) -> Exec {
    Executor::new(store)
        .resource(Counter::default())
        .register::<FiveSaga>()
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("bench-tokio")
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn fmt_rate(r: f64) -> String {
    // 1234567.8 -> "1,234,568"
    let n = r.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The file system and device holding `dir`, as `df -P` reports them.
fn disk_of(dir: &Path) -> String {
    let fs = std::process::Command::new("df")
        .arg("-P")
        .arg(dir)
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let line = text.lines().nth(1)?.to_owned();
            let cols: Vec<&str> = line.split_whitespace().collect();
            Some(format!("{} mounted on {}", cols.first()?, cols.last()?))
        })
        .unwrap_or_else(|| "unknown device".to_owned());
    // The longest mount point that is a prefix of `dir` is its file system.
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let fstype = std::fs::read_to_string("/proc/mounts")
        .ok()
        .and_then(|mounts| {
            mounts
                .lines()
                .filter_map(|l| {
                    let cols: Vec<&str> = l.split_whitespace().collect();
                    Some((cols.get(1)?.to_string(), cols.get(2)?.to_string()))
                })
                .filter(|(mount, _)| dir.starts_with(mount))
                .max_by_key(|(mount, _)| mount.len())
                .map(|(_, t)| t)
        })
        .unwrap_or_else(|| "?".to_owned());
    format!("{fs} ({fstype})")
}

/// Rows of `journal` and committed sagas in the store file at `path` (closed).
fn count_rows(path: &Path) -> (u64, u64) {
    let conn = rusqlite::Connection::open(path).expect("open the store file to count");
    let entries: i64 = conn
        .query_row("SELECT count(*) FROM journal", [], |r| r.get(0))
        .expect("count journal");
    let committed: i64 = conn
        .query_row(
            "SELECT count(*) FROM sagas WHERE status = 'committed'",
            [],
            |r| r.get(0),
        )
        .expect("count sagas");
    (entries as u64, committed as u64)
}

/// CPU time used so far by each thread of this process, by thread name (Linux
/// `/proc`; empty elsewhere): (name, ticks of user + system time).
fn thread_cpu() -> Vec<(u64, String, u64)> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let tid: u64 = task.file_name().to_string_lossy().parse().unwrap_or(0);
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: state is field 3; utime 14, stime 15.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = fields
            .get(11)
            .and_then(|u| u.parse::<u64>().ok())
            .unwrap_or(0)
            + fields
                .get(12)
                .and_then(|u| u.parse::<u64>().ok())
                .unwrap_or(0);
        out.push((tid, comm.trim().to_owned(), ticks));
    }
    out
}

/// Share of one core used between two snapshots by threads whose name starts
/// with `prefix`, in percent (100 = one core busy all the time).
fn cpu_share(
    before: &[(u64, String, u64)],
    after: &[(u64, String, u64)],
    prefix: &str,
    elapsed: Duration,
) -> f64 {
    // Clock ticks per second: 100 on every Linux configuration in practice.
    const TICKS: f64 = 100.0;
    let used: u64 = after
        .iter()
        .filter(|(_, name, _)| name.starts_with(prefix))
        .map(|(tid, _, t)| {
            let then = before
                .iter()
                .find(|(b, _, _)| b == tid)
                .map_or(0, |(_, _, t)| *t);
            t.saturating_sub(then)
        })
        .sum();
    used as f64 / TICKS / elapsed.as_secs_f64() * 100.0
}

// ---------------------------------------------------------------------------
// 1. The disk
// ---------------------------------------------------------------------------

struct DiskRate {
    fsyncs_per_sec: f64,
    mean_latency: Duration,
}

fn fsync_rate(dir: &Path, for_how_long: Duration) -> DiskRate {
    let path = dir.join("fsync.bin");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .expect("create fsync.bin");
    let record = [0x5au8; 64];
    // One warm-up sync.
    file.write_all(&record).unwrap();
    file.sync_data().unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < for_how_long {
        file.write_all(&record).unwrap();
        file.sync_data().unwrap();
        n += 1;
    }
    let elapsed = start.elapsed();
    drop(file);
    let _ = std::fs::remove_file(&path);
    DiskRate {
        fsyncs_per_sec: rate(n, elapsed),
        mean_latency: elapsed / n.max(1) as u32,
    }
}

// ---------------------------------------------------------------------------
// 2. Raw SQLite
// ---------------------------------------------------------------------------

struct SqliteRates {
    full_single_tx: f64,
    full_batch_rows: f64,
    full_batch_tx: f64,
    normal_single_tx: f64,
    full_random_rows: f64,
    full_ordered_rows: f64,
    /// Writes/s of the store's pattern, 256 sagas in flight: (sync, keys, rate).
    pattern: Vec<(&'static str, Keys, f64)>,
}

const SQL_BATCH: u64 = 64;

/// Whose rows a raw SQLite transaction writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keys {
    /// All rows of one saga: consecutive keys, one index leaf page per commit.
    OneSaga,
    /// Each row of another saga with a random id (as the store's ids are): each
    /// row lands on a random leaf page of the `(saga_id, seq)` index.
    Random,
    /// Each row of another saga, ids in creation order (a time prefix): rows
    /// land on the last leaf pages.
    Ordered,
}

fn raw_sqlite(
    dir: &Path,
    synchronous: &str,
    rows_per_tx: u64,
    keys: Keys,
    for_how_long: Duration,
) -> f64 {
    let path = dir.join(format!("raw-{synchronous}-{rows_per_tx}-{keys:?}.db"));
    let _ = std::fs::remove_file(&path);
    let mut conn = rusqlite::Connection::open(&path).expect("open raw sqlite");
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .unwrap();
    assert!(mode.eq_ignore_ascii_case("wal"), "journal_mode {mode}");
    conn.pragma_update(None, "synchronous", synchronous)
        .unwrap();
    conn.execute_batch(
        "CREATE TABLE journal (
             saga_id    TEXT NOT NULL,
             seq        INTEGER NOT NULL,
             kind       TEXT NOT NULL,
             step_index INTEGER,
             attempt    INTEGER,
             payload    BLOB,
             note       TEXT,
             at         INTEGER NOT NULL,
             PRIMARY KEY (saga_id, seq)
         );",
    )
    .unwrap();
    // Extra pragmas for experiments, e.g. "PRAGMA wal_autocheckpoint=20000;".
    if let Ok(extra) = std::env::var("DURABLE_SQL_EXTRA") {
        conn.execute_batch(&extra).expect("DURABLE_SQL_EXTRA");
    }
    let one = SagaId::random().to_string();
    let mut order = 0u64;
    let mut seq = 0i64;
    let start = Instant::now();
    let mut rows = 0u64;
    while start.elapsed() < for_how_long {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO journal (saga_id, seq, kind, step_index, attempt, payload, note, at)
                     VALUES (?1, ?2, 'step_succeeded', 1, NULL, ?3, NULL, 0)",
                )
                .unwrap();
            for _ in 0..rows_per_tx {
                let saga = match keys {
                    Keys::OneSaga => one.clone(),
                    Keys::Random => SagaId::random().to_string(),
                    Keys::Ordered => {
                        order += 1;
                        format!("{order:016x}{}", &SagaId::random().to_string()[16..])
                    }
                };
                stmt.execute(rusqlite::params![saga, seq, b"42".as_slice()])
                    .unwrap();
                if keys == Keys::OneSaga {
                    seq += 1;
                }
            }
        }
        tx.commit().unwrap();
        rows += rows_per_tx;
    }
    let elapsed = start.elapsed();
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    rate(rows, elapsed)
}

/// The store's schema (version 1 of `runtime/src/durable/sqlite.rs`).
const STORE_SCHEMA: &str = "
    CREATE TABLE sagas (
        id          TEXT PRIMARY KEY NOT NULL,
        saga_type   TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        input       BLOB NOT NULL,
        status      TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE INDEX sagas_by_status ON sagas (status);
    CREATE TABLE journal (
        saga_id    TEXT NOT NULL,
        seq        INTEGER NOT NULL,
        kind       TEXT NOT NULL,
        step_index INTEGER,
        attempt    INTEGER,
        payload    BLOB,
        note       TEXT,
        at         INTEGER NOT NULL,
        PRIMARY KEY (saga_id, seq)
    );";

/// The store's writes for `in_flight` sagas interleaved, straight through
/// rusqlite with none of the store's machinery: each round commits one write of
/// every saga in flight (its create, one of its 11 journal entries, or its
/// last entry with the status update), as the store's group commit would at
/// best. The ceiling for the durable rows; returns writes per second.
fn raw_store_pattern(
    dir: &Path,
    synchronous: &str,
    in_flight: usize,
    keys: Keys,
    for_how_long: Duration,
) -> f64 {
    let path = dir.join(format!("pattern-{synchronous}-{in_flight}-{keys:?}.db"));
    let mut conn = rusqlite::Connection::open(&path).expect("open raw sqlite");
    let _: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .unwrap();
    conn.pragma_update(None, "synchronous", synchronous)
        .unwrap();
    conn.execute_batch(STORE_SCHEMA).unwrap();
    if let Ok(extra) = std::env::var("DURABLE_SQL_EXTRA") {
        conn.execute_batch(&extra).expect("DURABLE_SQL_EXTRA");
    }
    let mut order = 0u64;
    let mut new_id = || match keys {
        Keys::Ordered => {
            order += 1;
            format!("{order:016x}{}", &SagaId::random().to_string()[16..])
        }
        _ => SagaId::random().to_string(),
    };
    // Stagger the sagas so that each round has every kind of write.
    let mut slots: Vec<(String, u64)> = (0..in_flight)
        .map(|i| (new_id(), i as u64 % WRITES_PER_SAGA))
        .collect();
    let start = Instant::now();
    let mut writes = 0u64;
    while start.elapsed() < for_how_long {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        for (id, k) in slots.iter_mut() {
            if *k == 0 {
                tx.prepare_cached(
                    "INSERT INTO sagas (id, saga_type, fingerprint, input, status, created_at, updated_at)
                     VALUES (?1, 'five', 'step_a:compensate=undo', ?2, 'running', 0, 0)",
                )
                .unwrap()
                .execute(rusqlite::params![&*id, br#"{"x":7}"#.as_slice()])
                .unwrap();
            } else {
                // Sagas staggered at the start have no create row; it does not matter.
                tx.prepare_cached(
                    "INSERT INTO journal (saga_id, seq, kind, step_index, attempt, payload, note, at)
                     VALUES (?1, ?2, 'step_succeeded', 1, 1, ?3, NULL, 0)",
                )
                .unwrap()
                .execute(rusqlite::params![&*id, *k as i64 - 1, b"42".as_slice()])
                .unwrap();
                if *k == WRITES_PER_SAGA - 1 {
                    tx.prepare_cached(
                        "UPDATE sagas SET status = 'committed', updated_at = 1 WHERE id = ?1",
                    )
                    .unwrap()
                    .execute([&*id])
                    .unwrap();
                }
            }
            *k += 1;
            if *k == WRITES_PER_SAGA {
                *id = new_id();
                *k = 0;
            }
            writes += 1;
        }
        tx.commit().unwrap();
    }
    let elapsed = start.elapsed();
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    rate(writes, elapsed)
}

fn sqlite_rates(dir: &Path) -> SqliteRates {
    let second = Duration::from_secs(1);
    let full_single_tx = raw_sqlite(dir, "FULL", 1, Keys::OneSaga, second);
    let full_batch_rows = raw_sqlite(dir, "FULL", SQL_BATCH, Keys::OneSaga, second);
    let normal_single_tx = raw_sqlite(dir, "NORMAL", 1, Keys::OneSaga, second);
    let full_random_rows = raw_sqlite(dir, "FULL", SQL_BATCH, Keys::Random, second);
    let full_ordered_rows = raw_sqlite(dir, "FULL", SQL_BATCH, Keys::Ordered, second);
    SqliteRates {
        full_single_tx,
        full_batch_rows,
        full_batch_tx: full_batch_rows / SQL_BATCH as f64,
        normal_single_tx,
        full_random_rows,
        full_ordered_rows,
        pattern: [
            ("FULL", Keys::Random),
            ("FULL", Keys::Ordered),
            ("NORMAL", Keys::Random),
            ("NORMAL", Keys::Ordered),
        ]
        .into_iter()
        .map(|(sync, keys)| (sync, keys, raw_store_pattern(dir, sync, 256, keys, second)))
        .collect(),
    }
}

// ---------------------------------------------------------------------------
// 3. Durable sagas
// ---------------------------------------------------------------------------

struct SagaRow {
    durability: Durability,
    in_flight: usize,
    sagas: u64,
    elapsed: Duration,
    entries: u64,
    latency_mean: Duration,
    /// CPU of the store's threads (the writer; the reader is idle), % of a core.
    store_cpu: f64,
    /// CPU of the tokio workers, % of a core.
    tokio_cpu: f64,
}

impl SagaRow {
    fn sagas_per_sec(&self) -> f64 {
        rate(self.sagas, self.elapsed)
    }
    fn transitions_per_sec(&self) -> f64 {
        rate(self.entries, self.elapsed)
    }
    fn writes_per_sec(&self) -> f64 {
        rate(self.entries + self.sagas, self.elapsed)
    }
}

fn run_sagas(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    durability: Durability,
    in_flight: usize,
    for_how_long: Duration,
) -> SagaRow {
    let path = dir.join(format!("sagas-{durability:?}-{in_flight}.db"));
    let store = SqliteStore::open(&path, durability).expect("open store");
    let exec = Arc::new(executor(store));

    // Warm-up: a few sagas, not counted in time (they are in the file, so
    // counted out of the row counts below).
    let warm = rt.block_on(async {
        let counter = exec.resources().get::<Counter>().unwrap();
        let mut n = 0u64;
        for i in 0..20 {
            let started = exec.start(FiveSaga::new(counter, i)).await.unwrap();
            let out = started.outcome().await.unwrap().unwrap();
            assert_eq!(out, i + 5);
            n += 1;
        }
        n
    });

    let cpu_before = thread_cpu();
    let (sagas, elapsed, busy) = rt.block_on(async {
        let start = Instant::now();
        let deadline = start + for_how_long;
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..in_flight {
            let exec = Arc::clone(&exec);
            tasks.spawn(async move {
                let counter = exec.resources().get::<Counter>().unwrap();
                let mut n = 0u64;
                let mut busy = Duration::ZERO;
                let mut x = (w as u64) << 32;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let started = exec.start(FiveSaga::new(counter, x)).await.unwrap();
                    let out = started.outcome().await.unwrap().unwrap();
                    assert_eq!(out, x + 5);
                    busy += t.elapsed();
                    x += 1;
                    n += 1;
                }
                (n, busy)
            });
        }
        let mut total = 0u64;
        let mut busy = Duration::ZERO;
        while let Some(done) = tasks.join_next().await {
            let (n, b) = done.expect("bench task panicked");
            total += n;
            busy += b;
        }
        (total, start.elapsed(), busy)
    });
    let cpu_after = thread_cpu();
    // Dropping the executor drops the store: its threads finish and the file closes.
    drop(exec);
    let (entries, committed) = count_rows(&path);
    assert_eq!(
        committed,
        sagas + warm,
        "every saga run should be committed in the file"
    );
    let entries = entries - warm * ENTRIES_PER_SAGA;
    if entries != sagas * ENTRIES_PER_SAGA {
        eprintln!(
            "note: {entries} journal entries for {sagas} sagas (expected {} each)",
            ENTRIES_PER_SAGA
        );
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    SagaRow {
        durability,
        in_flight,
        sagas,
        elapsed,
        entries,
        latency_mean: busy / sagas.max(1) as u32,
        store_cpu: cpu_share(&cpu_before, &cpu_after, "sagaflow-sqlite", elapsed),
        tokio_cpu: cpu_share(&cpu_before, &cpu_after, "bench-tokio", elapsed),
    }
}

// ---------------------------------------------------------------------------
// 4. Recovery
// ---------------------------------------------------------------------------

struct RecoverRow {
    durability: Durability,
    sagas: u64,
    claimed: u64,
    elapsed: Duration,
    /// CPU of the store's threads, % of a core.
    store_cpu: f64,
    /// CPU of every other thread (the one driving `recover()`), % of a core.
    other_cpu: f64,
}

/// Writes `count` sagas as a crash after step 2's intent leaves them, into a new
/// store file at `path`; returns how long it took.
fn write_crashed(rt: &tokio::runtime::Runtime, path: &Path, count: u64) -> Duration {
    let start = Instant::now();
    // Normal: the setup need not wait for fsyncs; dropping the store checkpoints.
    let store = SqliteStore::open(path, Durability::Normal).expect("open store for setup");
    let print = fingerprint(FiveSaga::STEPS);
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        // Enough writers at once to fill the writer's batches.
        let writers = 512u64;
        for w in 0..writers {
            let store = store.clone();
            let print = print.clone();
            tasks.spawn(async move {
                let mut i = w;
                while i < count {
                    let id = SagaId::random();
                    store
                        .create(NewSaga {
                            id,
                            saga_type: "five".into(),
                            fingerprint: print.clone(),
                            input: format!(r#"{{"x":{i}}}"#).into_bytes(),
                        })
                        .await
                        .unwrap();
                    let journal = [
                        Entry::StepStarted {
                            index: 0,
                            attempt: 1,
                        },
                        Entry::StepSucceeded {
                            index: 0,
                            output: (i + 1).to_string().into_bytes(),
                        },
                        Entry::StepStarted {
                            index: 1,
                            attempt: 1,
                        },
                        Entry::StepSucceeded {
                            index: 1,
                            output: (i + 2).to_string().into_bytes(),
                        },
                        Entry::StepStarted {
                            index: 2,
                            attempt: 1,
                        },
                    ];
                    for entry in journal {
                        store.append(id, entry).await.unwrap();
                    }
                    i += writers;
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("setup task panicked");
        }
    });
    drop(store);
    start.elapsed()
}

fn recover(
    rt: &tokio::runtime::Runtime,
    path: &Path,
    durability: Durability,
    count: u64,
) -> RecoverRow {
    let store = SqliteStore::open(path, durability).expect("open store to recover");
    let exec = executor(store);
    let cpu_before = thread_cpu();
    let start = Instant::now();
    // `recover()` is not `Send` (it drives the sagas itself): block on it here.
    let report = rt.block_on(exec.recover()).expect("recover");
    let elapsed = start.elapsed();
    let cpu_after = thread_cpu();
    let store_cpu = cpu_share(&cpu_before, &cpu_after, "sagaflow-sqlite", elapsed);
    let other_cpu = cpu_share(&cpu_before, &cpu_after, "", elapsed) - store_cpu;
    let claimed = report.sagas.len() as u64;
    let committed = report.count(|o| matches!(o, RecoveredOutcome::Committed));
    if committed as u64 != count {
        eprintln!(
            "note: recovery committed {committed} of {count} sagas ({} reported); first: {:?}",
            report.sagas.len(),
            report
                .sagas
                .iter()
                .find(|s| s.outcome != RecoveredOutcome::Committed)
        );
    }
    let steps_run = exec
        .resources()
        .get::<Counter>()
        .unwrap()
        .0
        .load(Ordering::Relaxed);
    assert_eq!(
        steps_run,
        3 * count,
        "recovery runs steps 2, 3 and 4 of each saga"
    );
    drop(exec);
    let (entries, committed_rows) = count_rows(path);
    assert_eq!(committed_rows, count);
    assert_eq!(entries, count * (5 + 7));
    RecoverRow {
        durability,
        sagas: committed as u64,
        claimed,
        elapsed,
        store_cpu,
        other_cpu,
    }
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

fn main() {
    // `cargo bench` passes `--bench`; filters and other flags are ignored.
    let secs = env_f64("DURABLE_SECS", 2.5).max(0.1);
    let recover_count = env_f64("DURABLE_RECOVER", 10_000.0).max(1.0) as u64;
    let only = std::env::var("DURABLE_ONLY").unwrap_or_default();
    let inflight_only = std::env::var("DURABLE_INFLIGHT").unwrap_or_default();
    let level_only = std::env::var("DURABLE_LEVEL").unwrap_or_default();
    let part = |p: &str| only.is_empty() || only == p;
    let saga_time = Duration::from_secs_f64(secs);

    std::fs::create_dir_all(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("durable-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir under CARGO_TARGET_TMPDIR");
    let dir: PathBuf = tmp.path().to_path_buf();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = runtime();
    let began = Instant::now();

    let mut out = String::new();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "sagaflow durable: {cores} core(s); files in {} on {}",
        dir.display(),
        disk_of(&dir)
    );
    let _ = writeln!(out);

    let disk = part("disk").then(|| fsync_rate(&dir, Duration::from_secs(1)));
    let sql = part("sqlite").then(|| sqlite_rates(&dir));

    if disk.is_some() || sql.is_some() {
        let _ = writeln!(
            out,
            "baseline                                              rate"
        );
        if let Some(d) = &disk {
            let _ = writeln!(
                out,
                "  disk: write 64 B + fsync (sync_data)      {:>12} fsyncs/s  ({:.0} µs each)",
                fmt_rate(d.fsyncs_per_sec),
                d.mean_latency.as_secs_f64() * 1e6
            );
        }
        if let Some(s) = &sql {
            let _ = writeln!(
                out,
                "  sqlite WAL sync=FULL, 1 row/tx            {:>12} commits/s",
                fmt_rate(s.full_single_tx)
            );
            let _ = writeln!(
                out,
                "  sqlite WAL sync=FULL, {SQL_BATCH} rows/tx          {:>12} rows/s  ({} commits/s)",
                fmt_rate(s.full_batch_rows),
                fmt_rate(s.full_batch_tx)
            );
            let _ = writeln!(
                out,
                "  sqlite WAL sync=NORMAL, 1 row/tx          {:>12} commits/s",
                fmt_rate(s.normal_single_tx)
            );
            let _ = writeln!(
                out,
                "  sqlite sync=FULL, {SQL_BATCH} rows/tx, {SQL_BATCH} random ids {:>12} rows/s  (the store's key pattern)",
                fmt_rate(s.full_random_rows)
            );
            let _ = writeln!(
                out,
                "  sqlite sync=FULL, {SQL_BATCH} rows/tx, {SQL_BATCH} ordered ids{:>12} rows/s  (time-prefixed ids)",
                fmt_rate(s.full_ordered_rows)
            );
            for (sync, keys, r) in &s.pattern {
                let _ = writeln!(
                    out,
                    "  store's writes, 256 sagas/commit, sync={sync:<6} {:<7} ids {:>9} writes/s  \
                     ({} transitions/s)",
                    format!("{keys:?}").to_lowercase(),
                    fmt_rate(*r),
                    fmt_rate(r * ENTRIES_PER_SAGA as f64 / WRITES_PER_SAGA as f64)
                );
            }
        }
        let _ = writeln!(out);
    }
    print!("{out}");
    out.clear();

    let mut rows = Vec::new();
    if part("sagas") {
        for durability in [Durability::Full, Durability::Normal] {
            if !level_only.is_empty()
                && !format!("{durability:?}").eq_ignore_ascii_case(&level_only)
            {
                continue;
            }
            for in_flight in [1usize, 16, 256] {
                if !inflight_only.is_empty() && inflight_only != in_flight.to_string() {
                    continue;
                }
                let row = run_sagas(&rt, &dir, durability, in_flight, saga_time);
                eprintln!(
                    "  ({:?}, {in_flight} in flight: {} sagas in {:.2} s)",
                    durability,
                    row.sagas,
                    row.elapsed.as_secs_f64()
                );
                rows.push(row);
            }
        }
        let _ = writeln!(
            out,
            "durable 5-step saga, multi-thread runtime, {:.1} s per row; transitions = journal \
             entries ({ENTRIES_PER_SAGA} per saga: intent + outcome per step, Finished), read \
             back from the file; writes = transitions + the create ({WRITES_PER_SAGA} per saga)",
            secs
        );
        let _ = writeln!(
            out,
            "  durability  in flight      sagas/s   transitions/s       writes/s   saga latency   CPU: writer  tokio"
        );
        for r in &rows {
            let _ = writeln!(
                out,
                "  {:<10}  {:>9}  {:>11}  {:>14}  {:>13}   {:>7.2} ms   {:>9.0}%  {:>4.0}%",
                format!("{:?}", r.durability),
                r.in_flight,
                fmt_rate(r.sagas_per_sec()),
                fmt_rate(r.transitions_per_sec()),
                fmt_rate(r.writes_per_sec()),
                r.latency_mean.as_secs_f64() * 1e3,
                r.store_cpu,
                r.tokio_cpu
            );
        }
        let _ = writeln!(out);
        print!("{out}");
        out.clear();
    }

    let mut recovered = Vec::new();
    if part("recover") {
        let full_path = dir.join("recover-full.db");
        let setup = write_crashed(&rt, &full_path, recover_count);
        let normal_path = dir.join("recover-normal.db");
        let read_path = dir.join("recover-read.db");
        // The setup store was dropped: its WAL is checkpointed into the file.
        std::fs::copy(&full_path, &normal_path).expect("copy the crashed store");
        std::fs::copy(&full_path, &read_path).expect("copy the crashed store");
        // The read alone, on a third copy: what `recover()` does before it runs anything.
        let read = {
            let store = SqliteStore::open(&read_path, Durability::Full).expect("open");
            let start = Instant::now();
            let records = rt.block_on(store.claim_unfinished()).expect("claim");
            let read = start.elapsed();
            assert_eq!(records.len() as u64, recover_count);
            read
        };
        recovered.push(recover(&rt, &full_path, Durability::Full, recover_count));
        recovered.push(recover(
            &rt,
            &normal_path,
            Durability::Normal,
            recover_count,
        ));
        let _ = writeln!(
            out,
            "recovery of {recover_count} sagas crashed after step 2's intent (setup: {:.2} s), \
             `recover()` from a fresh open until all committed",
            setup.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "  (of which reading them with their journals, `claim_unfinished()` alone: {:.3} s)",
            read.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "  durability   recovered       time        sagas/s   transitions/s   CPU: writer  driver"
        );
        for r in &recovered {
            let _ = writeln!(
                out,
                "  {:<10}  {:>10}  {:>7.3} s  {:>13}  {:>14}   {:>9.0}%  {:>5.0}%",
                format!("{:?}", r.durability),
                format!("{}/{}", r.sagas, r.claimed),
                r.elapsed.as_secs_f64(),
                fmt_rate(rate(r.sagas, r.elapsed)),
                fmt_rate(rate(r.sagas * 7, r.elapsed)),
                r.store_cpu,
                r.other_cpu
            );
        }
        let _ = writeln!(out);
    }

    // Targets.
    let find =
        |d: Durability, n: usize| rows.iter().find(|r| r.durability == d && r.in_flight == n);
    let mut targets: Vec<(String, Option<f64>, f64)> = Vec::new();
    for d in [Durability::Full, Durability::Normal] {
        if !rows.is_empty() {
            targets.push((
                format!("{d:?}, 1 saga alone: >= 5,000 transitions/s"),
                find(d, 1).map(SagaRow::transitions_per_sec),
                5_000.0,
            ));
            targets.push((
                format!("{d:?}, 256 in flight: >= 100,000 transitions/s"),
                find(d, 256).map(SagaRow::transitions_per_sec),
                100_000.0,
            ));
        }
    }
    if !targets.is_empty() {
        let _ = writeln!(out, "targets (2-core machine)");
        for (what, got, want) in &targets {
            let verdict = match got {
                Some(g) if g >= want => format!("met     ({} transitions/s)", fmt_rate(*g)),
                Some(g) => format!(
                    "MISSED  ({} transitions/s, {:.0}% of target)",
                    fmt_rate(*g),
                    g / want * 100.0
                ),
                None => "not measured".to_owned(),
            };
            let _ = writeln!(out, "  {what:<48} {verdict}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "total bench time {:.1} s",
        began.elapsed().as_secs_f64()
    );
    print!("{out}");
}
