//! Sagas that send messages, and a relay that delivers them to Redis, in one
//! process SIGKILLed at random moments over and over (at least 100 kills) and
//! restarted over the same SQLite file, while sagas keep being submitted; then
//! a last process drives and relays everything that is left. Checked on the
//! Redis side: every message of every saga arrived (no id missing), none of a
//! compensated saga's body messages did, nothing arrived that the store does
//! not hold, each saga's messages arrived in order, and a message arrived more
//! than once only as often as a kill can explain (between a delivery and its
//! settlement).
//!
//! The process is this test binary run again (`child_process`, which does
//! nothing unless `OUTBOX_KILL_CHILD` is set): a worker (`Executor::worker`)
//! and a `Relay` to `RedisStreams`, side by side.
#![cfg(feature = "redis")]

mod support;

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sagaflow::durable::{Durability, Executor, SagaStatus, SqliteStore, Store, WorkerConfig};
use sagaflow::outbox::{
    MessageFilter, MessageState, Outbox, RedisConfig, RedisStreams, Relay, RelayConfig, SendError,
};
use sagaflow::{StepContext, saga, step};

/// Kills at least this many processes (`OUTBOX_KILL_KILLS` overrides).
const KILLS: usize = 100;
/// The relay's lease: what a killed relay's messages wait before the next one.
const LEASE: Duration = Duration::from_millis(300);
/// The relay's batch: at most this many messages are delivered and not yet
/// settled when a kill comes.
const BATCH: usize = 16;
const STREAMS: [&str; 3] = ["payments", "audit", "notices"];

#[derive(Debug)]
struct JobError(String);

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<SendError> for JobError {
    fn from(e: SendError) -> Self {
        JobError(e.to_string())
    }
}

struct Shop;

async fn pause() {
    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..4))).await;
}

#[step(compensate = refund)]
async fn charge(_shop: &Shop, n: u32) -> Result<u32, JobError> {
    StepContext::send_keyed("payments", n, &serde_json::json!({ "charged": n }))?;
    pause().await;
    Ok(n)
}

async fn refund(_shop: &Shop, n: u32, _charged: &u32) -> Result<(), JobError> {
    StepContext::send_keyed("payments", n, &serde_json::json!({ "refunded": n }))?;
    pause().await;
    Ok(())
}

/// Fails for one saga in four: its charge is refunded.
#[step(pivot)]
async fn ship(_shop: &Shop, n: &u32) -> Result<u32, JobError> {
    pause().await;
    if n.is_multiple_of(4) {
        return Err(JobError(format!("order {n}: out of stock")));
    }
    Ok(*n)
}

#[saga]
async fn order(shop: &Shop, n: u32) -> Result<u32, JobError> {
    let charged = charge(shop, n).await?;
    let shipped = ship(shop, &charged).await?;
    sagaflow::send!("audit", &serde_json::json!({ "order": shipped }));
    sagaflow::send!(
        "notices",
        key = shipped,
        &serde_json::json!({ "shipped": shipped })
    );
    Ok(shipped)
}

