//! The outbox's store side: how fast relays can drain it, with no broker.
//!
//! Run with `cargo bench -p sagaflow --features postgres --bench outbox` (with
//! `SAGAFLOW_PG_URL=postgres://…` for the PostgreSQL rows; without it they are
//! skipped). A measurement, not a test: it prints a table and exits 0.
//!
//! The store is filled with `OUTBOX_BENCH_SAGAS` sagas (default 10,000), each
//! with 3 messages in two transitions (one with step 0's success, two with
//! step 1's), as a checkout sends them. Then relays drain it: each claims up to
//! 100 messages with a 30 s lease and settles them all delivered, until no
//! message is pending; the figure is messages delivered per second of the
//! drain, counted in the store afterwards. With 1 relay, and on PostgreSQL
//! with 4 relays over separate `PgStore`s (separate owners and pools, as
//! separate processes would have). No sink: this is the ceiling the store
//! puts on a relay, to set beside a real broker's rate.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use sagaflow::SagaId;
use sagaflow::durable::{Durability, Entry, NewSaga, SqliteStore, Store};
use sagaflow::outbox::{Message, MessageFilter, MessageState, Outbox, Settlement};

const CLAIM: usize = 100;
const LEASE: Duration = Duration::from_secs(30);

fn main() {
    let sagas: usize = std::env::var("OUTBOX_BENCH_SAGAS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "outbox drain, {sagas} sagas x 3 messages, claims of {CLAIM}, every message delivered"
    );
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("outbox.db"), Durability::Full).unwrap();
        let fill = fill(&store, sagas).await;
        let (rate, claims) = drain(vec![store.clone()]).await;
        check(&store, sagas).await;
        println!(
            "SQLite (Full), 1 relay      : {rate:>9.0} messages/s ({claims} claims; filled in \
             {fill:.1?})"
        );
    });
    #[cfg(feature = "postgres")]
    {
        let Ok(url) = std::env::var("SAGAFLOW_PG_URL") else {
            println!("SAGAFLOW_PG_URL not set: PostgreSQL not measured");
            return;
        };
        for relays in [1, 4] {
            rt.block_on(async {
                let schema = format!("bench_outbox_{:08x}", fastrand::u32(..));
                let connect = || {
                    let config =
                        sagaflow::durable::PgConfig::new(url.clone()).schema(schema.clone());
                    sagaflow::durable::PgStore::connect_with(config)
                };
                let writer = connect().await.unwrap();
                let fill = fill(&writer, sagas).await;
                let mut stores = Vec::new();
                for _ in 0..relays {
                    stores.push(connect().await.unwrap());
                }
                let (rate, claims) = drain(stores).await;
                check(&writer, sagas).await;
                println!(
                    "PostgreSQL, {relays} relay(s)      : {rate:>9.0} messages/s ({claims} claims; \
                     filled in {fill:.1?})"
                );
                writer.close().await.unwrap();
            });
        }
    }
}

fn message(saga: SagaId, step: u32, n: u32) -> Message {
    Message {
        id: format!("{saga}-s{step}-{n}"),
        destination: format!("stream-{n}"),
        key: Some(saga.to_string()),
        payload: br#"{"order":"o-1","amount":1999}"#.to_vec(),
        created_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    }
}

/// Fills `store` with `sagas` sagas of 3 messages, 256 sagas at a time.
async fn fill(store: &(impl Store + Clone), sagas: usize) -> Duration {
    let start = Instant::now();
    let mut left = sagas;
    while left > 0 {
        let batch = left.min(256);
        left -= batch;
        join_all((0..batch).map(|_| async {
            let id = SagaId::random();
            let saga = NewSaga {
                id,
                saga_type: "checkout".into(),
                fingerprint: "f".into(),
                input: b"{}".to_vec(),
            };
            store.create(saga).await.unwrap();
            for (step, count) in [(0, 1), (1, 2)] {
                let entries = vec![
                    Entry::StepSucceeded {
                        index: step,
                        output: b"null".to_vec(),
                    },
                    Entry::Sent {
                        messages: (0..count).map(|n| message(id, step, n)).collect(),
                    },
                ];
                store.append_all(id, entries).await.unwrap();
            }
        }))
        .await;
    }
    start.elapsed()
}

/// Drains the outbox with one relay per store; messages per second, claims.
async fn drain<St: Outbox + Clone + 'static>(stores: Vec<St>) -> (f64, usize) {
    let start = Instant::now();
    let relays = stores.into_iter().map(|store| {
        tokio::spawn(async move {
            let (mut delivered, mut claims, mut idle) = (0usize, 0usize, 0);
            while idle < 3 {
                let claim = store.claim_messages(CLAIM, LEASE).await.unwrap();
                claims += 1;
                if claim.messages.is_empty() {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                idle = 0;
                delivered += claim.messages.len();
                let settlements = claim
                    .messages
                    .into_iter()
                    .map(|m| Settlement::Delivered { id: m.message.id })
                    .collect();
                store
                    .settle_messages(claim.token, settlements)
                    .await
                    .unwrap();
            }
            (delivered, claims)
        })
    });
    let mut total = (0, 0);
    for relay in join_all(relays).await {
        let (delivered, claims) = relay.unwrap();
        total.0 += delivered;
        total.1 += claims;
    }
    // The idle claims at the end (3 × 5 ms per relay) are not the store's.
    let elapsed = start.elapsed().saturating_sub(Duration::from_millis(15));
    (total.0 as f64 / elapsed.as_secs_f64(), total.1)
}

/// Every message delivered, counted in the store.
async fn check(store: &impl Outbox, sagas: usize) {
    let delivered = store
        .messages(MessageFilter {
            state: Some(MessageState::Delivered),
            ..MessageFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(delivered.len(), sagas * 3, "every message delivered");
}
