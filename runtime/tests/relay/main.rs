//! The relay over an outbox store: order per saga, one delivery per
//! transition, retries with backoff, dead letters and their re-sending,
//! leases that pass to another relay, fenced settlements, store errors.
//!
//! The tests that only need the `Outbox` contract run on every store (the
//! `on_every_store!` list at the bottom: `FakeOutbox` and `SqliteStore`);
//! those that need a store to fail on purpose run on `FakeOutbox`, an
//! in-memory `Store + Outbox` (fake_outbox.rs), with `TestSink`
//! (test_sink.rs), which records, waits and fails on request. (`PgStore`'s claims are tested
//! with several relays in tests/outbox_store.rs.)

mod fake_outbox;
#[path = "../support/mod.rs"]
mod support;
mod test_sink;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use fake_outbox::FakeOutbox;
use sagaflow::SagaId;
use sagaflow::outbox::{
    MemorySink, Message, MessageFilter, MessageState, Outbox, Relay, RelayConfig, RelayError,
    RelayReport, Settlement, Sink, StoredMessage,
};
use support::outbox::{FilledSaga, fill, fill_one};
use test_sink::TestSink;

// ---------------------------------------------------------------------------
// Helpers.

fn config() -> RelayConfig {
    RelayConfig {
        batch: 1000,
        lease: Duration::from_secs(30),
        max_attempts: 3,
        backoff: Duration::from_millis(200),
        max_backoff: Duration::from_millis(400),
        jitter: 0.0,
        poll: Duration::from_millis(10),
        error_pause: Duration::from_millis(10),
        concurrency: 4,
    }
}

async fn states<St: Outbox>(store: &St) -> HashMap<String, StoredMessage> {
    store
        .messages(MessageFilter::default())
        .await
        .expect("list messages")
        .into_iter()
        .map(|m| (m.message.id.clone(), m))
        .collect()
}

