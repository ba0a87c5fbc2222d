//! The relay: claims stored messages from an [`Outbox`] and hands them to a
//! [`Sink`], in order per saga, at least once.

use core::fmt;
use core::time::Duration;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::StreamExt;
use tokio::sync::watch;
use tracing::Instrument;

use super::{Message, Outbox, PendingMessage, Settlement, Sink, SinkError};
use crate::SagaId;
use crate::durable::StoreError;

/// How a [`Relay`] claims, delivers and retries.
///
/// Out-of-range values are read as the nearest sensible one: a `batch`,
/// `concurrency` or `max_attempts` of 0 as 1, a `jitter` outside `0.0..=1.0`
/// as the nearest end, a `max_backoff` below `backoff` as `backoff`.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayConfig {
    /// The most messages claimed in one round.
    pub batch: usize,
    /// How long a claim is leased. A transition not acknowledged by the sink
    /// within the lease counts as a failed delivery: another relay may have
    /// the messages by then.
    pub lease: Duration,
    /// Failed deliveries of a message before it is dead: its last failure
    /// makes it [`Dead`](Settlement::Dead) instead of retried.
    pub max_attempts: u32,
    /// The pause before the second try; it doubles with every further
    /// failure, up to `max_backoff`.
    pub backoff: Duration,
    /// The longest pause between two tries.
    pub max_backoff: Duration,
    /// The part of each pause drawn at random, from 0.0 (none) to 1.0 (a pause
    /// anywhere between zero and the full backoff), so that messages that
    /// failed together are not all tried again at the same instant.
    pub jitter: f64,
    /// How long [`Relay::run`] waits before claiming again when a round found
    /// less than a full batch.
    pub poll: Duration,
    /// How long [`Relay::run`] waits after the store failed.
    pub error_pause: Duration,
    /// The most sagas whose messages are being delivered at once. A saga's own
    /// transitions always go one after the other.
    pub concurrency: usize,
}

impl Default for RelayConfig {
    /// Batches of 256 under a 30 s lease, 32 sagas at once, dead after 10
    /// failures, backoff from 100 ms doubling to 1 min with half of it random,
    /// a poll every 100 ms when idle, a 1 s pause after a store error.
    fn default() -> Self {
        RelayConfig {
            batch: 256,
            lease: Duration::from_secs(30),
            max_attempts: 10,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(60),
            jitter: 0.5,
            poll: Duration::from_millis(100),
            error_pause: Duration::from_secs(1),
            concurrency: 32,
        }
    }
}

impl RelayConfig {
    /// The pause, before jitter, after a message's `failures`th failed
    /// delivery: `backoff × 2^(failures − 1)`, at most `max_backoff`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sagaflow::outbox::RelayConfig;
    /// let config = RelayConfig {
    ///     backoff: Duration::from_millis(100),
    ///     max_backoff: Duration::from_secs(1),
    ///     ..RelayConfig::default()
    /// };
    /// assert_eq!(config.backoff_after(1), Duration::from_millis(100));
    /// assert_eq!(config.backoff_after(3), Duration::from_millis(400));
    /// assert_eq!(config.backoff_after(30), Duration::from_secs(1));
    /// ```
    pub fn backoff_after(&self, failures: u32) -> Duration {
        let max = self.max_backoff.max(self.backoff);
        let doublings = failures.saturating_sub(1).min(31);
        self.backoff.saturating_mul(1u32 << doublings).min(max)
    }

    /// [`backoff_after`](Self::backoff_after) with its `jitter` part drawn at
    /// random.
    fn jittered_backoff(&self, failures: u32) -> Duration {
        let full = self.backoff_after(failures);
        let jitter = self.jitter.clamp(0.0, 1.0);
        full.mul_f64(1.0 - jitter * fastrand::f64())
    }

    fn normalized(mut self) -> Self {
        self.batch = self.batch.max(1);
        self.concurrency = self.concurrency.max(1);
        self.max_attempts = self.max_attempts.max(1);
        self
    }
}

