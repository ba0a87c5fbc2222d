//! Concurrent steps: the members of a `sagaflow::join!` group.
//!
//! ```text
//! let (flight, hotel) = sagaflow::join!(book_flight(airline, &trip), book_hotel(hotels, &trip))?;
//! ```
//! becomes
//! ```text
//! run.group_started(&[(0, book_flight), (1, book_hotel)]).await;   // durable: one commit of intents
//! let group = Group::new();
//! let (m0, m1) = JoinAll((run.member(book_flight, 0, &group, ..),
//!                         run.member(book_hotel, 1, &group, ..))).await;
//! let (flight, hotel) = match (m0, m1) {
//!     (Member::Plain(flight), Member::Plain(hotel)) => { run.plain_succeeded(2); (flight, hotel) }
//!     (m0, m1) => (run.settle(0, m0), run.settle(1, m1)),   // then turn back on a failure
//! };
//! ```
//! The members are polled on the saga's own task, every one at every wake, so
//! nothing is spawned and nothing is allocated per member. A member runs on a
//! shared borrow of the [`Run`]: it tells the hooks and writes the journal as it
//! goes, and leaves what the run records (report rows, the failure) in its
//! [`Member`], which [`Run::settle`] takes once every member has finished.
//! When a member fails for good, the [`Group`] knows it: an attempt in flight
//! elsewhere runs to its end, but no sibling starts another.

use core::future::Future;
use core::marker::PhantomData;
use core::pin::Pin;
use core::sync::atomic::{AtomicU32, Ordering};
use core::task::{Context, Poll};
use core::time::Duration;
use std::time::Instant;

use super::{Run, halted, outcome_of};
use crate::context::Phase;
use crate::durable::journal::{Journal, Keep, Replayed};
use crate::durable::{Entry, StoreError};
use crate::error::StepFailure;
use crate::hooks::Hooks;
use crate::report::Outcome;
use crate::step::Step;

mod all;
mod fast;
mod first;
mod member;
mod overlap;
mod persist;
mod retry;

pub use all::JoinAll;
pub use fast::Joinable;
pub use member::Member;
use member::Tally;

/// What the members of one group share while they run: how many of them have
/// failed for good. An atomic, though the members run on one task, so that a
/// durable saga's future stays `Send`; relaxed, as that task orders them.
#[doc(hidden)]
#[derive(Default)]
pub struct Group {
    failures: AtomicU32,
}

impl Group {
    /// A group none of whose members has failed.
    #[inline]
    pub fn new() -> Self {
        Group::default()
    }

    /// Whether a member has failed for good: no member starts another attempt.
    #[inline]
    fn failed(&self) -> bool {
        self.failures.load(Ordering::Relaxed) > 0
    }

    /// Counts a member's failure for good; its rank among the group's
    /// failures, 0 for the first.
    fn fail(&self) -> u32 {
        self.failures.fetch_add(1, Ordering::Relaxed)
    }

    /// Waits `delay`, or less if a member fails for good meanwhile: whether the
    /// wait went to its end.
    async fn backoff(&self, delay: Duration) -> bool {
        let mut sleep = core::pin::pin!(tokio::time::sleep(delay));
        core::future::poll_fn(|cx| {
            if self.failed() {
                return Poll::Ready(false);
            }
            sleep.as_mut().poll(cx).map(|()| true)
        })
        .await
    }
}

/// Asks the task to poll the group again: the member that has just failed for
/// good may have been polled after a sibling waiting in its backoff, which must
/// see the failure without waiting for its timer.
async fn wake_siblings() {
    core::future::poll_fn(|cx| {
        cx.waker().wake_by_ref();
        Poll::Ready(())
    })
    .await;
}

/// Why a member stopped the whole run.
enum Stop {
    /// The store failed.
    Halt(StoreError),
    /// The journal cannot be resumed by this code.
    Refuse(String),
}

pin_project_lite::pin_project! {
    /// A member's future and, once it has finished, its output.
    #[doc(hidden)]
    pub struct Joined<F: Future> {
        #[pin]
        future: F,
        output: Option<F::Output>,
    }
}

impl<F: Future> Joined<F> {
    /// Not polled yet.
    #[inline]
    pub fn new(future: F) -> Self {
        Joined {
            future,
            output: None,
        }
    }
}

impl<F: Future> Joinable for Joined<F> {
    type Output = F::Output;

