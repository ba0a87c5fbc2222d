//! Messages relayed per second from a SQLite store to Redis Streams, against
//! what the same Redis server takes from `redis-benchmark`, in the same run.
//!
//! Run with `SAGAFLOW_REDIS_URL=redis://127.0.0.1:6379/ cargo bench -p
//! sagaflow --features redis --bench outbox_redis`. A measurement, not a test:
//! it prints a table and exits 0; without the URL, or without
//! `redis-benchmark` on PATH, it says so and does nothing.
//!
//! 1. A SQLite store (`Durability::Full`, in a temporary directory) is filled
//!    through the `Store` API with `OUTBOX_BENCH_SAGAS` (default 10,000)
//!    committed sagas of two steps, the first sending two messages (`orders`,
//!    `audit`), the second one (`notifications`): 3 messages and 2 transitions
//!    a saga.
//! 2. A `Relay` (batches of 512, 64 sagas at once) delivers them all to a
//!    `RedisStreams` sink, round after round until nothing is left; the
//!    streams are counted afterwards, not trusted.
//! 3. The sink alone: the same transitions delivered again straight to Redis,
//!    64 at once, without a store: what the relay's store work costs.
//! 4. `redis-benchmark -n 100000 -q XADD sagaflow-bench '*' f v` (50 clients,
//!    no pipelining): one plain `XADD` per round trip. The ratio of 2. to it
//!    is the figure.

#[path = "../tests/support/outbox.rs"]
#[allow(dead_code)] // the tests use more of it
mod fill;

use std::process::Command;
use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use redis::AsyncCommands;
use sagaflow::SagaId;
use sagaflow::durable::{
    Durability, Entry, NewSaga, SagaRecord, SagaStatus, SqliteStore, Store, StoreError,
};
use sagaflow::outbox::{
    ClaimedMessages, MessageFilter, MessageState, Outbox, RedisConfig, RedisStreams, Relay,
    RelayConfig, Settlement, Sink, StoredMessage,
};

const SHAPE: &[&[&str]] = &[&["orders", "audit"], &["notifications"]];
const STREAMS: [&str; 3] = ["orders", "audit", "notifications"];

fn main() {
    let Some(url) = std::env::var("SAGAFLOW_REDIS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    else {
        println!("SAGAFLOW_REDIS_URL not set: nothing measured");
        return;
    };
    if Command::new("redis-benchmark")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("redis-benchmark is not on PATH (Debian: redis-tools): nothing measured");
        return;
    }
    let sagas: usize = std::env::var("OUTBOX_BENCH_SAGAS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let (host, port) = host_port(&url);
    println!("outbox relay to Redis at {host}:{port}, {sagas} sagas × 3 messages");
    let relayed = rt.block_on(run(&url, sagas));
    let xadd = redis_benchmark(&host, &port);
    rt.block_on(async {
        let mut redis = connect(&url).await;
        let _: () = redis.del("sagaflow-bench").await.unwrap();
    });
    println!("redis-benchmark XADD (50 clients)  : {xadd:>9.0} requests/s");
    println!(
        "relay / redis-benchmark XADD       : {:>9.2}",
        relayed / xadd
    );
}

async fn connect(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis")
}

