//! The transactional outbox: messages that leave if and only if the saga
//! transition that made them is durable.
//!
//! A saga body sends with [`send!`](crate::send); such a message is committed
//! with the saga's final commit, and only if the saga commits. A step sends with
//! [`StepContext::send`](crate::StepContext::send); such a message is committed
//! with that step's outcome (so it leaves even if the saga later compensates, and
//! a compensation can send its own "cancelled" message the same way). In both
//! cases the message is written in the same store transaction as the transition,
//! as an [`Entry::Sent`](crate::durable::Entry::Sent) in the journal and a row in
//! the store's outbox.
//!
//! A [`Relay`] over an [`Outbox`] store delivers the stored messages to a
//! [`Sink`] at least once, in order per saga, retrying with backoff and moving a
//! message that keeps failing to the dead letters, where an operator can list
//! and re-send it. A crash between a delivery and its mark delivers the message
//! again with the same [`Message::id`], so consumers can deduplicate.
//!
//! [`Sink`] is small on purpose: a sink for NATS or Kafka is a short file.

use core::fmt;
use core::future::Future;
use std::time::{Duration, SystemTime};

use crate::SagaId;
use crate::durable::{Store, StoreError};

pub(crate) mod in_run;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
mod redis;
mod relay;
pub(crate) mod sending;
mod sinks;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{RedisConfig, RedisStreams};
pub use relay::{Relay, RelayConfig, RelayError, RelayReport, RelayShutdown};
pub use sinks::{MemorySink, PrintSink};

/// One message, as it is stored and delivered.
///
/// The id is stable: made from the saga's id and the message's position
/// (`<saga id>-s<step>-<n>` for the `n`th message of step `step`'s outcome,
/// `<saga id>-u<step>-<n>` for its compensation's, `<saga id>-end-<n>` for the
/// saga body's, sent at its commit). A message delivered again after a crash
/// carries the same id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    /// The stable id, unique in the store.
    pub id: String,
    /// Where it goes: a stream, a topic, a queue; the sink's word for it.
    pub destination: String,
    /// The key, if any: a sink that partitions (Kafka) or orders by key uses it.
    pub key: Option<String>,
    /// The message, serialized as JSON.
    pub payload: Vec<u8>,
    /// When it was made, in milliseconds since the Unix epoch.
    pub created_ms: u64,
}

impl Message {
    /// The payload as UTF-8 text (it is JSON, so it always is unless a store
    /// was damaged).
    pub fn payload_text(&self) -> Result<&str, core::str::Utf8Error> {
        core::str::from_utf8(&self.payload)
    }
}

/// Where a stored message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageState {
    /// Not delivered yet: the relay delivers it (again, after a failure, once
    /// its backoff has passed).
    Pending,
    /// The sink acknowledged it.
    Delivered,
    /// It failed to deliver as many times as the relay allows: it waits for a
    /// person, who can [`resend`](Outbox::resend) it.
    Dead,
}

impl MessageState {
    /// The word stored for this state.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Pending => "pending",
            MessageState::Delivered => "delivered",
            MessageState::Dead => "dead",
        }
    }

    /// The state stored as `word`.
    pub fn parse(word: &str) -> Option<MessageState> {
        Some(match word {
            "pending" => MessageState::Pending,
            "delivered" => MessageState::Delivered,
            "dead" => MessageState::Dead,
            _ => return None,
        })
    }
}

impl fmt::Display for MessageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message leased to a relay by [`Outbox::claim_messages`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMessage {
    /// The saga that sent it.
    pub saga_id: SagaId,
    /// Its order within the saga: the journal position of the transition that
    /// made it. Messages of one transition share it and keep their order in
    /// [`Message::id`]'s `n`.
    pub seq: u64,
    /// The message.
    pub message: Message,
    /// Deliveries tried so far (0 for a message never tried).
    pub attempts: u32,
}

/// What [`Outbox::claim_messages`] leases: the messages and the token that
/// proves the lease when they are settled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimedMessages {
    /// The lease's token: a settlement with another token (a relay whose lease
    /// passed and was taken over) changes nothing.
    pub token: u64,
    /// The messages, grouped by saga and in order within each saga.
    pub messages: Vec<PendingMessage>,
}

/// What became of one leased message, told to [`Outbox::settle_messages`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// The sink acknowledged it: it is `Delivered`.
    Delivered {
        /// The message's id.
        id: String,
    },
    /// The delivery failed: it stays `Pending`, with one more attempt counted,
    /// not to be claimed before `retry_at`.
    Retry {
        /// The message's id.
        id: String,
        /// Why the delivery failed.
        error: String,
        /// The earliest time it may be claimed again.
        retry_at: SystemTime,
    },
    /// The delivery failed for the last time allowed: it becomes `Dead`.
    Dead {
        /// The message's id.
        id: String,
        /// Why the last delivery failed.
        error: String,
    },
    /// Not tried (an earlier message of its saga failed): its lease is given
    /// up, nothing else changes.
    Released {
        /// The message's id.
        id: String,
    },
}

