//! The relay: claims stored messages from an [`Outbox`] and hands them to a
//! [`Sink`], in order per saga, at least once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::StreamExt;
use tokio::sync::watch;
use tracing::Instrument;

use super::{Message, Outbox, PendingMessage, Settlement, Sink, SinkError};
use crate::SagaId;

mod config;
mod report;

pub use config::RelayConfig;
pub use report::{RelayError, RelayReport};

/// Delivers the messages of an [`Outbox`] store to a [`Sink`], in order per
/// saga, at least once.
///
/// One round ([`Relay::run_once`]):
///
/// 1. claim up to [`RelayConfig::batch`] messages under a lease;
/// 2. group them by saga, and within a saga by transition (the same
///    [`seq`](crate::outbox::PendingMessage::seq)), which the store leases whole;
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
/// [`id`](crate::outbox::Message::id). Consumers deduplicate by id.
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
}
