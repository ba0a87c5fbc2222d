//! The relay over an outbox store: order per saga, one delivery per
//! transition, retries with backoff, dead letters and their re-sending,
//! leases that pass to another relay, fenced settlements, store errors.
//!
//! The tests that only need the `Outbox` contract run on every store (the
//! `on_every_store!` list at the bottom: `FakeOutbox` and `SqliteStore`);
//! those that need a store to fail on purpose run on `FakeOutbox`, an
//! in-memory `Store + Outbox` defined here. (`PgStore`'s claims are tested
//! with several relays in tests/outbox_store.rs.)

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sagaflow::SagaId;
use sagaflow::durable::{Entry, NewSaga, SagaRecord, SagaStatus, Store, StoreError};
use sagaflow::outbox::{
    ClaimedMessages, MemorySink, Message, MessageFilter, MessageState, Outbox, PendingMessage,
    Relay, RelayConfig, RelayError, RelayReport, Settlement, Sink, SinkError, StoredMessage,
};
use support::outbox::{FilledSaga, fill, fill_one};

// ---------------------------------------------------------------------------
// A fake outbox store, in memory, that can be told to fail.

#[derive(Debug, Clone)]
struct FakeMessage {
    pending: PendingMessage,
    state: MessageState,
    last_error: Option<String>,
    delivered_at: Option<SystemTime>,
    retry_at: SystemTime,
    lease: Option<(u64, Instant)>,
}

#[derive(Default)]
struct FakeInner {
    sagas: Vec<SagaRecord>,
    messages: Vec<FakeMessage>,
    next_token: u64,
    settle_calls: Vec<Vec<Settlement>>,
}

/// An in-memory `Store + Outbox` with the contract's claim rule, and faults
/// on request: the next `fail_claims` claims and `fail_settles` settlements
/// fail (settlements without changing anything).
#[derive(Clone, Default)]
struct FakeOutbox {
    inner: Arc<Mutex<FakeInner>>,
    fail_claims: Arc<AtomicU32>,
    fail_settles: Arc<AtomicU32>,
}

impl FakeOutbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, FakeInner> {
        self.inner.lock().unwrap()
    }

    /// Every `settle_messages` call so far, with its settlements.
    fn settle_calls(&self) -> Vec<Vec<Settlement>> {
        self.lock().settle_calls.clone()
    }
}

fn take_fault(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl Store for FakeOutbox {
    async fn create(&self, saga: NewSaga) -> Result<(), StoreError> {
        self.lock().sagas.push(SagaRecord {
            id: saga.id,
            saga_type: saga.saga_type,
            fingerprint: saga.fingerprint,
            input: saga.input,
            status: SagaStatus::Running,
            journal: Vec::new(),
        });
        Ok(())
    }

    async fn append(&self, id: SagaId, entry: Entry) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let FakeInner {
            sagas, messages, ..
        } = &mut *inner;
        let saga = sagas
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or_else(|| StoreError::new(format!("no saga {id}")))?;
        let seq = saga.journal.len() as u64;
        match &entry {
            Entry::Finished { status, .. } => saga.status = *status,
            Entry::Sent { messages: sent } => {
                messages.extend(sent.iter().map(|message| FakeMessage {
                    pending: PendingMessage {
                        saga_id: id,
                        seq,
                        message: message.clone(),
                        attempts: 0,
                    },
                    state: MessageState::Pending,
                    last_error: None,
                    delivered_at: None,
                    retry_at: SystemTime::UNIX_EPOCH,
                    lease: None,
                }))
            }
            _ => {}
        }
        saga.journal.push(entry);
        Ok(())
    }

    async fn claim_unfinished(&self) -> Result<Vec<SagaRecord>, StoreError> {
        self.with_status(SagaStatus::Running).await
    }

    async fn get(&self, id: SagaId) -> Result<Option<SagaRecord>, StoreError> {
        Ok(self.lock().sagas.iter().find(|s| s.id == id).cloned())
    }

    async fn with_status(&self, status: SagaStatus) -> Result<Vec<SagaRecord>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .sagas
            .iter()
            .filter(|s| s.status == status)
            .cloned()
            .collect())
    }
}

