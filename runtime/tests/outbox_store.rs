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