/// What went wrong in a relay's round.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayError {
    /// The store failed to lease messages: nothing was delivered in that round.
    Claim(StoreError),
    /// The sink failed one transition's messages.
    Delivery {
        /// The saga that sent them.
        saga_id: SagaId,
        /// The transition (see [`PendingMessage::seq`](super::PendingMessage::seq)).
        seq: u64,
        /// The messages' ids, in order.
        ids: Vec<String>,
        /// Which delivery of them this was (1 for the first).
        attempt: u32,
        /// Whether this was the last one allowed: they are dead letters now
        /// (once the round is settled).
        dead: bool,
        /// The sink's error.
        error: SinkError,
    },
    /// The store failed to record the round's settlements: those messages will
    /// be delivered again, also those the sink had acknowledged.
    Settle {
        /// How many messages the round had.
        messages: usize,
        /// The store's error.
        error: StoreError,
    },
}

impl fmt::Display for RelayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelayError::Claim(error) => write!(f, "claiming messages failed: {error}"),
            RelayError::Delivery {
                saga_id,
                seq,
                ids,
                attempt,
                dead,
                error,
            } => {
                write!(
                    f,
                    "delivering saga {saga_id}'s transition {seq} ({}) failed at attempt {attempt}{}: {error}",
                    ids.join(", "),
                    if *dead {
                        ", the last allowed: dead"
                    } else {
                        ""
                    },
                )
            }
            RelayError::Settle { messages, error } => write!(
                f,
                "recording what became of {messages} messages failed, so they will be \
                 delivered again: {error}"
            ),
        }
    }
}

impl std::error::Error for RelayError {}

/// What a relay did: the totals of one round ([`Relay::run_once`]) or of all
/// rounds ([`Relay::run`]).
///
/// The message counts are of settled messages: a round whose settlement the
/// store failed to record adds its messages to `unsettled` only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayReport {
    /// Rounds run.
    pub rounds: u64,
    /// Messages claimed.
    pub claimed: u64,
    /// Messages the sink acknowledged, now marked delivered.
    pub delivered: u64,
    /// Messages whose delivery failed, to be tried again after their backoff.
    pub retried: u64,
    /// Messages whose last allowed delivery failed, now dead letters.
    pub dead: u64,
    /// Messages not tried because an earlier one of their saga failed.
    pub released: u64,
    /// Messages of rounds whose settlement failed: they will be delivered
    /// again.
    pub unsettled: u64,
    /// The most recent errors, at most [`RelayReport::ERRORS_KEPT`], oldest
    /// first.
    pub errors: VecDeque<RelayError>,
    /// Errors that happened but were dropped from `errors` to keep it bounded.
    pub errors_dropped: u64,
}

impl RelayReport {
    /// How many errors a report keeps.
    pub const ERRORS_KEPT: usize = 64;

    /// Whether nothing went wrong.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty() && self.errors_dropped == 0
    }

    fn push_error(&mut self, error: RelayError) {
        if self.errors.len() == Self::ERRORS_KEPT {
            self.errors.pop_front();
            self.errors_dropped += 1;
        }
        self.errors.push_back(error);
    }
}