/// Fills a store, relays it, delivers the same again without the store;
/// answers the relay's messages per second.
async fn run(url: &str, sagas: usize) -> f64 {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path().join("outbox.db"), Durability::Full).expect("open");
    let started = Instant::now();
    let filled: Vec<fill::FilledSaga> = futures_util::stream::iter(0..sagas)
        .map(|_| fill::fill_one(&store, SHAPE, true))
        .buffer_unordered(256)
        .collect()
        .await;
    println!(
        "filled the store                   : {:>9.2?}",
        started.elapsed()
    );

    let prefix = format!("sagaflow-bench:{}:", std::process::id());
    let config = RedisConfig::new(url).prefix(prefix.clone());
    let sink = RedisStreams::connect(config)
        .await
        .expect("connect to Redis");
    let store = Timed {
        store,
        claiming: Arc::default(),
        settling: Arc::default(),
    };
    let (claiming, settling) = (store.claiming.clone(), store.settling.clone());
    let relay = Relay::new(
        store,
        sink.clone(),
        RelayConfig {
            batch: 512,
            concurrency: 64,
            ..RelayConfig::default()
        },
    );
    let started = Instant::now();
    let mut rounds = 0;
    let mut delivered = 0;
    loop {
        let report = relay.run_once().await;
        assert!(report.is_clean(), "the relay failed: {:?}", report.errors);
        if report.claimed == 0 {
            break;
        }
        rounds += 1;
        delivered += report.delivered;
    }
    let took = started.elapsed();
    let messages = 3 * sagas as u64;
    assert_eq!(delivered, messages, "every message delivered once");
    let mut redis = connect(url).await;
    let mut in_streams = 0;
    for stream in STREAMS {
        let len: u64 = redis.xlen(format!("{prefix}{stream}")).await.unwrap();
        in_streams += len;
    }
    assert_eq!(in_streams, messages, "every message in its stream");
    let left = relay
        .store()
        .messages(MessageFilter {
            state: Some(MessageState::Pending),
            ..MessageFilter::default()
        })
        .await
        .unwrap();
    assert!(left.is_empty(), "{} messages still pending", left.len());
    let relayed = rate(messages, took);
    println!("relayed ({rounds:>4} rounds)              : {took:>9.2?}");
    let micros = |total: &AtomicU64| Duration::from_micros(total.load(Ordering::Relaxed));
    println!(
        "  of which claiming                : {:>9.2?}",
        micros(&claiming)
    );
    println!(
        "  of which settling                : {:>9.2?}",
        micros(&settling)
    );
    println!("relay, store to Redis              : {relayed:>9.0} messages/s");
    println!(
        "                                     {:>9.0} transitions/s",
        rate(2 * sagas as u64, took)
    );

    let started = Instant::now();
    let transitions = filled.iter().flat_map(|s| s.transitions.iter());
    futures_util::stream::iter(transitions)
        .map(|t| sink.deliver(t))
        .buffer_unordered(64)
        .for_each(|r| {
            r.expect("deliver");
            async {}
        })
        .await;
    println!(
        "sink alone, 64 at once             : {:>9.0} messages/s",
        rate(messages, started.elapsed())
    );
    let keys: Vec<String> = STREAMS.iter().map(|s| format!("{prefix}{s}")).collect();
    let _: () = redis.del(keys).await.unwrap();
    relayed
}

/// The store, with the time spent in its claims and settlements added up.
struct Timed {
    store: SqliteStore,
    claiming: Arc<AtomicU64>,
    settling: Arc<AtomicU64>,
}

async fn timed<T>(total: &AtomicU64, work: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let out = work.await;
    total.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    out
}

impl Store for Timed {
    async fn create(&self, saga: NewSaga) -> Result<(), StoreError> {
        self.store.create(saga).await
    }
    async fn append(&self, id: SagaId, entry: Entry) -> Result<(), StoreError> {
        self.store.append(id, entry).await
    }
    async fn claim_unfinished(&self) -> Result<Vec<SagaRecord>, StoreError> {
        self.store.claim_unfinished().await
    }
    async fn get(&self, id: SagaId) -> Result<Option<SagaRecord>, StoreError> {
        self.store.get(id).await
    }
    async fn with_status(&self, status: SagaStatus) -> Result<Vec<SagaRecord>, StoreError> {
        self.store.with_status(status).await
    }
}

impl Outbox for Timed {
    async fn claim_messages(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<ClaimedMessages, StoreError> {
        timed(&self.claiming, self.store.claim_messages(limit, lease)).await
    }
    async fn settle_messages(
        &self,
        token: u64,
        settlements: Vec<Settlement>,
    ) -> Result<(), StoreError> {
        timed(
            &self.settling,
            self.store.settle_messages(token, settlements),
        )
        .await
    }
    async fn messages(&self, filter: MessageFilter) -> Result<Vec<StoredMessage>, StoreError> {
        self.store.messages(filter).await
    }
    async fn resend(&self, id: &str) -> Result<bool, StoreError> {
        self.store.resend(id).await
    }
}

fn rate(count: u64, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64()
}

/// Host and port of a `redis://[user[:password]@]host[:port][/db]` URL.
fn host_port(url: &str) -> (String, String) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once(':') {
        Some((host, port)) => (host.to_owned(), port.to_owned()),
        None => (authority.to_owned(), "6379".to_owned()),
    }
}

/// `redis-benchmark`'s rate of plain `XADD`s on the same server.
fn redis_benchmark(host: &str, port: &str) -> f64 {
    let output = Command::new("redis-benchmark")
        .args(["-h", host, "-p", port, "-n", "100000", "-q"])
        .args(["XADD", "sagaflow-bench", "*", "f", "v"])
        .output()
        .expect("run redis-benchmark");
    let text = String::from_utf8_lossy(&output.stdout);
    text.split(['\r', '\n'])
        .filter_map(|line| {
            let (_, after) = line.split_once(": ")?;
            after.split_whitespace().next()?.parse::<f64>().ok()
        })
        .next_back()
        .unwrap_or_else(|| panic!("redis-benchmark said: {text}"))
}
