//! The outbox in both stores: messages stored with the transition that made
//! them, all or none; claims that lease in order per saga and fence stale
//! settlements; backoff, dead letters and resend; the operator's filter; purge.
//! Every test runs against `SqliteStore`, and against `PgStore` (a schema of
//! its own each) with the `postgres` feature and `SAGAFLOW_PG_URL` set.
#![cfg(feature = "sqlite")]

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sagaflow::SagaId;
use sagaflow::durable::{Durability, Entry, NewSaga, SagaStatus, SqliteStore, Store};
use sagaflow::outbox::{Message, MessageFilter, MessageState, Outbox, Settlement};

// ---------------------------------------------------------------------------
// The stores under test

trait Backend {
    type S: Outbox + Clone + std::fmt::Debug;

    fn store(&self) -> &Self::S;
}

struct Sqlite {
    _dir: tempfile::TempDir,
    store: SqliteStore,
}

impl Sqlite {
    fn new() -> Sqlite {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(dir.path().join("sagas.db"), Durability::Full).expect("open");
        Sqlite { _dir: dir, store }
    }
}

impl Backend for Sqlite {
    type S = SqliteStore;

    fn store(&self) -> &SqliteStore {
        &self.store
    }
}

#[cfg(feature = "postgres")]
struct Postgres {
    store: sagaflow::durable::PgStore,
}

#[cfg(feature = "postgres")]
impl Postgres {
    async fn new(test: &str) -> Option<Postgres> {
        let url = support::pg_url()?;
        let config = sagaflow::durable::PgConfig::new(url).schema(support::schema_for(test));
        let store = sagaflow::durable::PgStore::connect_with(config)
            .await
            .expect("connect to SAGAFLOW_PG_URL");
        Some(Postgres { store })
    }
}

#[cfg(feature = "postgres")]
impl Backend for Postgres {
    type S = sagaflow::durable::PgStore;

    fn store(&self) -> &Self::S {
        &self.store
    }
}

/// Each test, once per store: `sqlite::name` and `postgres::name`.
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::Sqlite::new()).await;
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(backend) = super::Postgres::new(stringify!($name)).await else {
                        return;
                    };
                    super::$name(&backend).await;
                }
            )*
        }
    };
}

both_stores!(
    messages_are_stored_with_their_transition_or_not_at_all,
    a_sagas_messages_keep_their_order_across_transitions,
    a_claim_leases_until_the_lease_passes,
    a_later_message_waits_for_every_earlier_one_of_its_saga,
    a_settlement_under_a_stale_token_changes_nothing,
    a_retried_message_waits_for_its_retry_time,
    a_dead_message_is_listed_and_can_be_sent_again,
    messages_are_filtered_by_state_saga_and_limit,
    purge_removes_the_purged_sagas_messages,
);

// ---------------------------------------------------------------------------
// Helpers

const LONG: Duration = Duration::from_secs(60);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn message(saga: SagaId, step: u32, n: u32, destination: &str) -> Message {
    Message {
        id: format!("{saga}-s{step}-{n}"),
        destination: destination.to_owned(),
        key: (n % 2 == 1).then(|| format!("key-{n}")),
        payload: format!("{{\"step\":{step},\"n\":{n}}}").into_bytes(),
        created_ms: now_ms(),
    }
}

/// Step `step`'s success carrying `count` messages.
fn sent(saga: SagaId, step: u32, count: u32) -> Vec<Entry> {
    vec![
        Entry::StepSucceeded {
            index: step,
            output: b"null".to_vec(),
        },
        Entry::Sent {
            messages: (0..count)
                .map(|n| message(saga, step, n, &format!("stream-{n}")))
                .collect(),
        },
    ]
}

