//! The Redis Streams sink against a real server (`SAGAFLOW_REDIS_URL`): a
//! transition's messages to several streams land together, in order, with
//! their ids; trimming and prefixes; a server that is not there, or stops,
//! gives an error that names it; a relay from a SQLite store delivers every
//! message in order per saga, and again after a relay died before its
//! settlement. Each test writes streams of its own prefix.
#![cfg(feature = "redis")]

mod support;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use sagaflow::SagaId;
use sagaflow::durable::{Durability, SqliteStore};
use sagaflow::outbox::{
    Message, MessageFilter, MessageState, Outbox, RedisConfig, RedisStreams, Relay, RelayConfig,
    RelayReport, Sink,
};
use support::outbox::{fill, message};

/// A prefix no other test (or run) writes under.
fn prefix(test: &str) -> String {
    format!("sagaflow-test:{test}:{:08x}:", fastrand::u32(..))
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to SAGAFLOW_REDIS_URL")
}

/// A stream's entries, each as its fields.
async fn entries(
    connection: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> Vec<HashMap<String, String>> {
    let reply: redis::streams::StreamRangeReply = connection
        .xrange_all(stream)
        .await
        .expect("XRANGE a test stream");
    reply
        .ids
        .into_iter()
        .map(|entry| {
            entry
                .map
                .into_iter()
                .map(|(field, value)| {
                    let value: String = redis::from_redis_value(value).expect("a string field");
                    (field, value)
                })
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn a_transitions_messages_to_several_streams_land_in_order_with_their_ids() {
    let Some(url) = support::redis_url() else {
        return;
    };
    let prefix = prefix("layout");
    let sink = RedisStreams::connect(RedisConfig::new(url.clone()).prefix(prefix.clone()))
        .await
        .expect("connect");
    let saga = SagaId::time_ordered();
    let mut keyless = message(saga, 2, 1, "audit");
    keyless.key = None;
    let transition = vec![
        message(saga, 2, 0, "orders"),
        keyless.clone(),
        message(saga, 2, 2, "orders"),
    ];
    sink.deliver(&transition).await.expect("deliver");

    let mut redis = raw(&url).await;
    let orders = entries(&mut redis, &format!("{prefix}orders")).await;
    let audit = entries(&mut redis, &format!("{prefix}audit")).await;
    let ids = |entries: &[HashMap<String, String>]| -> Vec<String> {
        entries.iter().map(|e| e["id"].clone()).collect()
    };
    assert_eq!(
        ids(&orders),
        vec![transition[0].id.clone(), transition[2].id.clone()]
    );
    assert_eq!(ids(&audit), vec![keyless.id.clone()]);
    let first = &orders[0];
    assert_eq!(first["saga"], saga.to_string());
    assert_eq!(first["key"], saga.to_string());
    assert_eq!(
        first["payload"].as_bytes(),
        transition[0].payload.as_slice()
    );
    assert_eq!(first["created_ms"], transition[0].created_ms.to_string());
    assert!(!audit[0].contains_key("key"), "no key field without a key");
    assert_eq!(
        first.len(),
        5,
        "id, saga, key, payload, created_ms: {first:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reader_ever_sees_part_of_a_transition() {
    let Some(url) = support::redis_url() else {
        return;
    };
    let prefix = prefix("atomic");
    let sink = RedisStreams::connect(RedisConfig::new(url.clone()).prefix(prefix.clone()))
        .await
        .expect("connect");
    const TRANSITIONS: u64 = 100;
    let (a, b) = (format!("{prefix}a"), format!("{prefix}b"));
    let reader = tokio::spawn({
        let (url, a, b) = (url.clone(), a.clone(), b.clone());
        async move {
            let mut redis = raw(&url).await;
            let mut looks = 0u32;
            loop {
                // One snapshot of both lengths.
                let (len_a, len_b): (u64, u64) = redis::pipe()
                    .atomic()
                    .xlen(&a)
                    .xlen(&b)
                    .query_async(&mut redis)
                    .await
                    .expect("XLEN");
                assert_eq!(len_a, 2 * len_b, "a reader saw part of a transition");
                looks += 1;
                if len_b == TRANSITIONS {
                    return looks;
                }
            }
        }
    });
    // Payloads of 32 KiB: a transition is more than the server reads from a
    // client at once, so without MULTI/EXEC the reader's snapshots would fall
    // between its XADDs.
    let big = serde_json::to_vec(&"x".repeat(32 * 1024)).unwrap();
    for _ in 0..TRANSITIONS {
        let saga = SagaId::time_ordered();
        let mut transition = [
            message(saga, 0, 0, "a"),
            message(saga, 0, 1, "b"),
            message(saga, 0, 2, "a"),
        ];
        for m in &mut transition {
            m.payload = big.clone();
        }
        sink.deliver(&transition).await.expect("deliver");
    }
    let looks = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the reader sees every transition")
        .expect("the reader's checks");
    assert!(looks > 1);
    let mut redis = raw(&url).await;
    let _: () = redis.del(&[a, b]).await.unwrap();
}

#[tokio::test]
async fn max_len_trims_each_stream() {
    let Some(url) = support::redis_url() else {
        return;
    };
    let prefix = prefix("trim");
    let config = RedisConfig::new(url.clone())
        .prefix(prefix.clone())
        .max_len(10);
    let sink = RedisStreams::connect(config).await.expect("connect");
    let saga = SagaId::time_ordered();
    for n in 0..1000 {
        sink.deliver(&[message(saga, 0, n, "log")])
            .await
            .expect("deliver");
    }
    let mut redis = raw(&url).await;
    let len: u64 = redis.xlen(format!("{prefix}log")).await.unwrap();
    // `~` trims whole nodes of the stream: about 10, never fewer.
    assert!((10..1000).contains(&len), "{len} entries kept of 1000");
}

#[tokio::test]
async fn a_destination_that_is_not_a_stream_fails_the_delivery_naming_it() {
    let Some(url) = support::redis_url() else {
        return;
    };
    let prefix = prefix("wrongtype");
    let mut redis = raw(&url).await;
    let _: () = redis
        .set(format!("{prefix}taken"), "a string")
        .await
        .unwrap();
    let sink = RedisStreams::connect(RedisConfig::new(url.clone()).prefix(prefix.clone()))
        .await
        .expect("connect");
    let saga = SagaId::time_ordered();
    let error = sink
        .deliver(&[message(saga, 0, 0, "fine"), message(saga, 0, 1, "taken")])
        .await
        .expect_err("a string key is not a stream");
    let text = error.message();
    assert!(
        text.starts_with(&format!("Redis at {url}: writing 2 message(s)")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{prefix}taken")) && text.contains("WRONGTYPE"),
        "{text}"
    );
}

#[tokio::test]
async fn a_server_that_is_not_there_is_named_in_the_error() {
    // A port nothing listens on: bound, then closed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("redis://:secret@127.0.0.1:{port}/");
    let shown = format!("redis://:***@127.0.0.1:{port}/");
    let config = RedisConfig {
        connection_timeout: Duration::from_secs(2),
        reconnect_retries: 0,
        ..RedisConfig::new(url)
    };
    let error = RedisStreams::connect(config.clone())
        .await
        .expect_err("nothing listens there");
    assert!(
        error
            .message()
            .starts_with(&format!("Redis at {shown}: cannot connect: ")),
        "{error}"
    );
    assert!(!error.message().contains("secret"));

    let lazy = RedisStreams::connect_lazily(config).expect("a lazy sink connects later");
    let saga = SagaId::time_ordered();
    let error = lazy
        .deliver(&[message(saga, 0, 0, "orders")])
        .await
        .expect_err("nothing listens there");
    assert!(
        error.message().starts_with(&format!(
            "Redis at {shown}: writing 1 message(s) to orders failed: "
        )),
        "{error}"
    );

    let error = RedisStreams::connect(RedisConfig::new("http://127.0.0.1/"))
        .await
        .expect_err("not a Redis URL");
    assert!(
        error
            .message()
            .starts_with("`http://127.0.0.1/` is not a Redis URL"),
        "{error}"
    );
}

/// A Redis server of the test's own, killed when dropped.
struct OwnServer {
    child: Child,
    _dir: tempfile::TempDir,
    url: String,
}

impl OwnServer {
    fn start() -> Option<OwnServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        OwnServer::start_on(port)
    }

    fn start_on(port: u16) -> Option<OwnServer> {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(OwnServer {
            child,
            _dir: dir,
            url: format!("redis://127.0.0.1:{port}/"),
        })
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_server_that_stops_fails_deliveries_naming_it_until_it_is_back() {
    // Needs `redis-server` itself, to stop it; CI has it (.ci/run installs it).
    if support::redis_url().is_none() {
        return;
    }
    let Some(server) = OwnServer::start() else {
        panic!("redis-server is not on PATH, but SAGAFLOW_REDIS_URL is set: install redis-server");
    };
    let config = RedisConfig {
        reconnect_retries: 0,
        ..RedisConfig::new(server.url.clone())
    };
    let start = Instant::now();
    let sink = loop {
        match RedisStreams::connect(config.clone()).await {
            Ok(sink) => break sink,
            Err(e) if start.elapsed() > Duration::from_secs(10) => panic!("{e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let saga = SagaId::time_ordered();
    let transition: Vec<Message> = vec![message(saga, 0, 0, "orders")];
    sink.deliver(&transition).await.expect("deliver while up");
    let url = server.url.clone();
    let port: u16 = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    drop(server);
    let error = sink
        .deliver(&transition)
        .await
        .expect_err("the server is gone");
    assert!(
        error
            .message()
            .starts_with(&format!("Redis at {url}: writing 1 message(s)")),
        "{error}"
    );
    // Back on the same port: the sink reconnects by itself.
    let _back = OwnServer::start_on(port).expect("restart redis-server");
    let start = Instant::now();
    while let Err(e) = sink.deliver(&transition).await {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still failing: {e}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each stream's message ids, in stream order.
async fn stream_ids(
    connection: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> Vec<String> {
    entries(connection, stream)
        .await
        .into_iter()
        .map(|e| e["id"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_from_sqlite_delivers_every_message_once_in_order_per_saga() {
    let Some(url) = support::redis_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("relay.db"), Durability::Normal).unwrap();
    let shape: &[&[&str]] = &[&["orders", "audit"], &["orders"], &["audit", "notices"]];
    let sagas = fill(&store, 40, shape).await;
    let prefix = prefix("relay");
    let sink = RedisStreams::connect(RedisConfig::new(url.clone()).prefix(prefix.clone()))
        .await
        .expect("connect");
    let relay = Relay::new(
        store,
        sink,
        RelayConfig {
            batch: 50,
            ..RelayConfig::default()
        },
    );
    let mut total = RelayReport::default();
    loop {
        let report = relay.run_once().await;
        assert!(report.is_clean(), "{:?}", report.errors);
        if report.claimed == 0 {
            break;
        }
        total.delivered += report.delivered;
    }
    assert_eq!(total.delivered, 40 * 5);
    let mut redis = raw(&url).await;
    for stream in ["orders", "audit", "notices"] {
        let got = stream_ids(&mut redis, &format!("{prefix}{stream}")).await;
        for saga in &sagas {
            let expected: Vec<String> = saga
                .transitions
                .iter()
                .flatten()
                .filter(|m| m.destination == stream)
                .map(|m| m.id.clone())
                .collect();
            let mine: Vec<String> = got
                .iter()
                .filter(|id| id.starts_with(&saga.id.to_string()))
                .cloned()
                .collect();
            assert_eq!(mine, expected, "saga {} in `{stream}`", saga.id);
        }
    }
    let pending = relay
        .store()
        .messages(MessageFilter {
            state: Some(MessageState::Pending),
            ..MessageFilter::default()
        })
        .await
        .unwrap();
    assert!(pending.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_dies_after_writing_is_repeated_with_the_same_ids() {
    let Some(url) = support::redis_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("relay.db"), Durability::Normal).unwrap();
    let sagas = fill(&store, 5, &[&["orders"], &["orders"]]).await;
    let prefix = prefix("died");
    let sink = RedisStreams::connect(RedisConfig::new(url.clone()).prefix(prefix.clone()))
        .await
        .expect("connect");
    // The first relay writes its claim to Redis and dies before it settles.
    let claimed = store
        .claim_messages(100, Duration::from_millis(200))
        .await
        .unwrap();
    let written: Vec<Message> = claimed.messages.into_iter().map(|p| p.message).collect();
    assert_eq!(written.len(), 10);
    sink.deliver(&written).await.expect("deliver");
    // The next one, once the lease has passed, delivers them again.
    let relay = Relay::new(store, sink, RelayConfig::default());
    let start = Instant::now();
    let report = loop {
        let report = relay.run_once().await;
        if report.claimed > 0 || start.elapsed() > Duration::from_secs(5) {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(report.delivered, 10);
    let mut redis = raw(&url).await;
    let got = stream_ids(&mut redis, &format!("{prefix}orders")).await;
    assert_eq!(got.len(), 20, "each message twice: at least once");
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    let mut expected: Vec<String> = sagas.iter().flat_map(|s| s.ids()).collect();
    expected.sort();
    assert_eq!(unique, expected, "deduplicated by id, each message once");
}