    #[inline]
    fn poll_done(self: Pin<&mut Self>, cx: &mut Context<'_>) -> bool {
        let this = self.project();
        if this.output.is_some() {
            return true;
        }
        match this.future.poll(cx) {
            Poll::Ready(output) => {
                *this.output = Some(output);
                true
            }
            Poll::Pending => false,
        }
    }

    #[inline]
    fn take(self: Pin<&mut Self>) -> F::Output {
        match self.project().output.take() {
            Some(output) => output,
            None => unreachable!("a group member's output is taken once, after it finished"),
        }
    }
}

/// What undoing one step came to, for [`Run::undone`].
#[doc(hidden)]
pub enum Undo {
    /// Nothing to undo: not compensatable, or the store had failed.
    Skipped,
    Undone {
        attempts: u32,
        duration: Option<Duration>,
        last_error: Option<String>,
    },
    Failed {
        attempts: u32,
        /// `None` when replayed from the journal.
        outcome: Option<Outcome>,
        duration: Option<Duration>,
        error: String,
    },
    /// The store failed.
    Halt(StoreError),
}

impl<'h, H: Hooks, J: Journal> Run<'h, H, J> {
    /// Before a group runs in a durable saga: one commit for the intents of
    /// every member that has not finished before a restart (with the previous
    /// step's deferred output), so that no member is polled before all of
    /// them are known to have started. `members` are the members' positions.
    pub async fn group_started(&mut self, members: &[u32]) {
        if !J::DURABLE || self.journal.halted() {
            return;
        }
        let mut entries: Vec<Entry> = self.journal.take_deferred().into_iter().collect();
        for &index in members {
            if let Replayed::Run { next_attempt, .. } = self.journal.replayed(index, false) {
                entries.push(Entry::StepStarted {
                    index,
                    attempt: next_attempt,
                });
            }
        }
        if entries.is_empty() {
            return;
        }
        if let Err(e) = self.journal.record_all(entries).await {
            self.halt(e);
        }
    }