/// Delivers the messages of an [`Outbox`] store to a [`Sink`], in order per
/// saga, at least once.
///
/// One round ([`Relay::run_once`]):
///
/// 1. claim up to [`RelayConfig::batch`] messages under a lease;
/// 2. group them by saga, and within a saga by transition (the same
///    [`seq`](super::PendingMessage::seq)), which the store leases whole;
/// 3. deliver each saga's transitions in order, one [`Sink::deliver`] call per
///    transition, up to [`RelayConfig::concurrency`] sagas at once; when a
///    transition fails, the saga's later claimed messages are not tried
///    (they are [`Released`](Settlement::Released), to leave after it);
/// 4. settle every message of the round in one
///    [`settle_messages`](Outbox::settle_messages) call.
///
/// A failed transition is retried after an exponential backoff with jitter,
/// and its messages go to the dead letters after
/// [`RelayConfig::max_attempts`] failed deliveries.
///
/// **At least once.** The sink has a message before the store marks it
/// delivered. A crash in between, a settlement the store fails to write, or a
/// lease that passes before the settlement (so that it is fenced off) all mean
/// the same: the message is delivered again, with the same
/// [`id`](super::Message::id). Consumers deduplicate by id.
///
/// Several relays, in one process or many, may run over one store: the
/// store's leases keep them from delivering a message at the same time.
///
/// ```no_run
/// # use sagaflow::durable::SqliteStore;
/// # use sagaflow::outbox::{Outbox, PrintSink, Relay, RelayConfig};
/// # async fn relay<St: Outbox>(store: St) {
/// let relay = Relay::new(store, PrintSink, RelayConfig::default());
/// let shutdown = relay.shutdown_handle();
/// let running = tokio::spawn(relay.run());
/// // .. on SIGTERM:
/// shutdown.shutdown();
/// let report = running.await.expect("the relay task");
/// println!("{} messages delivered", report.delivered);
/// # }
/// ```
pub struct Relay<St: Outbox, K: Sink> {
    store: St,
    sink: K,
    config: RelayConfig,
    stop: watch::Sender<bool>,
}

/// Tells a [`Relay`] running [`run`](Relay::run) to stop. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RelayShutdown(Arc<watch::Sender<bool>>);

impl RelayShutdown {
    /// Asks the relay to stop: it finishes (and settles) the round it is in,
    /// then its `run` returns.
    pub fn shutdown(&self) {
        self.0.send_replace(true);
    }
}

/// How a round went, for [`Relay::run`] to choose its pause.
enum Round {
    /// A full batch: there may be more at once.
    Full,
    /// Less than a full batch, or nothing.
    Partial,
    /// The store failed.
    StoreFailed,
}

/// One saga's claimed messages, by transition, in order.
struct SagaBatch {
    saga_id: SagaId,
    transitions: Vec<Vec<PendingMessage>>,
}

/// What became of one saga's messages in a round.
#[derive(Default)]
struct SagaOutcome {
    settlements: Vec<Settlement>,
    delivered: u64,
    retried: u64,
    dead: u64,
    released: u64,
    error: Option<RelayError>,
}

impl<St: Outbox, K: Sink> Relay<St, K> {
    /// A relay from `store` to `sink`.
    pub fn new(store: St, sink: K, config: RelayConfig) -> Self {
        Relay {
            store,
            sink,
            config: config.normalized(),
            stop: watch::channel(false).0,
        }
    }

    /// The store it relays from.
    pub fn store(&self) -> &St {
        &self.store
    }

    /// The sink it delivers to.
    pub fn sink(&self) -> &K {
        &self.sink
    }

    /// Its configuration.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// The handle that stops [`run`](Self::run).
    pub fn shutdown_handle(&self) -> RelayShutdown {
        RelayShutdown(Arc::new(self.stop.clone()))
    }

    /// Runs one round: claims, delivers and settles. A store error is in the
    /// report (and logged), not returned: the next round may well succeed.
    pub async fn run_once(&self) -> RelayReport {
        let mut report = RelayReport::default();
        self.round(&mut report).await;
        report
    }

