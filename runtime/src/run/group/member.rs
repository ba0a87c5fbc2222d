//! What a group member's run leaves for `Run::settle`: small on the default
//! success path, the rest boxed.

use std::time::Instant;

use super::Stop;
use crate::error::StepFailure;

/// What one member's run left for [`Run::settle`]: its result, and, only if
/// it did not simply succeed at its first attempt, the rest of its [`Tally`].
/// Small, as it is moved from the member's future to `settle`: on the success
/// path, the output, a start time and a null pointer.
#[doc(hidden)]
pub struct Member<T, E> {
    /// `None` if the member never ran: the store had failed.
    pub(super) result: Option<Result<T, StepFailure<E>>>,
    pub(super) started: Option<Instant>,
    /// Boxed: made only off the default success path.
    pub(super) more: Option<Box<More>>,
}

/// What a member that did not simply succeed at its first attempt leaves
/// besides its result.
pub(super) struct More {
    pub(super) attempts: u32,
    pub(super) last_error: Option<String>,
    /// Its rank among the group's failures for good, if it failed.
    pub(super) rank: u32,
    /// Whether the run recorded its outcome before a restart.
    pub(super) replayed: bool,
    pub(super) stop: Option<Stop>,
}

impl<T, E> Member<T, E> {
    /// A member whose first attempt succeeded.
    #[inline]
    pub(super) fn succeeded(output: T, started: Option<Instant>) -> Self {
        Member {
            result: Some(Ok(output)),
            started,
            more: None,
        }
    }
}

/// A member's account while its attempts run (off the short path).
pub(super) struct Tally<T, E> {
    pub(super) result: Option<Result<T, StepFailure<E>>>,
    pub(super) attempts: u32,
    pub(super) started: Option<Instant>,
    pub(super) last_error: Option<String>,
    pub(super) rank: u32,
    pub(super) replayed: bool,
    pub(super) stop: Option<Box<Stop>>,
}

impl<T, E> Tally<T, E> {
    pub(super) fn new(started: Option<Instant>) -> Self {
        Tally {
            result: None,
            attempts: 0,
            started,
            last_error: None,
            rank: u32::MAX,
            replayed: false,
            stop: None,
        }
    }

    /// The member it comes to: boxed details only if it is not a plain
    /// first-attempt success.
    pub(super) fn into_member(self) -> Member<T, E> {
        let plain = self.stop.is_none()
            && self.attempts == 1
            && self.last_error.is_none()
            && !self.replayed
            && matches!(self.result, Some(Ok(_)));
        let more = if plain {
            None
        } else {
            Some(Box::new(More {
                attempts: self.attempts,
                last_error: self.last_error,
                rank: self.rank,
                replayed: self.replayed,
                stop: self.stop.map(|s| *s),
            }))
        };
        Member {
            result: self.result,
            started: self.started,
            more,
        }
    }
}
