//! What a group member's run leaves for `Run::settle`: small on the default
//! success path, the rest boxed.

use std::time::Instant;

use super::Stop;
use crate::error::StepFailure;

/// What one member's run left for [`Run::settle`](crate::__private::Run::settle).
///
/// Small, as it is moved from the member's future to `settle`: on the
/// default success path, the output and a tag. A member's result is copied
/// out of its future and into `settle` (about 8 instructions a word each
/// time), so everything off that path is behind one pointer.
#[doc(hidden)]
pub enum Member<T, E> {
    /// The first attempt succeeded, and the run keeps no times.
    Plain(T),
    /// The first attempt succeeded, in a run that keeps times: when it started.
    Timed(T, Instant),
    /// Anything else: a retried success, a failure, a replayed outcome, a stop.
    Other(Box<Tally<T, E>>),
}

impl<T, E> Member<T, E> {
    /// A member whose first attempt succeeded, which started at `started`
    /// if the run keeps times.
    #[inline]
    pub(super) fn succeeded(output: T, started: Option<Instant>) -> Self {
        match started {
            None => Member::Plain(output),
            Some(started) => Member::Timed(output, started),
        }
    }
}

/// A member's account while its attempts run (off the short path), and what
/// it leaves when it is not a plain first-attempt success.
#[doc(hidden)]
pub struct Tally<T, E> {
    /// `None` if the member never ran: the store had failed.
    pub(super) result: Option<Result<T, StepFailure<E>>>,
    pub(super) attempts: u32,
    pub(super) started: Option<Instant>,
    pub(super) last_error: Option<String>,
    /// Its rank among the group's failures for good, if it failed.
    pub(super) rank: u32,
    /// Whether the run recorded its outcome before a restart.
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

    /// The member it comes to: boxed only if it is not a first-attempt
    /// success.
    pub(super) fn into_member(self) -> Member<T, E> {
        let plain = self.stop.is_none()
            && self.attempts == 1
            && self.last_error.is_none()
            && !self.replayed;
        match self.result {
            Some(Ok(output)) if plain => Member::succeeded(output, self.started),
            result => Member::Other(Box::new(Tally { result, ..self })),
        }
    }
}