    /// Runs rounds until [`RelayShutdown::shutdown`]: at once again after a
    /// full batch, after [`poll`](RelayConfig::poll) otherwise, and after
    /// [`error_pause`](RelayConfig::error_pause) when the store failed.
    /// Answers the totals, with the most recent errors.
    pub async fn run(self) -> RelayReport {
        let mut stop = self.stop.subscribe();
        let mut report = RelayReport::default();
        while !*stop.borrow_and_update() {
            let pause = match self.round(&mut report).await {
                Round::Full => continue,
                Round::Partial => self.config.poll,
                Round::StoreFailed => self.config.error_pause,
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
        report
    }

    async fn round(&self, report: &mut RelayReport) -> Round {
        report.rounds += 1;
        let lease = self.config.lease;
        let claimed = match self.store.claim_messages(self.config.batch, lease).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::error!(%error, "the relay could not claim messages; it will try again");
                report.push_error(RelayError::Claim(error));
                return Round::StoreFailed;
            }
        };
        let count = claimed.messages.len();
        if count == 0 {
            return Round::Partial;
        }
        report.claimed += count as u64;
        let span = tracing::debug_span!(
            "sagaflow.relay.round",
            token = claimed.token,
            messages = count
        );
        let deadline = tokio::time::Instant::now() + lease;
        let outcomes: Vec<SagaOutcome> = futures_util::stream::iter(by_saga(claimed.messages))
            .map(|saga| self.deliver_saga(saga, deadline))
            .buffer_unordered(self.config.concurrency)
            .collect()
            .instrument(span.clone())
            .await;
        let mut tally = SagaOutcome::default();
        let mut settlements = Vec::with_capacity(count);
        for outcome in outcomes {
            settlements.extend(outcome.settlements);
            tally.delivered += outcome.delivered;
            tally.retried += outcome.retried;
            tally.dead += outcome.dead;
            tally.released += outcome.released;
            if let Some(error) = outcome.error {
                report.push_error(error);
            }
        }
        let settled = self
            .store
            .settle_messages(claimed.token, settlements)
            .instrument(span.clone())
            .await;
        let _entered = span.enter();
        if let Err(error) = settled {
            tracing::error!(%error, messages = count, "the relay could not record what became of its messages; they will be delivered again");
            report.unsettled += count as u64;
            report.push_error(RelayError::Settle {
                messages: count,
                error,
            });
            return Round::StoreFailed;
        }
        tracing::debug!(
            delivered = tally.delivered,
            retried = tally.retried,
            dead = tally.dead,
            released = tally.released,
            "round settled"
        );
        report.delivered += tally.delivered;
        report.retried += tally.retried;
        report.dead += tally.dead;
        report.released += tally.released;
        if count >= self.config.batch {
            Round::Full
        } else {
            Round::Partial
        }
    }

    /// Delivers one saga's transitions in order, until one fails.
    async fn deliver_saga(&self, saga: SagaBatch, deadline: tokio::time::Instant) -> SagaOutcome {
        let mut outcome = SagaOutcome::default();
        let mut transitions = saga.transitions.into_iter();
        while let Some(transition) = transitions.next() {
            let seq = transition[0].seq;
            let attempts: Vec<u32> = transition.iter().map(|p| p.attempts).collect();
            let messages: Vec<Message> = transition.into_iter().map(|p| p.message).collect();
            let answer = tokio::time::timeout_at(deadline, self.sink.deliver(&messages)).await;
            let error = match answer {
                Ok(Ok(())) => {
                    outcome.delivered += messages.len() as u64;
                    outcome.settlements.extend(
                        messages
                            .into_iter()
                            .map(|m| Settlement::Delivered { id: m.id }),
                    );
                    continue;
                }
                Ok(Err(error)) => error,
                Err(_) => SinkError::new(format!(
                    "the sink did not answer within the relay's lease ({:?}), so another relay \
                     may have these messages by now",
                    self.config.lease
                )),
            };
            self.failed(&mut outcome, saga.saga_id, seq, messages, &attempts, error);
            for later in transitions.by_ref().flatten() {
                outcome.released += 1;
                outcome.settlements.push(Settlement::Released {
                    id: later.message.id,
                });
            }
        }
        outcome
    }

