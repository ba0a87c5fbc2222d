//! The outbox's rows as both stores read them, and the one rule both apply
//! when a relay claims messages: which pending messages may be leased.

use crate::SagaId;
use crate::outbox::{Message, PendingMessage};

/// A pending message as a claim reads it, with whether it may be leased now
/// (past its backoff and not leased to anyone, as the store's clock says).
pub(crate) struct Candidate {
    pub(crate) message: PendingMessage,
    pub(crate) claimable: bool,
}

/// Picks what a claim leases, from every pending message of some sagas:
/// `sagas` in the order their turn comes, each with its pending messages in
/// (seq, n) order.
///
/// A saga's messages are taken from its earliest pending one on, and stop at
/// the first that may not be leased now (in backoff, or leased to another
/// relay): a message is never leased while an earlier pending message of its
/// saga is not leased with it. The messages of one transition (one seq) are
/// taken whole or not at all, so that a sink gets each transition in one
/// delivery; they count against `limit`, which only the first transition of a
/// claim may pass (a transition larger than `limit` would never leave
/// otherwise).
pub(crate) fn pick(sagas: Vec<Vec<Candidate>>, limit: usize) -> Vec<PendingMessage> {
    let mut picked: Vec<PendingMessage> = Vec::new();
    for saga in sagas {
        let mut candidates = saga.into_iter().peekable();
        while let Some(first) = candidates.next() {
            if !first.claimable {
                break;
            }
            let seq = first.message.seq;
            let mut transition = vec![first.message];
            let mut whole = true;
            while let Some(next) = candidates.next_if(|c| c.message.seq == seq) {
                whole &= next.claimable;
                transition.push(next.message);
            }
            let room = limit.saturating_sub(picked.len());
            if !whole || (transition.len() > room && !picked.is_empty()) {
                break;
            }
            picked.extend(transition);
            if picked.len() >= limit {
                return picked;
            }
        }
    }
    picked
}

/// Builds a pending message from its columns.
#[allow(clippy::too_many_arguments)] // one per column
pub(crate) fn pending(
    saga_id: SagaId,
    seq: u64,
    id: String,
    destination: String,
    key: Option<String>,
    payload: Vec<u8>,
    created_ms: u64,
    attempts: u32,
) -> PendingMessage {
    PendingMessage {
        saga_id,
        seq,
        message: Message {
            id,
            destination,
            key,
            payload,
            created_ms,
        },
        attempts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(saga: u64, seq: u64, n: u32, claimable: bool) -> Candidate {
        let saga_id = SagaId::from_u128(u128::from(saga));
        Candidate {
            message: pending(
                saga_id,
                seq,
                format!("{saga_id}-{seq}-{n}"),
                "d".into(),
                None,
                b"{}".to_vec(),
                0,
                0,
            ),
            claimable,
        }
    }

    fn ids(picked: &[PendingMessage]) -> Vec<(u64, u64)> {
        picked
            .iter()
            .map(|m| (m.saga_id.as_u128() as u64, m.seq))
            .collect()
    }

    #[test]
    fn a_saga_stops_at_its_first_message_that_may_not_leave() {
        let sagas = vec![
            vec![
                candidate(1, 3, 0, true),
                candidate(1, 5, 0, false),
                candidate(1, 7, 0, true),
            ],
            vec![candidate(2, 1, 0, false), candidate(2, 2, 0, true)],
            vec![candidate(3, 4, 0, true)],
        ];
        assert_eq!(ids(&pick(sagas, 10)), [(1, 3), (3, 4)]);
    }

    #[test]
    fn transitions_are_whole_and_count_against_the_limit() {
        let sagas = vec![
            vec![
                candidate(1, 3, 0, true),
                candidate(1, 3, 1, true),
                candidate(1, 4, 0, true),
                candidate(1, 4, 1, true),
            ],
            vec![candidate(2, 1, 0, true)],
        ];
        // Three fit: the second transition of saga 1 does not, so saga 1
        // stops there, and saga 2's one message fills the room.
        assert_eq!(ids(&pick(sagas, 3)), [(1, 3), (1, 3), (2, 1)]);
        // A transition larger than the limit is taken whole when first.
        let big = vec![vec![
            candidate(1, 3, 0, true),
            candidate(1, 3, 1, true),
            candidate(1, 3, 2, true),
        ]];
        assert_eq!(pick(big, 2).len(), 3);
        // A transition with a message that may not leave is not split.
        let split = vec![vec![candidate(1, 3, 0, true), candidate(1, 3, 1, false)]];
        assert!(pick(split, 5).is_empty());
    }
}