    /// Member `S` of `group` (at position `index`), to poll with its
    /// siblings until it has succeeded, or failed after its retries or once a
    /// sibling has failed for good. Each attempt's intent is durable before it
    /// starts (the first one's by [`group_started`](Self::group_started)), and
    /// its outcome right after it.
    ///
    /// In memory, the first attempt takes the short path a step in sequence
    /// takes (`Run::step`), polled by the member itself; the retry machinery
    /// is boxed, entered only once that attempt has failed, so that a
    /// member's future carries a pointer for it instead of its state.
    /// Durable runs, the test kit and runs that may send take the long way.
    #[inline]
    pub fn member<'r, S, F, Fut>(
        &'r self,
        _step: PhantomData<S>,
        index: u32,
        group: &'r Group,
        call: F,
    ) -> impl Joinable<Output = Member<S::Output, S::Error>>
    where
        S: Step,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<S::Output, S::Error>>,
        J: Keep<S::Output>,
    {
        fast::MemberFuture::<'r, 'h, H, J, S, F, Fut, _, _, _, _>::new(
            self,
            group,
            index,
            call,
            |run: &'r Self, call, cx, span, started| {
                run.decorated_first::<S, F, Fut>(call, cx, span, started)
            },
            |run: &'r Self, index, group: &'r Group, call, first, started| {
                Box::pin(run.member_attempts::<S, F, Fut>(index, group, call, first, started))
            },
        )
    }

    /// Every attempt of member `S` but an in-memory first one that succeeded:
    /// `first` is the failure of the first attempt, if it was made.
    async fn member_attempts<S, F, Fut>(
        &self,
        index: u32,
        group: &Group,
        mut call: F,
        mut first: Option<StepFailure<S::Error>>,
        started: Option<Instant>,
    ) -> Tally<S::Output, S::Error>
    where
        S: Step,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<S::Output, S::Error>>,
        J: Keep<S::Output>,
    {
        let name = S::INFO.name();
        let policy = S::INFO.retry();
        let mut member = Tally::new(started);
        let (mut attempt_no, mut tries) = if J::DURABLE {
            match self.member_resumed::<S>(index, group, &mut member) {
                Some(resumed) => resumed,
                None => return member,
            }
        } else {
            (1, 0)
        };
        // The first attempt's intent was written with the group's.
        let mut intent_written = true;
        loop {
            if J::DURABLE && !intent_written {
                let entry = Entry::StepStarted {
                    index,
                    attempt: attempt_no,
                };
                if let Err(e) = self.journal.record(entry).await {
                    return self.member_stopped(member, group, Stop::Halt(e)).await;
                }
            }
            intent_written = false;
            tries = tries.saturating_add(1);
            member.attempts = attempt_no;
            let cx = self.context(name, index, attempt_no, Phase::Forward);
            let outcome = match first.take() {
                // The first attempt, made on the short path, failed.
                Some(failure) => Err(failure),
                None => self.member_attempt::<S, F, Fut>(&mut call, cx, group).await,
            };
            let failure = match outcome {
                Ok(output) => match self.persist_output::<S>(index, &output).await {
                    Ok(()) => {
                        let duration = member.started.map(|s| s.elapsed());
                        self.hooks.step_succeeded(&cx, duration.unwrap_or_default());
                        member.result = Some(Ok(output));
                        return member;
                    }
                    Err(Ok(failure)) => failure,
                    Err(Err(e)) => return self.member_stopped(member, group, Stop::Halt(e)).await,
                },
                Err(failure) => failure,
            };
            if !group.failed() && policy.allows_attempt_after(tries) {
                let text = failure.to_string();
                let delay = self.step_will_retry(&cx, policy, tries, &text);
                member.last_error = Some(text);
                if group.backoff(delay).await {
                    attempt_no = attempt_no.saturating_add(1);
                    continue;
                }
            }
            return self.member_failed(&cx, member, group, failure).await;
        }
    }

    /// Counts `members` that succeeded on the default path (a
    /// [`Member::Plain`]: one attempt, in a run that keeps no times), as
    /// [`settle`](Self::settle) would one by one: nothing else is recorded.
    #[inline]
    pub fn plain_succeeded(&mut self, members: u32) {
        self.succeeded += members;
    }

    /// Records how member `S` (at `index`) ended, once the whole group has:
    /// its output, or its failure with its rank among the group's failures.
    #[inline]
    pub fn settle<S: Step>(
        &mut self,
        index: u32,
        member: Member<S::Output, S::Error>,
    ) -> Result<S::Output, (u32, StepFailure<S::Error>)> {
        // The default success path: one attempt, untimed, nothing to report.
        // Not a `match` with an `other` arm: that moved the whole member into
        // a copy of its own, before the test, on every path.
        if let Member::Plain(output) = member {
            self.succeeded += 1;
            return Ok(output);
        }
        self.settle_other::<S>(index, member)
    }

    /// [`settle`](Self::settle) but for the default success path.
    #[inline(never)]
    fn settle_other<S: Step>(
        &mut self,
        index: u32,
        member: Member<S::Output, S::Error>,
    ) -> Result<S::Output, (u32, StepFailure<S::Error>)> {
        let Tally {
            result,
            attempts,
            started,
            last_error,
            rank,
            replayed,
            stop,
        } = match member {
            Member::Plain(output) => Tally {
                result: Some(Ok(output)),
                attempts: 1,
                ..Tally::new(None)
            },
            Member::Timed(output, started) => Tally {
                result: Some(Ok(output)),
                attempts: 1,
                ..Tally::new(Some(started))
            },
            Member::Other(tally) => *tally,
        };
        match stop.map(|stop| *stop) {
            Some(Stop::Halt(e)) => self.halt(e),
            Some(Stop::Refuse(reason)) => self.refuse(reason),
            None => {}
        }
        match result.unwrap_or_else(|| Err(halted())) {
            Ok(output) => {
                self.succeeded += 1;
                let duration = started.filter(|_| !replayed).map(|s| s.elapsed());
                if !replayed && (attempts != 1 || duration.is_some()) {
                    self.push_success::<S>(index, attempts, duration, last_error);
                }
                Ok(output)
            }
            Err(failure) => {
                if matches!(failure, StepFailure::Recovered { .. }) && !replayed {
                    // Stopped by the store: nothing of it to report.
                    return Err((rank, failure));
                }
                let first = self.failure.as_ref().map(|f| f.step);
                let text = last_error.unwrap_or_else(|| failure.to_string());
                let started = started.filter(|_| !replayed);
                self.push_failure(
                    S::INFO.name(),
                    index,
                    attempts,
                    outcome_of(&failure),
                    started,
                    text,
                );
                // The saga's failed step is the group's first to fail.
                if rank != 0
                    && let (Some(step), Some(failure)) = (first, self.failure.as_mut())
                    && !step.is_empty()
                {
                    failure.step = step;
                }
                Err((rank, failure))
            }
        }
    }
}