impl Outbox for FakeOutbox {
    async fn claim_messages(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<ClaimedMessages, StoreError> {
        if take_fault(&self.fail_claims) {
            return Err(StoreError::new("fake outbox: claim refused on purpose"));
        }
        let mut inner = self.lock();
        inner.next_token += 1;
        let token = inner.next_token;
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut claimed = Vec::new();
        // A saga whose earliest pending message cannot go now blocks the rest
        // of that saga's messages; a transition goes whole or not at all (the
        // first of a claim even past `limit`).
        let mut blocked: Vec<SagaId> = Vec::new();
        let mut picked: Vec<usize> = Vec::new();
        let mut at = 0;
        while at < inner.messages.len() {
            let message = &inner.messages[at];
            let (saga, seq) = (message.pending.saga_id, message.pending.seq);
            let transition: Vec<usize> = (at..inner.messages.len())
                .take_while(|&i| {
                    let m = &inner.messages[i].pending;
                    (m.saga_id, m.seq) == (saga, seq)
                })
                .collect();
            at += transition.len();
            if message.state != MessageState::Pending || blocked.contains(&saga) {
                continue;
            }
            let free = transition.iter().all(|&i| {
                let m = &inner.messages[i];
                m.lease.is_none_or(|(_, until)| until <= now) && m.retry_at <= wall
            });
            let room = limit.saturating_sub(picked.len());
            if !free || (transition.len() > room && !picked.is_empty()) {
                blocked.push(saga);
                continue;
            }
            picked.extend(transition);
        }
        for i in picked {
            let message = &mut inner.messages[i];
            message.lease = Some((token, now + lease));
            claimed.push(message.pending.clone());
        }
        Ok(ClaimedMessages {
            token,
            messages: claimed,
        })
    }

    async fn settle_messages(
        &self,
        token: u64,
        settlements: Vec<Settlement>,
    ) -> Result<(), StoreError> {
        if take_fault(&self.fail_settles) {
            return Err(StoreError::new(
                "fake outbox: settlement refused on purpose",
            ));
        }
        let mut inner = self.lock();
        inner.settle_calls.push(settlements.clone());
        for settlement in settlements {
            let id = match &settlement {
                Settlement::Delivered { id }
                | Settlement::Retry { id, .. }
                | Settlement::Dead { id, .. }
                | Settlement::Released { id } => id.clone(),
            };
            let Some(message) = inner
                .messages
                .iter_mut()
                .find(|m| m.pending.message.id == id)
            else {
                continue;
            };
            if message.lease.map(|(t, _)| t) != Some(token) {
                continue; // fenced off: another relay has it now
            }
            message.lease = None;
            match settlement {
                Settlement::Delivered { .. } => {
                    message.state = MessageState::Delivered;
                    message.delivered_at = Some(SystemTime::now());
                }
                Settlement::Retry {
                    error, retry_at, ..
                } => {
                    message.pending.attempts += 1;
                    message.last_error = Some(error);
                    message.retry_at = retry_at;
                }
                Settlement::Dead { error, .. } => {
                    message.pending.attempts += 1;
                    message.last_error = Some(error);
                    message.state = MessageState::Dead;
                }
                Settlement::Released { .. } => {}
            }
        }
        Ok(())
    }

    async fn messages(&self, filter: MessageFilter) -> Result<Vec<StoredMessage>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .messages
            .iter()
            .filter(|m| filter.state.is_none_or(|s| s == m.state))
            .filter(|m| filter.saga_id.is_none_or(|s| s == m.pending.saga_id))
            .take(filter.limit.unwrap_or(usize::MAX))
            .map(|m| StoredMessage {
                saga_id: m.pending.saga_id,
                seq: m.pending.seq,
                message: m.pending.message.clone(),
                state: m.state,
                attempts: m.pending.attempts,
                last_error: m.last_error.clone(),
                delivered_at: m.delivered_at,
            })
            .collect())
    }

    async fn resend(&self, id: &str) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let dead = inner
            .messages
            .iter_mut()
            .find(|m| m.pending.message.id == id && m.state == MessageState::Dead);
        Ok(dead.is_some_and(|m| {
            m.state = MessageState::Pending;
            m.pending.attempts = 0;
            m.retry_at = SystemTime::UNIX_EPOCH;
            true
        }))
    }
}

// ---------------------------------------------------------------------------
// A sink that records each call, can take its time, and fails on request.

#[derive(Clone, Default)]
struct TestSink {
    calls: Arc<Mutex<Vec<Vec<Message>>>>,
    /// Failures left per destination (`u32::MAX`: always).
    failing: Arc<Mutex<HashMap<String, u32>>>,
    /// A destination whose delivery never answers.
    hanging: Arc<Mutex<Option<String>>>,
    delay: Duration,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

impl TestSink {
    fn slow(delay: Duration) -> Self {
        TestSink {
            delay,
            ..TestSink::default()
        }
    }

    fn fail(&self, destination: &str, times: u32) {
        self.failing
            .lock()
            .unwrap()
            .insert(destination.to_owned(), times);
    }

    fn calls(&self) -> Vec<Vec<Message>> {
        self.calls.lock().unwrap().clone()
    }

    /// The ids of each call that succeeded.
    fn delivered_ids(&self) -> Vec<String> {
        self.calls().into_iter().flatten().map(|m| m.id).collect()
    }
}

impl Sink for TestSink {
    async fn deliver(&self, messages: &[Message]) -> Result<(), SinkError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let hanging = self.hanging.lock().unwrap().clone();
        if messages
            .iter()
            .any(|m| Some(&m.destination) == hanging.as_ref())
        {
            std::future::pending::<()>().await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mut failing = self.failing.lock().unwrap();
        for message in messages {
            if let Some(left) = failing.get_mut(&message.destination)
                && *left > 0
            {
                if *left != u32::MAX {
                    *left -= 1;
                }
                return Err(SinkError::new(format!(
                    "test sink: `{}` is down",
                    message.destination
                )));
            }
        }
        self.calls.lock().unwrap().push(messages.to_vec());
        Ok(())
    }
}

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
