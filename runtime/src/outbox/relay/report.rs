//! What a relay did, and what went wrong.

use core::fmt;
use std::collections::VecDeque;

use crate::SagaId;
use crate::durable::StoreError;
use crate::outbox::SinkError;

#[cfg(doc)]
use super::Relay;

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
        /// The transition (see [`PendingMessage::seq`](crate::outbox::PendingMessage::seq)).
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

    pub(super) fn push_error(&mut self, error: RelayError) {
        if self.errors.len() == Self::ERRORS_KEPT {
            self.errors.pop_front();
            self.errors_dropped += 1;
        }
        self.errors.push_back(error);
    }
}