/// A new saga with its first step started: journal entry 0.
async fn saga(store: &impl Store) -> SagaId {
    let id = SagaId::random();
    store
        .create(NewSaga {
            id,
            saga_type: "checkout".into(),
            fingerprint: "f".into(),
            input: b"{}".to_vec(),
        })
        .await
        .expect("create");
    store
        .append(
            id,
            Entry::StepStarted {
                index: 0,
                attempt: 1,
            },
        )
        .await
        .expect("append");
    id
}

fn ids_of(messages: &[sagaflow::outbox::PendingMessage]) -> Vec<String> {
    messages.iter().map(|m| m.message.id.clone()).collect()
}

async fn all(store: &impl Outbox, saga: SagaId) -> Vec<sagaflow::outbox::StoredMessage> {
    store
        .messages(MessageFilter {
            saga_id: Some(saga),
            ..MessageFilter::default()
        })
        .await
        .expect("messages")
}

// ---------------------------------------------------------------------------
// The tests

async fn messages_are_stored_with_their_transition_or_not_at_all(b: &impl Backend) {
    let store = b.store();
    let id = saga(store).await;
    store.append_all(id, sent(id, 0, 2)).await.expect("append");
    let journal = store.get(id).await.unwrap().unwrap().journal;
    assert_eq!(journal.len(), 3);
    assert!(matches!(&journal[2], Entry::Sent { messages } if messages.len() == 2));

    // A transition whose message id is already in the outbox is refused
    // whole: neither its journal entries nor its other message are stored.
    let mut again = sent(id, 1, 2);
    if let Entry::Sent { messages } = &mut again[1] {
        messages[1].id = format!("{id}-s0-1");
    }
    let error = store.append_all(id, again).await.unwrap_err();
    assert!(
        error.message().contains(&format!("{id}-s0-1")),
        "the error names the message id: {error}"
    );
    assert_eq!(store.get(id).await.unwrap().unwrap().journal.len(), 3);
    let stored: Vec<String> = all(store, id)
        .await
        .into_iter()
        .map(|m| m.message.id)
        .collect();
    assert_eq!(stored, [format!("{id}-s0-0"), format!("{id}-s0-1")]);

    // An append to a saga that does not exist stores no message either.
    let ghost = SagaId::random();
    assert!(store.append_all(ghost, sent(ghost, 0, 1)).await.is_err());
    assert!(all(store, ghost).await.is_empty());

    // The saga goes on after the refused write, at the next position.
    store.append_all(id, sent(id, 1, 1)).await.expect("append");
    let rows = all(store, id).await;
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[2].seq, 4,
        "seq is the journal position of its Sent entry"
    );

    // A conditional append stores its messages too, and only if it lands.
    let late = Entry::Sent {
        messages: vec![message(id, 7, 0, "audit")],
    };
    let skipped = store
        .append_if(id, SagaStatus::Parked, late.clone())
        .await
        .unwrap();
    assert_eq!(skipped, Err(Some(SagaStatus::Running)));
    assert_eq!(all(store, id).await.len(), 3);
    let landed = store
        .append_if(id, SagaStatus::Running, late)
        .await
        .unwrap();
    assert_eq!(landed, Ok(()));
    let rows = all(store, id).await;
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[3].seq, 5);
}