/// The process that is killed: a worker and a relay over the store, and a
/// new saga every few milliseconds; or, with `OUTBOX_KILL_CHILD=drain`, no new
/// sagas, and an exit once every saga has ended and every message is
/// delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process() {
    let Ok(mode) = std::env::var("OUTBOX_KILL_CHILD") else {
        return; // not a child: the test below starts these
    };
    let path = std::env::var("OUTBOX_KILL_DB").unwrap();
    let url = std::env::var("SAGAFLOW_REDIS_URL").unwrap();
    let prefix = std::env::var("OUTBOX_KILL_PREFIX").unwrap();
    let store = SqliteStore::open(&path, Durability::Normal).expect("open the store");
    let executor = Executor::new(store.clone())
        .resource(Shop)
        .register::<OrderSaga>();
    let sink = RedisStreams::connect(RedisConfig::new(url).prefix(prefix))
        .await
        .expect("connect to Redis");
    let relay = Relay::new(
        store.clone(),
        sink,
        RelayConfig {
            batch: BATCH,
            lease: LEASE,
            poll: Duration::from_millis(5),
            concurrency: 8,
            ..RelayConfig::default()
        },
    );
    tokio::spawn(relay.run());
    let worker = executor.worker(WorkerConfig {
        concurrency: 16,
        poll: Duration::from_millis(5),
    });
    tokio::spawn(worker.run());
    let shop = Shop;
    if mode == "work" {
        loop {
            let n = fastrand::u32(..);
            executor
                .submit(OrderSaga::new(&shop, n))
                .await
                .expect("submit");
            tokio::time::sleep(Duration::from_millis(8)).await;
        }
    }
    let start = Instant::now();
    loop {
        let running = store.with_status(SagaStatus::Running).await.unwrap();
        let pending = store
            .messages(MessageFilter {
                state: Some(MessageState::Pending),
                limit: Some(1),
                ..MessageFilter::default()
            })
            .await
            .unwrap();
        if running.is_empty() && pending.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "not drained in 2 min: {} sagas running, messages pending: {}",
            running.len(),
            !pending.is_empty()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn child(mode: &str, db: &std::path::Path, url: &str, prefix: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("OUTBOX_KILL_CHILD", mode)
        .env("OUTBOX_KILL_DB", db)
        .env("OUTBOX_KILL_PREFIX", prefix)
        .env("SAGAFLOW_REDIS_URL", url)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start a child")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_redis_at_least_once_through_a_hundred_kills() {
    if std::env::var("OUTBOX_KILL_CHILD").is_ok() {
        return;
    }
    let Some(url) = support::redis_url() else {
        return;
    };
    let kills = support::env_count("OUTBOX_KILL_KILLS", KILLS);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("outbox.db");
    let prefix = format!("sagaflow-kill:{:08x}:", fastrand::u32(..));
    for _ in 0..kills {
        let mut process = child("work", &db, &url, &prefix);
        std::thread::sleep(Duration::from_millis(fastrand::u64(60..400)));
        process.kill().expect("SIGKILL the child");
        process.wait().unwrap();
    }
    let status = child("drain", &db, &url, &prefix).wait().unwrap();
    assert!(status.success(), "the last process did not drain the store");

    let store = SqliteStore::open(&db, Durability::Normal).unwrap();
    let committed = store.with_status(SagaStatus::Committed).await.unwrap();
    let compensated = store.with_status(SagaStatus::Compensated).await.unwrap();
    assert!(
        store
            .with_status(SagaStatus::Parked)
            .await
            .unwrap()
            .is_empty(),
        "nothing parks here"
    );
    assert!(
        committed.len() >= kills && !compensated.is_empty(),
        "{} committed, {} compensated",
        committed.len(),
        compensated.len()
    );
    let stored = store.messages(MessageFilter::default()).await.unwrap();
    assert!(
        stored.iter().all(|m| m.state == MessageState::Delivered),
        "every stored message delivered"
    );
    // What each saga should have sent, from its outcome alone.
    let mut by_saga: HashMap<String, Vec<&str>> = HashMap::new();
    for m in &stored {
        by_saga
            .entry(m.saga_id.to_string())
            .or_default()
            .push(m.message.destination.as_str());
    }
    for saga in &committed {
        let sent = by_saga
            .get(&saga.id.to_string())
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            sent,
            ["payments", "audit", "notices"],
            "committed {}",
            saga.id
        );
    }
    for saga in &compensated {
        let sent = by_saga
            .get(&saga.id.to_string())
            .cloned()
            .unwrap_or_default();
        assert_eq!(sent, ["payments", "payments"], "compensated {}", saga.id);
    }

    // The Redis side.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let mut arrived: Vec<String> = Vec::new();
    let mut order_seen: HashMap<String, Vec<String>> = HashMap::new();
    for stream in STREAMS {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(format!("{prefix}{stream}"))
            .arg("-")
            .arg("+")
            .query_async(&mut redis)
            .await
            .unwrap();
        for entry in reply.ids {
            let id: String = entry.get("id").expect("an id field");
            let saga: String = entry.get("saga").expect("a saga field");
            let seen = order_seen.entry(format!("{saga} {stream}")).or_default();
            if !seen.contains(&id) {
                seen.push(id.clone());
            }
            arrived.push(id);
        }
    }
    let unique: HashSet<&String> = arrived.iter().collect();
    let expected: HashSet<&String> = stored.iter().map(|m| &m.message.id).collect();
    let missing: Vec<_> = expected.difference(&unique).collect();
    let extra: Vec<_> = unique.difference(&expected).collect();
    assert!(
        missing.is_empty(),
        "{} messages never arrived: {missing:?}",
        missing.len()
    );
    assert!(extra.is_empty(), "arrived but never stored: {extra:?}");
    let compensated_ids: HashSet<String> = compensated.iter().map(|s| s.id.to_string()).collect();
    assert!(
        !arrived
            .iter()
            .any(|id| id.contains("-end-")
                && compensated_ids.contains(id.split('-').next().unwrap())),
        "a compensated saga's body message arrived"
    );
    // Each saga's messages in each stream, first arrivals, in the order sent.
    let mut sent_order: HashMap<String, Vec<String>> = HashMap::new();
    for m in &stored {
        sent_order
            .entry(format!("{} {}", m.saga_id, m.message.destination))
            .or_default()
            .push(m.message.id.clone());
    }
    assert_eq!(
        order_seen, sent_order,
        "each saga's messages in order per stream"
    );
    let repeats = arrived.len() - unique.len();
    assert!(
        repeats <= kills * BATCH,
        "{repeats} repeats: more than {kills} kills of {BATCH}-message rounds explain"
    );
    eprintln!(
        "{kills} kills: {} sagas committed, {} compensated, {} messages, {repeats} delivered twice",
        committed.len(),
        compensated.len(),
        unique.len()
    );
    let keys: Vec<String> = STREAMS.iter().map(|s| format!("{prefix}{s}")).collect();
    let _: () = redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut redis)
        .await
        .unwrap();
}