    /// Settles a failed transition's messages: retried, or dead after their
    /// last allowed attempt.
    fn failed(
        &self,
        outcome: &mut SagaOutcome,
        saga_id: SagaId,
        seq: u64,
        messages: Vec<Message>,
        attempts: &[u32],
        error: SinkError,
    ) {
        let now = SystemTime::now();
        let attempt = attempts
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        let dead = attempt >= self.config.max_attempts;
        let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
        for (message, tried) in messages.into_iter().zip(attempts) {
            let failures = tried.saturating_add(1);
            let text = error.to_string();
            outcome
                .settlements
                .push(if failures >= self.config.max_attempts {
                    outcome.dead += 1;
                    Settlement::Dead {
                        id: message.id,
                        error: text,
                    }
                } else {
                    outcome.retried += 1;
                    Settlement::Retry {
                        id: message.id,
                        error: text,
                        retry_at: now + self.config.jittered_backoff(failures),
                    }
                });
        }
        if dead {
            tracing::error!(saga = %saga_id, seq, ids = ?ids, attempt, %error, "delivery failed for the last time allowed: dead letters");
        } else {
            tracing::warn!(saga = %saga_id, seq, ids = ?ids, attempt, %error, "delivery failed; it will be retried");
        }
        outcome.error = Some(RelayError::Delivery {
            saga_id,
            seq,
            ids,
            attempt,
            dead,
            error,
        });
    }
}

/// Groups claimed messages by saga (in the order sagas first appear) and,
/// within a saga, by transition in `seq` order, keeping the claim's order
/// inside a transition.
fn by_saga(messages: Vec<PendingMessage>) -> Vec<SagaBatch> {
    let mut sagas: Vec<(SagaId, Vec<PendingMessage>)> = Vec::new();
    let mut index: HashMap<SagaId, usize> = HashMap::new();
    for message in messages {
        let at = *index.entry(message.saga_id).or_insert_with(|| {
            sagas.push((message.saga_id, Vec::new()));
            sagas.len() - 1
        });
        sagas[at].1.push(message);
    }
    sagas
        .into_iter()
        .map(|(saga_id, mut messages)| {
            messages.sort_by_key(|m| m.seq);
            let mut transitions: Vec<Vec<PendingMessage>> = Vec::new();
            for message in messages {
                match transitions.last_mut() {
                    Some(last) if last[0].seq == message.seq => last.push(message),
                    _ => transitions.push(vec![message]),
                }
            }
            SagaBatch {
                saga_id,
                transitions,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(saga: u128, seq: u64, n: u32) -> PendingMessage {
        let saga_id = SagaId::from_u128(saga);
        PendingMessage {
            saga_id,
            seq,
            message: Message {
                id: format!("{saga_id}-s{seq}-{n}"),
                destination: "d".into(),
                key: None,
                payload: b"{}".to_vec(),
                created_ms: 0,
            },
            attempts: 0,
        }
    }

    #[test]
    fn claimed_messages_group_by_saga_then_transition_in_order() {
        let claimed = vec![
            pending(1, 2, 0),
            pending(2, 5, 0),
            pending(1, 2, 1),
            pending(1, 1, 0),
            pending(2, 5, 1),
        ];
        let sagas = by_saga(claimed);
        let shape: Vec<(u128, Vec<Vec<String>>)> = sagas
            .iter()
            .map(|s| {
                (
                    s.saga_id.as_u128(),
                    s.transitions
                        .iter()
                        .map(|t| t.iter().map(|p| p.message.id.clone()).collect())
                        .collect(),
                )
            })
            .collect();
        let id = |saga: u128, seq: u64, n: u32| pending(saga, seq, n).message.id;
        assert_eq!(
            shape,
            vec![
                (1, vec![vec![id(1, 1, 0)], vec![id(1, 2, 0), id(1, 2, 1)]]),
                (2, vec![vec![id(2, 5, 0), id(2, 5, 1)]]),
            ]
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_jitter_only_shortens_it() {
        let config = RelayConfig {
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(70),
            jitter: 0.5,
            ..RelayConfig::default()
        };
        let full: Vec<u128> = (1..=5)
            .map(|n| config.backoff_after(n).as_millis())
            .collect();
        assert_eq!(full, vec![10, 20, 40, 70, 70]);
        assert_eq!(config.backoff_after(u32::MAX), Duration::from_millis(70));
        for _ in 0..200 {
            let pause = config.jittered_backoff(3);
            assert!(pause <= Duration::from_millis(40) && pause >= Duration::from_millis(20));
        }
        let none = RelayConfig {
            jitter: -3.0,
            ..config
        };
        assert_eq!(none.jittered_backoff(2), Duration::from_millis(20));
    }
}