/// A stored message with its delivery state: what an operator's view shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The saga that sent it.
    pub saga_id: SagaId,
    /// Its order within the saga (see [`PendingMessage::seq`]).
    pub seq: u64,
    /// The message.
    pub message: Message,
    /// Where it stands.
    pub state: MessageState,
    /// Deliveries tried so far.
    pub attempts: u32,
    /// The last delivery's error, if it failed.
    pub last_error: Option<String>,
    /// When it was delivered, if it was.
    pub delivered_at: Option<SystemTime>,
}

/// Which messages [`Outbox::messages`] answers with. The default matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    /// Only messages in this state.
    pub state: Option<MessageState>,
    /// Only messages of this saga.
    pub saga_id: Option<SagaId>,
    /// At most this many (in saga and message order).
    pub limit: Option<usize>,
}

/// A store that keeps an outbox: the messages that journal entries of kind
/// [`Entry::Sent`](crate::durable::Entry::Sent) carry, each stored in the same
/// transaction as its entry, with a delivery state.
///
/// [`SqliteStore`](crate::durable::SqliteStore) and `PgStore` implement it.
pub trait Outbox: Store {
    /// Leases up to `limit` messages that may be delivered now, for `lease`:
    /// pending, past their backoff, not leased to anyone else, and with no
    /// earlier pending message of their saga that is not in this same claim
    /// (so that a saga's messages leave in order, and never from two relays at
    /// once). Several relays over one store never get the same message while
    /// its lease holds.
    ///
    /// The messages of one transition (one [`PendingMessage::seq`]) are
    /// leased whole or not at all, so that a sink gets each transition in one
    /// delivery; a transition with more than `limit` messages is leased whole
    /// when it comes first in a claim (it could never leave otherwise). Sagas
    /// take turns oldest first. A dead message no longer holds back its saga's
    /// later messages.
    fn claim_messages(
        &self,
        limit: usize,
        lease: Duration,
    ) -> impl Future<Output = Result<ClaimedMessages, StoreError>> + Send;

    /// Records what became of messages leased under `token`, in one
    /// transaction. A settlement for a message no longer leased under `token`
    /// (its lease passed and another relay took it) changes nothing.
    fn settle_messages(
        &self,
        token: u64,
        settlements: Vec<Settlement>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The stored messages that match `filter`, in saga and message order.
    fn messages(
        &self,
        filter: MessageFilter,
    ) -> impl Future<Output = Result<Vec<StoredMessage>, StoreError>> + Send;

    /// Sends a dead message again: it becomes `Pending` with its attempts
    /// reset. Answers `false` if there is no dead message with this id.
    fn resend(&self, id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// A failed delivery: the sink did not acknowledge the messages. Names the
/// broker and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkError {
    message: String,
}

impl SinkError {
    /// An error with this message; say which broker and what is wrong.
    pub fn new(message: impl Into<String>) -> Self {
        SinkError {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SinkError {}

/// Where messages go: a broker, or anything that acknowledges.
///
/// `deliver` gets the messages of one saga transition, in order (one or more,
/// possibly to several destinations). `Ok` means the sink has them all; a
/// sink that can writes them all or none (Redis: one `MULTI`/`EXEC`), so that
/// a failed delivery is retried whole. Delivery is at least once: after a crash
/// the same messages, with the same ids, may come again.
pub trait Sink: Send + Sync + 'static {
    /// Delivers `messages`; answers once the broker has acknowledged them.
    fn deliver(&self, messages: &[Message]) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// Why a message could not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// Not called while a step (or compensation) of a saga runs: from a step
    /// function called directly, or from a task the step spawned.
    NotInStep,
    /// The saga runs in memory on a runner without a sink, so the message
    /// would have nowhere to go. Give the runner one
    /// ([`Runner::with_sink`](crate::Runner::with_sink)) or run the saga on a
    /// durable executor.
    NoOutbox {
        /// The saga's name.
        saga: &'static str,
    },
    /// Sent from a TCC step's confirm, which runs after the saga's decision to
    /// commit, with no transition left to commit a message with: send it
    /// from the try (it goes out with the try's success), or from a step
    /// after the pivot.
    InConfirm {
        /// The step whose confirm sent it.
        step: &'static str,
    },
    /// The message could not be serialized to JSON.
    Serialize {
        /// Where it was going.
        destination: String,
        /// serde's error.
        error: String,
    },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotInStep => f.write_str(
                "a message can be sent only from inside a running step of a saga \
                 (`StepContext::send`), or from the saga body (`sagaflow::send!`)",
            ),
            SendError::NoOutbox { saga } => write!(
                f,
                "saga `{saga}` sends a message but runs in memory without a sink: give the \
                 runner one (`Runner::with_sink`), or run it on a durable executor, whose \
                 outbox keeps messages until a relay delivers them"
            ),
            SendError::InConfirm { step } => write!(
                f,
                "the confirm of `{step}` cannot send a message: it runs after the saga decided                  to commit, with no transition left to commit the message with; send it from                  the try, or from a step after the pivot"
            ),
            SendError::Serialize { destination, error } => {
                write!(
                    f,
                    "a message to `{destination}` cannot be serialized: {error}"
                )
            }
        }
    }
}

impl std::error::Error for SendError {}