async fn a_sagas_messages_keep_their_order_across_transitions(b: &impl Backend) {
    let store = b.store();
    let first = saga(store).await;
    let second = saga(store).await;
    store.append_all(first, sent(first, 0, 2)).await.unwrap();
    store.append_all(second, sent(second, 0, 1)).await.unwrap();
    store.append_all(first, sent(first, 1, 1)).await.unwrap();
    store
        .append_all(
            first,
            vec![
                Entry::Finished {
                    status: SagaStatus::Committed,
                    output: Some(b"null".to_vec()),
                },
                Entry::Sent {
                    messages: vec![message(first, 9, 0, "audit")],
                },
            ],
        )
        .await
        .unwrap();

    let rows = all(store, first).await;
    let order: Vec<(u64, &str, MessageState, u32)> = rows
        .iter()
        .map(|m| (m.seq, m.message.destination.as_str(), m.state, m.attempts))
        .collect();
    assert_eq!(
        order,
        [
            (2, "stream-0", MessageState::Pending, 0),
            (2, "stream-1", MessageState::Pending, 0),
            (4, "stream-0", MessageState::Pending, 0),
            (6, "audit", MessageState::Pending, 0),
        ]
    );
    assert_eq!(rows[1].message.key.as_deref(), Some("key-1"));
    assert_eq!(rows[1].message.payload, br#"{"step":0,"n":1}"#);

    // One claim takes every message that may leave, grouped by saga, in order.
    let claimed = store.claim_messages(100, LONG).await.unwrap();
    assert_ne!(claimed.token, 0);
    let mut by_saga: Vec<(SagaId, u64)> = claimed
        .messages
        .iter()
        .map(|m| (m.saga_id, m.seq))
        .collect();
    by_saga.dedup_by_key(|(saga, _)| *saga);
    assert_eq!(
        by_saga,
        [(first, 2), (second, 2)],
        "sagas take turns oldest first"
    );
    let firsts: Vec<u64> = claimed
        .messages
        .iter()
        .filter(|m| m.saga_id == first)
        .map(|m| m.seq)
        .collect();
    assert_eq!(firsts, [2, 2, 4, 6]);
}

async fn a_claim_leases_until_the_lease_passes(b: &impl Backend) {
    let store = b.store();
    let id = saga(store).await;
    store.append_all(id, sent(id, 0, 2)).await.unwrap();
    let lease = Duration::from_millis(400);
    let first = store.claim_messages(10, lease).await.unwrap();
    assert_eq!(first.messages.len(), 2);
    assert_eq!(first.messages[0].attempts, 0);
    let second = store.claim_messages(10, lease).await.unwrap();
    assert!(second.messages.is_empty(), "{second:?}");
    tokio::time::sleep(lease + Duration::from_millis(200)).await;
    let third = store.claim_messages(10, lease).await.unwrap();
    assert_eq!(ids_of(&third.messages), ids_of(&first.messages));
    assert_ne!(third.token, first.token);
    assert_eq!(
        store.claim_messages(0, lease).await.unwrap().messages.len(),
        0
    );
}

async fn a_later_message_waits_for_every_earlier_one_of_its_saga(b: &impl Backend) {
    let store = b.store();
    let id = saga(store).await;
    store.append_all(id, sent(id, 0, 1)).await.unwrap();
    store.append_all(id, sent(id, 1, 1)).await.unwrap();
    // The limit takes the first transition only; the second waits for it.
    let first = store.claim_messages(1, LONG).await.unwrap();
    assert_eq!(ids_of(&first.messages), [format!("{id}-s0-0")]);
    assert!(
        store
            .claim_messages(10, LONG)
            .await
            .unwrap()
            .messages
            .is_empty()
    );

    // In backoff, the earlier one still holds the later one back.
    store
        .settle_messages(
            first.token,
            vec![Settlement::Retry {
                id: format!("{id}-s0-0"),
                error: "broker down".into(),
                retry_at: SystemTime::now() + Duration::from_secs(3600),
            }],
        )
        .await
        .unwrap();
    assert!(
        store
            .claim_messages(10, LONG)
            .await
            .unwrap()
            .messages
            .is_empty()
    );

    // A released lease frees the message at once, with nothing else changed.
    let other = saga(store).await;
    store.append_all(other, sent(other, 0, 1)).await.unwrap();
    let claim = store.claim_messages(10, LONG).await.unwrap();
    assert_eq!(ids_of(&claim.messages), [format!("{other}-s0-0")]);
    store
        .settle_messages(
            claim.token,
            vec![Settlement::Released {
                id: format!("{other}-s0-0"),
            }],
        )
        .await
        .unwrap();
    let again = store.claim_messages(10, LONG).await.unwrap();
    assert_eq!(ids_of(&again.messages), [format!("{other}-s0-0")]);
    assert_eq!(again.messages[0].attempts, 0);

    // The retry counted an attempt and kept its error.
    let dead_end = all(store, id).await;
    assert_eq!(dead_end[0].attempts, 1);
    assert_eq!(dead_end[0].last_error.as_deref(), Some("broker down"));
}

async fn a_settlement_under_a_stale_token_changes_nothing(b: &impl Backend) {
    let store = b.store();
    let id = saga(store).await;
    store.append_all(id, sent(id, 0, 1)).await.unwrap();
    let lease = Duration::from_millis(300);
    let stale = store.claim_messages(10, lease).await.unwrap();
    tokio::time::sleep(lease + Duration::from_millis(200)).await;
    let current = store.claim_messages(10, LONG).await.unwrap();
    assert_eq!(current.messages.len(), 1);
    let mid = format!("{id}-s0-0");
    for settlement in [
        Settlement::Delivered { id: mid.clone() },
        Settlement::Dead {
            id: mid.clone(),
            error: "late".into(),
        },
        Settlement::Released { id: mid.clone() },
    ] {
        store
            .settle_messages(stale.token, vec![settlement])
            .await
            .unwrap();
    }
    let row = &all(store, id).await[0];
    assert_eq!((row.state, row.attempts), (MessageState::Pending, 0));
    assert_eq!(row.last_error, None);
    // Still leased to the current claim: nobody else gets it.
    assert!(
        store
            .claim_messages(10, LONG)
            .await
            .unwrap()
            .messages
            .is_empty()
    );

    store
        .settle_messages(current.token, vec![Settlement::Delivered { id: mid }])
        .await
        .unwrap();
    let row = &all(store, id).await[0];
    assert_eq!(row.state, MessageState::Delivered);
    let at = row.delivered_at.expect("delivered_at");
    assert!(at.elapsed().unwrap_or_default() < Duration::from_secs(60));
    // Settling a delivered message again changes nothing either.
    store
        .settle_messages(
            current.token,
            vec![Settlement::Dead {
                id: format!("{id}-s0-0"),
                error: "twice".into(),
            }],
        )
        .await
        .unwrap();
    assert_eq!(all(store, id).await[0].state, MessageState::Delivered);
}

async fn a_retried_message_waits_for_its_retry_time(b: &impl Backend) {
    let store = b.store();
    let id = saga(store).await;
    store.append_all(id, sent(id, 0, 1)).await.unwrap();
    let claim = store.claim_messages(10, LONG).await.unwrap();
    let wait = Duration::from_millis(500);
    store
        .settle_messages(
            claim.token,
            vec![Settlement::Retry {
                id: format!("{id}-s0-0"),
                error: "timeout".into(),
                retry_at: SystemTime::now() + wait,
            }],
        )
        .await
        .unwrap();
    assert!(
        store
            .claim_messages(10, LONG)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    tokio::time::sleep(wait + Duration::from_millis(200)).await;
    let again = store.claim_messages(10, LONG).await.unwrap();
    assert_eq!(ids_of(&again.messages), [format!("{id}-s0-0")]);
    assert_eq!(again.messages[0].attempts, 1);
    let row = &all(store, id).await[0];
    assert_eq!(row.state, MessageState::Pending);
    assert_eq!(row.last_error.as_deref(), Some("timeout"));
}

async fn a_dead_message_is_listed_and_can_be_sent_again(b: &impl Backend) {
    let store = b.store();
    let id = saga(store).await;
    store.append_all(id, sent(id, 0, 1)).await.unwrap();
    store.append_all(id, sent(id, 1, 1)).await.unwrap();
    let claim = store.claim_messages(1, LONG).await.unwrap();
    let mid = format!("{id}-s0-0");
    store
        .settle_messages(
            claim.token,
            vec![Settlement::Dead {
                id: mid.clone(),
                error: "rejected: bad payload".into(),
            }],
        )
        .await
        .unwrap();
    let dead = store
        .messages(MessageFilter {
            state: Some(MessageState::Dead),
            ..MessageFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message.id, mid);
    assert_eq!(dead[0].attempts, 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("rejected: bad payload"));
    // A dead message no longer holds its saga's later ones back.
    let later = store.claim_messages(10, LONG).await.unwrap();
    assert_eq!(ids_of(&later.messages), [format!("{id}-s1-0")]);

    assert!(store.resend(&mid).await.unwrap());
    assert!(!store.resend(&mid).await.unwrap(), "no longer dead");
    assert!(!store.resend("no-such-message").await.unwrap());
    let row = &all(store, id).await[0];
    assert_eq!((row.state, row.attempts), (MessageState::Pending, 0));
    let resent = store.claim_messages(10, LONG).await.unwrap();
    assert_eq!(ids_of(&resent.messages), [mid]);
}

async fn messages_are_filtered_by_state_saga_and_limit(b: &impl Backend) {
    let store = b.store();
    let first = saga(store).await;
    let second = saga(store).await;
    store.append_all(first, sent(first, 0, 3)).await.unwrap();
    store.append_all(second, sent(second, 0, 2)).await.unwrap();
    let claim = store.claim_messages(3, LONG).await.unwrap();
    assert_eq!(claim.messages.len(), 3);
    let settlements = ids_of(&claim.messages)
        .into_iter()
        .map(|id| Settlement::Delivered { id })
        .collect();
    store
        .settle_messages(claim.token, settlements)
        .await
        .unwrap();

    let filter = |state, saga_id, limit| MessageFilter {
        state,
        saga_id,
        limit,
    };
    let count = |f| async { store.messages(f).await.unwrap().len() };
    assert_eq!(count(filter(None, None, None)).await, 5);
    assert_eq!(
        count(filter(Some(MessageState::Delivered), None, None)).await,
        3
    );
    assert_eq!(
        count(filter(Some(MessageState::Pending), None, None)).await,
        2
    );
    assert_eq!(count(filter(Some(MessageState::Dead), None, None)).await, 0);
    assert_eq!(count(filter(None, Some(second), None)).await, 2);
    assert_eq!(
        count(filter(Some(MessageState::Delivered), Some(second), None)).await,
        0
    );
    let limited = store.messages(filter(None, None, Some(4))).await.unwrap();
    let order: Vec<(SagaId, String)> = limited
        .iter()
        .map(|m| (m.saga_id, m.message.destination.clone()))
        .collect();
    assert_eq!(
        order,
        [
            (first, "stream-0".into()),
            (first, "stream-1".into()),
            (first, "stream-2".into()),
            (second, "stream-0".into()),
        ]
    );
    assert!(limited[0].delivered_at.is_some());
    assert!(limited[3].delivered_at.is_none());
}

async fn purge_removes_the_purged_sagas_messages(b: &impl Backend) {
    let store = b.store();
    let done = saga(store).await;
    let running = saga(store).await;
    store.append_all(done, sent(done, 0, 2)).await.unwrap();
    store
        .append_all(running, sent(running, 0, 1))
        .await
        .unwrap();
    store
        .append(
            done,
            Entry::Finished {
                status: SagaStatus::Committed,
                output: Some(b"null".to_vec()),
            },
        )
        .await
        .unwrap();
    let later = SystemTime::now() + Duration::from_secs(5);
    assert_eq!(store.purge(later, true).await.unwrap(), [done]);
    assert_eq!(all(store, done).await.len(), 2, "a dry run deletes nothing");
    assert_eq!(store.purge(later, false).await.unwrap(), [done]);
    assert!(all(store, done).await.is_empty());
    assert_eq!(all(store, running).await.len(), 1);
}

// ---------------------------------------------------------------------------
// SQLite only: a store file written before the outbox existed

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_sqlite_store_gains_the_outbox_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let id = {
        let store = SqliteStore::open(&path, Durability::Full).unwrap();
        saga(&store).await
    };
    // Take the file back to schema version 1, as sagaflow 0.1 left it.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TABLE outbox;
             UPDATE sagaflow_meta SET value = '1' WHERE key = 'schema_version';
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = SqliteStore::open_existing(&path, Durability::Full).unwrap();
    assert_eq!(store.get(id).await.unwrap().unwrap().journal.len(), 1);
    store.append_all(id, sent(id, 0, 1)).await.unwrap();
    assert_eq!(all(&store, id).await.len(), 1);
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row(
            "SELECT value FROM sagaflow_meta WHERE key = 'schema_version'",
            [],
            |row| row.get::<_, String>(0),
        )
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(version, 2);
}

// ---------------------------------------------------------------------------
// PostgreSQL only: relays in parallel over separate stores

/// What the relays of the parallel test saw, checked as they go.
#[cfg(feature = "postgres")]
#[derive(Default)]
struct Seen {
    /// Message id → the relay holding it now (between its claim's answer and
    /// its settlement's call, a part of the real lease).
    held: std::collections::HashMap<String, usize>,
    /// Saga → the relay holding messages of it now, and how many.
    sagas: std::collections::HashMap<SagaId, (usize, usize)>,
    /// Saga → what was delivered of it, in order: (seq, message id).
    delivered: std::collections::HashMap<SagaId, Vec<(u64, String)>>,
    violations: Vec<String>,
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relays_over_separate_stores_never_share_a_message_or_a_saga() {
    use std::sync::{Arc, Mutex};

    const RELAYS: usize = 8;
    const SAGAS: usize = 500;
    let Some(url) = support::pg_url() else {
        return;
    };
    let schema = support::schema_for("relays_in_parallel");
    let connect = || {
        let config = sagaflow::durable::PgConfig::new(url.clone()).schema(schema.clone());
        sagaflow::durable::PgStore::connect_with(config)
    };
    let writer = connect().await.expect("connect");
    // 500 sagas × 3 messages: one with step 0's success, two with step 1's.
    let made = futures_util::future::join_all((0..SAGAS).map(|_| {
        let writer = writer.clone();
        async move {
            let id = saga(&writer).await;
            writer.append_all(id, sent(id, 0, 1)).await.unwrap();
            writer.append_all(id, sent(id, 1, 2)).await.unwrap();
            id
        }
    }))
    .await;
    assert_eq!(made.len(), SAGAS);

    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut relays = Vec::new();
    for relay in 0..RELAYS {
        let store = connect().await.expect("connect");
        let seen = seen.clone();
        relays.push(tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            let mut idle = 0;
            while idle < 20 && tokio::time::Instant::now() < deadline {
                let claim = store.claim_messages(12, LONG).await.expect("claim");
                if claim.messages.is_empty() {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(25)).await;
                    continue;
                }
                idle = 0;
                let mut settlements = Vec::new();
                {
                    let seen = &mut *seen.lock().unwrap();
                    for m in &claim.messages {
                        if let Some(other) = seen.held.insert(m.message.id.clone(), relay) {
                            let v = format!("{} held by {other} and {relay}", m.message.id);
                            seen.violations.push(v);
                        }
                        let holder = seen.sagas.entry(m.saga_id).or_insert((relay, 0));
                        if holder.0 != relay {
                            let v = format!("saga {} held by {} and {relay}", m.saga_id, holder.0);
                            seen.violations.push(v);
                        }
                        holder.1 += 1;
                    }
                }
                // Deliver: one saga in ten fails its first transition, and
                // the rest of that saga's messages are not tried.
                let mut failed: Option<(SagaId, u64)> = None;
                for m in &claim.messages {
                    let id = m.message.id.clone();
                    if let Some((saga, seq)) = failed
                        && saga == m.saga_id
                    {
                        settlements.push(if seq == m.seq {
                            Settlement::Retry {
                                id,
                                error: "flaky".into(),
                                retry_at: SystemTime::now() + Duration::from_millis(20),
                            }
                        } else {
                            Settlement::Released { id }
                        });
                        continue;
                    }
                    let first_of_saga = !claim
                        .messages
                        .iter()
                        .any(|o| o.saga_id == m.saga_id && (o.seq, &o.message.id) < (m.seq, &id));
                    if first_of_saga && fastrand::u8(..10) == 0 {
                        failed = Some((m.saga_id, m.seq));
                        settlements.push(Settlement::Retry {
                            id,
                            error: "flaky".into(),
                            retry_at: SystemTime::now() + Duration::from_millis(20),
                        });
                        continue;
                    }
                    let seen = &mut *seen.lock().unwrap();
                    let log = seen.delivered.entry(m.saga_id).or_default();
                    if let Some((seq, last)) = log.last()
                        && (*seq, last.as_str()) >= (m.seq, id.as_str())
                    {
                        let v = format!("{id} delivered after {last}");
                        seen.violations.push(v);
                    }
                    log.push((m.seq, id.clone()));
                    settlements.push(Settlement::Delivered { id });
                }
                tokio::time::sleep(Duration::from_micros(fastrand::u64(..2000))).await;
                {
                    let mut seen = seen.lock().unwrap();
                    for m in &claim.messages {
                        seen.held.remove(&m.message.id);
                        if let Some(holder) = seen.sagas.get_mut(&m.saga_id) {
                            holder.1 -= 1;
                            if holder.1 == 0 {
                                seen.sagas.remove(&m.saga_id);
                            }
                        }
                    }
                }
                store
                    .settle_messages(claim.token, settlements)
                    .await
                    .expect("settle");
            }
        }));
    }
    for relay in relays {
        relay.await.expect("relay");
    }
    let mut delivered: Vec<String> = {
        let seen = seen.lock().unwrap();
        assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
        seen.delivered
            .values()
            .flat_map(|log| log.iter().map(|(_, id)| id.clone()))
            .collect()
    };
    assert_eq!(delivered.len(), SAGAS * 3, "every message delivered once");
    delivered.sort();
    delivered.dedup();
    assert_eq!(delivered.len(), SAGAS * 3, "no message delivered twice");
    let stored = writer
        .messages(MessageFilter {
            state: Some(MessageState::Delivered),
            ..MessageFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), SAGAS * 3);
    let retried = stored.iter().filter(|m| m.attempts > 0).count();
    assert!(retried > 0, "some deliveries failed first");
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_postgres_store_gains_the_outbox_when_connected() {
    let Some(url) = support::pg_url() else {
        return;
    };
    let schema = support::schema_for("old_postgres_store");
    let config = sagaflow::durable::PgConfig::new(url.clone()).schema(schema.clone());
    let first = sagaflow::durable::PgStore::connect_with(config.clone())
        .await
        .unwrap();
    let id = saga(&first).await;
    first.close().await.unwrap();
    drop(first);
    // Take the schema back to version 1, as sagaflow 0.1 left it.
    let client = support::raw_client(&url).await;
    client
        .batch_execute(&format!(
            "DROP TABLE \"{schema}\".outbox;
             UPDATE \"{schema}\".sagaflow_meta SET value = '1' WHERE key = 'schema_version';"
        ))
        .await
        .unwrap();
    let store = sagaflow::durable::PgStore::connect_with(config)
        .await
        .unwrap();
    assert_eq!(store.get(id).await.unwrap().unwrap().journal.len(), 1);
    let version = client
        .query_one(
            &format!("SELECT value FROM \"{schema}\".sagaflow_meta WHERE key = 'schema_version'"),
            &[],
        )
        .await
        .unwrap()
        .get::<_, String>(0);
    assert_eq!(version, "2");
    let other = saga(&store).await;
    store.append_all(other, sent(other, 0, 2)).await.unwrap();
    assert_eq!(all(&store, other).await.len(), 2);
}