/// Runs rounds until one claims something, for at most 5 s: for a test that
/// waits out a backoff or a lease.
async fn next_claiming_round<St: Outbox, K: Sink>(relay: &Relay<St, K>) -> RelayReport {
    let start = Instant::now();
    loop {
        let report = relay.run_once().await;
        if report.claimed > 0 {
            return report;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "nothing became claimable within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Checks that every call delivered exactly one whole transition, and each
/// saga's transitions in order, each once.
fn assert_in_order_one_call_per_transition(sagas: &[FilledSaga], calls: &[Vec<Message>]) {
    let mut transition_of: HashMap<Vec<String>, (SagaId, usize)> = HashMap::new();
    for saga in sagas {
        for (i, transition) in saga.transitions.iter().enumerate() {
            let ids = transition.iter().map(|m| m.id.clone()).collect();
            transition_of.insert(ids, (saga.id, i));
        }
    }
    let mut next: HashMap<SagaId, usize> = HashMap::new();
    for call in calls {
        let ids: Vec<String> = call.iter().map(|m| m.id.clone()).collect();
        let &(saga, i) = transition_of
            .get(&ids)
            .unwrap_or_else(|| panic!("a call that is not one whole transition: {ids:?}"));
        let expected = next.entry(saga).or_insert(0);
        assert_eq!(i, *expected, "saga {saga}: transition {i} out of order");
        *expected += 1;
    }
    for saga in sagas {
        assert_eq!(
            next.get(&saga.id).copied().unwrap_or(0),
            saga.transitions.len()
        );
    }
}

// ---------------------------------------------------------------------------
// Tests on every store.

async fn delivers_each_sagas_transitions_in_order_one_call_each<St: Outbox>(store: St) {
    let sagas = fill(&store, 12, &[&["a", "b"], &["b"], &["a", "a", "b"]]).await;
    let sink = TestSink::slow(Duration::from_millis(2));
    let relay = Relay::new(store, sink.clone(), config());
    let report = relay.run_once().await;
    assert!(report.is_clean(), "{:?}", report.errors);
    assert_eq!((report.claimed, report.delivered), (72, 72));
    assert_eq!((report.retried, report.dead, report.released), (0, 0, 0));
    assert_in_order_one_call_per_transition(&sagas, &sink.calls());
    let most = sink.max_in_flight.load(Ordering::SeqCst);
    assert!(
        (2..=4).contains(&most),
        "{most} deliveries at once, with concurrency 4"
    );
    let stored = states(relay.store()).await;
    assert!(stored.values().all(|m| m.state == MessageState::Delivered
        && m.delivered_at.is_some()
        && m.attempts == 0));
    assert_eq!(
        relay.run_once().await.claimed,
        0,
        "nothing is left to claim"
    );
}

async fn small_batches_keep_each_sagas_order<St: Outbox>(store: St) {
    let sagas = fill(&store, 7, &[&["a"], &["a", "b"], &["b"], &["a"]]).await;
    let sink = TestSink::default();
    let relay = Relay::new(
        store,
        sink.clone(),
        RelayConfig {
            batch: 3,
            ..config()
        },
    );
    let mut rounds = 0;
    while relay.run_once().await.claimed > 0 {
        rounds += 1;
        assert!(rounds < 100, "the relay does not get through 35 messages");
    }
    assert!(rounds >= 12, "{rounds} rounds of at most 3 for 35 messages");
    assert_in_order_one_call_per_transition(&sagas, &sink.calls());
}

async fn a_failing_transition_is_retried_with_backoff_then_dead_and_its_successors_wait<
    St: Outbox,
>(
    store: St,
) {
    let troubled = fill_one(&store, &[&["ok"], &["broken", "ok"], &["ok"]], true).await;
    let healthy = fill_one(&store, &[&["ok"], &["ok"]], true).await;
    let sink = TestSink::default();
    sink.fail("broken", u32::MAX);
    let relay = Relay::new(store, sink.clone(), config());
    let ids = troubled.ids();
    let (second, third) = (&ids[1..3], &ids[3]);

    let first = relay.run_once().await;
    assert_eq!(
        (first.delivered, first.retried, first.dead, first.released),
        (3, 2, 0, 1),
        "the troubled saga's first step and the healthy saga go; its second step \
         fails whole; its third waits"
    );
    let [
        RelayError::Delivery {
            saga_id,
            ids: failed,
            attempt: 1,
            dead: false,
            error,
            ..
        },
    ] = first.errors.iter().collect::<Vec<_>>()[..]
    else {
        panic!("one delivery error at attempt 1: {:?}", first.errors);
    };
    assert_eq!(*saga_id, troubled.id);
    assert_eq!(failed.as_slice(), second);
    assert_eq!(error.message(), "test sink: `broken` is down");
    let stored = states(relay.store()).await;
    for id in second {
        assert_eq!(stored[id].state, MessageState::Pending);
        assert_eq!(stored[id].attempts, 1);
        assert_eq!(
            stored[id].last_error.as_deref(),
            Some("test sink: `broken` is down")
        );
    }
    assert_eq!(
        stored[third].attempts, 0,
        "a released message was not tried"
    );
    assert_eq!(
        relay.run_once().await.claimed,
        0,
        "within its 200 ms backoff the failed transition, and what follows it, stay"
    );

    let retry = next_claiming_round(&relay).await;
    assert_eq!((retry.claimed, retry.retried, retry.released), (3, 2, 1));
    let last = next_claiming_round(&relay).await;
    assert_eq!((last.claimed, last.dead, last.released), (3, 2, 1));
    assert!(matches!(
        last.errors.front(),
        Some(RelayError::Delivery {
            attempt: 3,
            dead: true,
            ..
        })
    ));
    let stored = states(relay.store()).await;
    for id in second {
        assert_eq!(
            (stored[id].state, stored[id].attempts),
            (MessageState::Dead, 3)
        );
    }
    // A dead letter no longer holds its saga back.
    let after = relay.run_once().await;
    assert_eq!((after.claimed, after.delivered), (1, 1));
    let delivered = sink.delivered_ids();
    assert!(delivered.contains(third));
    assert!(healthy.ids().iter().all(|id| delivered.contains(id)));
    let dead = relay
        .store()
        .messages(MessageFilter {
            state: Some(MessageState::Dead),
            ..MessageFilter::default()
        })
        .await
        .unwrap();
    let dead_ids: Vec<&str> = dead.iter().map(|m| m.message.id.as_str()).collect();
    assert_eq!(dead_ids, second);
}

async fn a_dead_letter_resent_is_delivered_with_the_same_id<St: Outbox>(store: St) {
    let saga = fill_one(&store, &[&["flaky"]], true).await;
    let id = saga.ids().remove(0);
    let sink = TestSink::default();
    sink.fail("flaky", 2);
    let config = RelayConfig {
        max_attempts: 2,
        backoff: Duration::from_millis(5),
        ..config()
    };
    let relay = Relay::new(store, sink.clone(), config);
    assert_eq!(relay.run_once().await.retried, 1);
    assert_eq!(next_claiming_round(&relay).await.dead, 1);
    assert_eq!(
        relay.run_once().await.claimed,
        0,
        "a dead letter is not claimed"
    );
    assert!(!relay.store().resend("no-such-message").await.unwrap());
    assert!(relay.store().resend(&id).await.unwrap());
    assert!(
        !relay.store().resend(&id).await.unwrap(),
        "it is not dead any more"
    );
    let again = relay.run_once().await;
    assert_eq!((again.claimed, again.delivered), (1, 1));
    assert_eq!(sink.delivered_ids(), vec![id.clone()]);
    let stored = states(relay.store()).await;
    assert_eq!(stored[&id].state, MessageState::Delivered);
}

async fn an_expired_lease_hands_messages_to_another_relay_and_fences_the_first<St>(store: St)
where
    St: Outbox + Clone,
{
    let sagas = fill(&store, 3, &[&["a"], &["b"]]).await;
    // Relay A claims, then "dies": it never settles in time.
    let lease = Duration::from_millis(300);
    let first = store.claim_messages(100, lease).await.unwrap();
    assert_eq!(first.messages.len(), 6);
    let sink = TestSink::default();
    let second = Relay::new(store.clone(), sink.clone(), config());
    assert_eq!(
        second.run_once().await.claimed,
        0,
        "while A's lease holds, B gets nothing"
    );
    let taken = next_claiming_round(&second).await;
    assert_eq!((taken.claimed, taken.delivered), (6, 6));
    assert_in_order_one_call_per_transition(&sagas, &sink.calls());
    // A comes back and settles with its old token: nothing changes.
    let late = first
        .messages
        .iter()
        .map(|m| Settlement::Dead {
            id: m.message.id.clone(),
            error: "late".into(),
        })
        .collect();
    store.settle_messages(first.token, late).await.unwrap();
    let stored = states(&store).await;
    assert!(
        stored.values().all(|m| m.state == MessageState::Delivered),
        "a settlement under a passed lease is fenced off: {stored:?}"
    );
}

async fn a_sink_that_never_answers_fails_its_transition_at_the_lease<St: Outbox>(store: St) {
    let stuck = fill_one(&store, &[&["black-hole"], &["ok"]], true).await;
    let fine = fill_one(&store, &[&["ok"]], true).await;
    let sink = TestSink::default();
    *sink.hanging.lock().unwrap() = Some("black-hole".into());
    let relay = Relay::new(
        store,
        sink.clone(),
        RelayConfig {
            lease: Duration::from_millis(200),
            ..config()
        },
    );
    let report = relay.run_once().await;
    assert_eq!(
        (report.delivered, report.retried, report.released),
        (1, 1, 1)
    );
    let Some(RelayError::Delivery { saga_id, error, .. }) = report.errors.front() else {
        panic!("a delivery error: {:?}", report.errors);
    };
    assert_eq!(*saga_id, stuck.id);
    assert!(
        error
            .message()
            .contains("did not answer within the relay's lease (200ms)"),
        "{error}"
    );
    assert_eq!(sink.delivered_ids(), fine.ids());
}

async fn a_running_relay_delivers_what_arrives_until_shut_down<St>(store: St)
where
    St: Outbox + Clone,
{
    let sink = MemorySink::new();
    let relay = Relay::new(store.clone(), sink.clone(), config());
    let shutdown = relay.shutdown_handle();
    let running = tokio::spawn(relay.run());
    let mut sagas = fill(&store, 5, &[&["a"], &["b", "c"]]).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    sagas.extend(fill(&store, 5, &[&["a"], &["b", "c"]]).await);
    let start = Instant::now();
    while sink.len() < 30 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} of 30 delivered",
            sink.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shutdown.shutdown();
    let report = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the relay stops when told")
        .expect("the relay task");
    assert_eq!((report.claimed, report.delivered), (30, 30));
    assert!(report.rounds >= 2, "it went on polling: {report:?}");
    let got: Vec<String> = sink.messages().into_iter().map(|m| m.id).collect();
    assert_eq!(got.len(), 30);
    // A MemorySink keeps messages, not calls; each saga's order shows in them.
    for saga in &sagas {
        let mine: Vec<String> = got
            .iter()
            .filter(|id| id.starts_with(&saga.id.to_string()))
            .cloned()
            .collect();
        assert_eq!(mine, saga.ids());
    }
}

// ---------------------------------------------------------------------------
// Tests of what only a fake store can be made to do.

#[tokio::test]
async fn store_errors_are_reported_and_an_unsettled_round_is_delivered_again() {
    let store = FakeOutbox::default();
    let sagas = fill(&store, 2, &[&["a"]]).await;
    let sink = TestSink::default();
    let lease = Duration::from_millis(100);
    let relay = Relay::new(
        store.clone(),
        sink.clone(),
        RelayConfig { lease, ..config() },
    );

    store.fail_claims.store(1, Ordering::SeqCst);
    let refused = relay.run_once().await;
    assert_eq!(refused.claimed, 0);
    assert!(matches!(
        refused.errors.front(),
        Some(RelayError::Claim(e)) if e.message() == "fake outbox: claim refused on purpose"
    ));

    store.fail_settles.store(1, Ordering::SeqCst);
    let unsettled = relay.run_once().await;
    assert_eq!(
        (unsettled.claimed, unsettled.delivered, unsettled.unsettled),
        (2, 0, 2)
    );
    let [RelayError::Settle { messages: 2, error }] =
        unsettled.errors.iter().collect::<Vec<_>>()[..]
    else {
        panic!("one settlement error: {:?}", unsettled.errors);
    };
    assert!(
        unsettled.errors[0]
            .to_string()
            .contains("they will be delivered again"),
        "{error}"
    );
    // Once their lease has passed, they are claimed and delivered again.
    let again = next_claiming_round(&relay).await;
    assert_eq!(again.delivered, 2);
    let mut expected: Vec<String> = sagas.iter().flat_map(|s| s.ids()).collect();
    expected.extend(expected.clone());
    let mut delivered = sink.delivered_ids();
    delivered.sort();
    expected.sort();
    assert_eq!(delivered, expected, "at least once: each twice, same ids");
}

#[tokio::test]
async fn a_running_relay_goes_on_after_store_errors() {
    let store = FakeOutbox::default();
    fill(&store, 3, &[&["a"]]).await;
    store.fail_claims.store(3, Ordering::SeqCst);
    let sink = MemorySink::new();
    let relay = Relay::new(store.clone(), sink.clone(), config());
    let shutdown = relay.shutdown_handle();
    let running = tokio::spawn(relay.run());
    let start = Instant::now();
    while sink.len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nothing delivered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shutdown.shutdown();
    let report = running.await.unwrap();
    assert_eq!(report.delivered, 3);
    assert_eq!(report.errors.len(), 3, "{:?}", report.errors);
    assert!(
        report
            .errors
            .iter()
            .all(|e| matches!(e, RelayError::Claim(_)))
    );
}

#[tokio::test]
async fn a_round_settles_every_claimed_message_once_in_one_call() {
    let store = FakeOutbox::default();
    fill(&store, 6, &[&["a"], &["b"], &["a"]]).await;
    fill_one(&store, &[&["a"], &["broken"], &["a", "b"]], true).await;
    let sink = TestSink::default();
    sink.fail("broken", 1);
    let relay = Relay::new(store.clone(), sink, config());
    let report = relay.run_once().await;
    assert_eq!(report.claimed, 22);
    let calls = store.settle_calls();
    assert_eq!(calls.len(), 1, "one settle_messages call per round");
    let mut ids: Vec<String> = calls[0]
        .iter()
        .map(|s| match s {
            Settlement::Delivered { id }
            | Settlement::Retry { id, .. }
            | Settlement::Dead { id, .. }
            | Settlement::Released { id } => id.clone(),
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 22, "each claimed message settled once");
    let retry_at: Vec<SystemTime> = calls[0]
        .iter()
        .filter_map(|s| match s {
            Settlement::Retry { retry_at, .. } => Some(*retry_at),
            _ => None,
        })
        .collect();
    // No jitter: the first retry is the whole first backoff away.
    let pause = retry_at[0]
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    assert!(
        retry_at.len() == 1
            && pause > Duration::from_millis(100)
            && pause <= Duration::from_millis(200),
        "{pause:?}"
    );
}

#[tokio::test]
async fn a_report_keeps_only_its_latest_errors() {
    let store = FakeOutbox::default();
    fill(&store, 100, &[&["broken"]]).await;
    let sink = TestSink::default();
    sink.fail("broken", u32::MAX);
    let relay = Relay::new(store, sink, config());
    let report = relay.run_once().await;
    assert_eq!(report.retried, 100);
    assert_eq!(report.errors.len(), RelayReport::ERRORS_KEPT);
    assert_eq!(report.errors_dropped, 100 - RelayReport::ERRORS_KEPT as u64);
    assert!(!report.is_clean());
}

// ---------------------------------------------------------------------------
// The contract tests, on each store.

macro_rules! on_every_store {
    ($($test:ident),* $(,)?) => {
        mod fake {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::FakeOutbox::default()).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let dir = tempfile::tempdir().unwrap();
                    let path = dir.path().join("relay.db");
                    let store = sagaflow::durable::SqliteStore::open(
                        path,
                        sagaflow::durable::Durability::Normal,
                    )
                    .unwrap();
                    super::$test(store).await;
                }
            )*
        }
    };
}

on_every_store!(
    delivers_each_sagas_transitions_in_order_one_call_each,
    small_batches_keep_each_sagas_order,
    a_failing_transition_is_retried_with_backoff_then_dead_and_its_successors_wait,
    a_dead_letter_resent_is_delivered_with_the_same_id,
    an_expired_lease_hands_messages_to_another_relay_and_fences_the_first,
    a_sink_that_never_answers_fails_its_transition_at_the_lease,
    a_running_relay_delivers_what_arrives_until_shut_down,
);
