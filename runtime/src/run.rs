//! The driver of one saga run: attempts, retries, timeouts, caught panics,
//! compensations, and the record of all of it.
//!
//! The generated state machine calls [`Run::step`] for each step and
//! [`Run::compensate`] for each compensation. The success path is kept free of
//! allocation, locks and timers: a step without a timeout gets no timer, and the
//! retry and compensation bookkeeping is touched only when something fails.

use core::fmt::Display;
use core::future::Future;
use core::panic::AssertUnwindSafe;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use crate::context::{Phase, SagaId, StepContext};
use crate::durable::journal::{Fault, Journal, Keep, NoJournal, Replayed};
use crate::durable::{Entry, SagaStatus, StoreError};
use crate::error::{FailedCompensation, SagaError, StepFailure};
use crate::failed_run::{FailedRun, Pending, Short};
use crate::hooks::Hooks;
use crate::outbox::sending::Outgoing;
use crate::report::{Outcome, RunOutcome, RunReport, StepRecord};
use crate::step::Step;
use crate::{RetryPolicy, StepInfo, StepKind};

mod attempts;
mod branch;
mod durable;
mod failure;
mod group;
mod limit;
mod report;
mod span;
mod tcc;
mod undo;

pub(crate) use report::rebuild;
pub(crate) use span::InSpan;
use span::SpanRef;

use attempts::*;
pub use group::{Group, JoinAll, Joinable, Joined, Member, Undo};
pub use limit::{Limit, Timed, Untimed};
pub use tcc::{Both, Confirmed};

/// The error text of a compensation that failed; built only on failure.
#[doc(hidden)]
#[derive(Debug)]
pub struct CompensationError(String);

/// What a compensation may return: `Result<(), E>` with `E: Display`.
#[diagnostic::on_unimplemented(
    message = "a compensation must return `Result<(), E>` with `E: Display`, not `{Self}`",
    label = "this compensation's result does not fit",
    note = "a compensation is an `async fn` called with its step's arguments and a reference to the step's output, returning `Result<(), E>`"
)]
pub trait CompensationResult {
    /// Turns the result into what the runtime records.
    #[doc(hidden)]
    fn into_compensation_result(self) -> Result<(), CompensationError>;
}

impl<E: Display> CompensationResult for Result<(), E> {
    #[inline]
    fn into_compensation_result(self) -> Result<(), CompensationError> {
        self.map_err(|e| CompensationError(text_of(&e)))
    }
}

/// The state of one saga run that is not the saga's own data: who to tell,
/// what happened so far, and how the run failed if it did.
#[doc(hidden)]
pub struct Run<'h, H, J = NoJournal> {
    hooks: &'h H,
    /// Where transitions are recorded; [`NoJournal`] in memory.
    pub(crate) journal: J,
    pub(crate) saga: &'static str,
    id: SagaId,
    /// The saga's span, kept by whoever made the run (see `span`).
    pub(crate) span: SpanRef<'h>,
    /// Whether to read the clock for each step. Off in the default configuration:
    /// on this kind of machine one clock read costs about as much as the whole
    /// per-step budget, and without hooks or `run_reported` nobody sees a duration.
    timed: bool,
    /// Whether anyone will read the report of a committed run.
    reported: bool,
    /// Whether the caller takes the report ([`take_report`](Self::take_report)):
    /// otherwise a failed run's report goes into its error without a copy.
    keeps_report: bool,
    started: Option<Instant>,
    /// The saga's steps, to write the records of plain successes at the end.
    pub(crate) steps: &'static [StepInfo],
    /// Forward steps that succeeded so far (they run in order, along the arms
    /// taken).
    succeeded: u32,
    /// The steps of the arms a branch did not take, which the report's
    /// rebuilt records pass over. Boxed: a saga without branches carries a
    /// pointer for it, and only a branch with steps in another arm fills it.
    #[allow(clippy::box_collection)]
    skipped: Option<Box<Vec<core::ops::Range<u32>>>>,
    /// Whether the saga decided to commit: its TCC steps are confirmed, and
    /// none is cancelled from here on.
    decided: bool,
    /// What cannot be rebuilt at the end: every forward step that was retried, timed
    /// or failed, and every compensation. A step that succeeded at its first attempt
    /// in an untimed run is not pushed, so the default success path never allocates.
    records: Vec<StepRecord>,
    /// What compensating leaves: boxed, made at the first failure, so that a
    /// committed run carries a pointer for it; the saga's error then owns it.
    failure: Option<Box<FailedRun>>,
    /// The report kept for a caller that takes it; boxed for the same reason.
    report: Option<Box<RunReport>>,
    /// What the saga sent and has not committed yet, and in memory where it
    /// goes: `None` for a run in memory without a sink, where sending is an
    /// error. One pointer, so that a run that sends nothing pays for one.
    pub(crate) outgoing: Option<Arc<Outgoing>>,
}

impl<'h, H: Hooks> Run<'h, H, NoJournal> {
    pub(crate) fn new(
        hooks: &'h H,
        saga: &'static str,
        id: SagaId,
        steps: &'static [StepInfo],
        span: &'h tracing::Span,
        timed: bool,
        reported: bool,
    ) -> Self {
        Run::with_journal(hooks, NoJournal, saga, id, steps, span, timed, reported)
    }
}

impl<'h, H: Hooks, J: Journal> Run<'h, H, J> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn with_journal(
        hooks: &'h H,
        journal: J,
        saga: &'static str,
        id: SagaId,
        steps: &'static [StepInfo],
        span: &'h tracing::Span,
        timed: bool,
        reported: bool,
    ) -> Self {
        hooks.saga_started(saga, id);
        Run {
            hooks,
            journal,
            saga,
            id,
            span: SpanRef(span),
            timed,
            reported: reported || !H::__SILENT,
            keeps_report: reported,
            started: if timed { Some(Instant::now()) } else { None },
            steps,
            succeeded: 0,
            skipped: None,
            decided: false,
            records: Vec::new(),
            failure: None,
            report: None,
            outgoing: None,
        }
    }

    #[inline]
    fn context(&self, step: &'static str, index: u32, attempt: u32, phase: Phase) -> StepContext {
        StepContext {
            saga: self.saga,
            saga_id: self.id,
            step,
            index,
            attempt,
            phase,
        }
    }

    #[inline]
    fn now(&self) -> Option<Instant> {
        if self.timed {
            Some(Instant::now())
        } else {
            None
        }
    }

    #[inline]
    fn span_for(
        &self,
        phase: Phase,
        step: &'static str,
        function: &'static str,
        attempt: u32,
    ) -> Option<tracing::Span> {
        // Step spans are children of the saga span: when nobody listens to that,
        // they are skipped altogether rather than created disabled. The test
        // is inline, the making out of line: rustc did not inline the whole
        // (four span macros), which cost a call per step when nobody listens.
        if self.span.is_disabled() {
            return None;
        }
        Some(self.make_span(phase, step, function, attempt))
    }

    /// A step's span, as a child of the saga's enabled span.
    #[inline(never)]
    fn make_span(
        &self,
        phase: Phase,
        step: &'static str,
        function: &'static str,
        attempt: u32,
    ) -> tracing::Span {
        match phase {
            Phase::Forward => tracing::info_span!(parent: &self.span, "step", step, attempt),
            Phase::Compensation => {
                tracing::info_span!(parent: &self.span, "compensation", step, compensation = function, attempt)
            }
            Phase::Confirm => {
                tracing::info_span!(parent: &self.span, "confirm", step, confirm = function, attempt)
            }
            Phase::Cancel => {
                tracing::info_span!(parent: &self.span, "cancel", step, cancel = function, attempt)
            }
        }
    }

    /// A message of the body (`sagaflow::send!`), sent at the saga's commit.
    // Here, not beside the rest of the outbox's run code: a bound's note
    // names this impl's path, which must read the same in every build.
    pub fn send_at_commit<T: crate::outbox::in_run::Sendable + ?Sized>(
        &self,
        destination: &str,
        key: Option<String>,
        message: &T,
    ) {
        if let Some(outgoing) = &self.outgoing {
            outgoing.send_at_commit(destination, key, message);
        }
    }

    /// Runs step `S` (at position `index`) to success, or to failure after its retries.
    ///
    /// `call` builds a fresh future for each attempt: the step's arguments are
    /// evaluated again each time.
    #[inline]
    pub async fn step<S, F, Fut>(
        &mut self,
        _step: core::marker::PhantomData<S>,
        index: u32,
        mut call: F,
    ) -> Result<S::Output, StepFailure<S::Error>>
    where
        S: Step,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<S::Output, S::Error>>,
        J: Keep<S::Output>,
    {
        if J::DURABLE {
            // Boxed: an in-memory saga's futures then carry a pointer for this
            // branch, not its whole state. A durable step waits on the disk anyway.
            return Box::pin(self.step_durable::<S, F, Fut>(index, call)).await;
        }
        let started = self.now();
        // The first attempt takes a short path: no retry state, no timer unless
        // the step has a timeout, no span unless someone listens. Everything else
        // lives in `step_attempts`, entered only once an attempt has failed (or
        // under the test kit), and boxed there: the saga's future then carries a
        // pointer for the retry machinery instead of its state.
        // A run that may send takes the long way, which hands a step's
        // messages over with its outcome.
        let first = if !J::FAULTS && self.outgoing.is_none() {
            let cx = self.context(S::INFO.name(), index, 1, Phase::Forward);
            if !H::__SILENT {
                self.hooks.step_started(&cx);
            }
            let guarded = Guarded {
                future: call(),
                cx: &cx,
            };
            // The timer, if any, is the step's limit type's (see `limit`): a
            // step without a timeout has no room for one in its future. The
            // timeout is read again after the await, not kept across it.
            let limited = <S::__SagaflowLimit as Limit>::limit(guarded, S::INFO.timeout());
            // The span is made in the branch that awaits in it, and moved
            // there: a `match` on an `Option<Span>` local kept the local, 40
            // bytes, across the await of the branch without one.
            let result = if self.span.is_disabled() {
                limited.await
            } else {
                let span = self.span_for(Phase::Forward, S::INFO.name(), "", 1);
                limited
                    .instrument(span.unwrap_or_else(tracing::Span::none))
                    .await
            };
            let outcome = match result {
                Some(outcome) => settle(outcome),
                None => Err(StepFailure::TimedOut {
                    after: S::INFO.timeout().unwrap_or_default(),
                }),
            };
            match outcome {
                Ok(output) => {
                    self.record_success::<S>(&cx, index, 1, started, None);
                    return Ok(output);
                }
                Err(failure) => {
                    // No retry in memory: the step failed for good, which
                    // needs none of the retry loop's state.
                    if !J::DURABLE && !S::INFO.retry().allows_attempt_after(1) {
                        self.step_failed_in_memory::<S>(index, &failure, started);
                        return Err(failure);
                    }
                    Some(failure)
                }
            }
        } else {
            None
        };
        Box::pin(self.step_attempts::<S, F, Fut>(index, call, (1, 0), first, started)).await
    }

    #[inline]
    fn record_success<S: Step>(
        &mut self,
        cx: &StepContext,
        index: u32,
        attempts: u32,
        started: Option<Instant>,
        last_error: Option<String>,
    ) {
        let duration = started.map(|s| s.elapsed());
        if !H::__SILENT {
            self.hooks.step_succeeded(cx, duration.unwrap_or_default());
        }
        self.succeeded += 1;
        if attempts == 1 && duration.is_none() {
            return;
        }
        self.push_success::<S>(index, attempts, duration, last_error);
    }

    /// The record of a step that was retried or timed: kept out of line, since
    /// the default success path never gets here.
    #[inline(never)]
    fn push_success<S: Step>(
        &mut self,
        index: u32,
        attempts: u32,
        duration: Option<Duration>,
        last_error: Option<String>,
    ) {
        self.push_record(StepRecord {
            group: None,
            step: S::INFO.name(),
            function: S::INFO.name(),
            index,
            phase: Phase::Forward,
            outcome: Outcome::Succeeded,
            attempts,
            duration,
            error: last_error,
        });
    }

    /// Undoes step `S` (at position `index`) if it is compensatable, retrying its
    /// compensation by policy; a compensation that still fails is recorded.
    pub async fn compensate<S, F, Fut>(
        &mut self,
        step: core::marker::PhantomData<S>,
        index: u32,
        call: F,
    ) where
        S: Step,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), CompensationError>>,
    {
        // Not boxed here: the generated backward loop is boxed once per
        // failed run (`__private::compensating`), which keeps this state out
        // of every saga's future at one allocation per saga, not per step.
        let (true, Some(function)) = (S::INFO.kind().is_undone(), S::INFO.compensation()) else {
            return;
        };
        let mut call = call;
        // In memory, with nothing to send or inject, the first attempt takes a
        // short path, as a step's does: no journal, no outbox, no retry state.
        // A TCC step's cancel takes the long one, which knows its phase and
        // that a saga that decided to commit cancels nothing.
        let first = if S::INFO.kind() == StepKind::Compensatable
            && !J::DURABLE
            && !J::FAULTS
            && self.outgoing.is_none()
        {
            let name = S::INFO.name();
            let started = self.now();
            let cx = self.context(name, index, 1, Phase::Compensation);
            if !H::__SILENT {
                self.hooks.compensation_started(&cx);
            }
            // Asked here, where it folds into one test: the span's builder is
            // kept out of line.
            let span = if self.span.is_disabled() {
                None
            } else {
                self.span_for(Phase::Compensation, name, function, 1)
            };
            // Awaited in place without a timeout, as a step's first attempt
            // is: `attempt`'s future, with the room of a timer's await, would
            // be built, moved in and polled as a layer of its own for each
            // compensation.
            let outcome = match S::INFO.compensation_timeout() {
                None => {
                    let guarded = Guarded {
                        future: call(),
                        cx: &cx,
                    };
                    match span {
                        None => settle(guarded.await),
                        Some(span) => settle(guarded.instrument(span).await),
                    }
                }
                timeout => attempt(call(), &cx, timeout, span).await,
            };
            match outcome {
                Ok(()) => {
                    let duration = started.map(|s| s.elapsed());
                    if !H::__SILENT {
                        self.hooks
                            .compensation_succeeded(&cx, duration.unwrap_or_default());
                    }
                    self.record_undone(
                        name,
                        function,
                        index,
                        1,
                        duration,
                        None,
                        Phase::Compensation,
                    );
                    return;
                }
                Err(failure) => Some((failure, started)),
            }
        } else {
            None
        };
        self.compensate_step(step, index, call, first).await;
    }

    /// Every attempt of step `S`'s compensation, by its policy, on a shared
    /// borrow, so that a group's members are undone at once: told as it goes,
    /// recorded afterwards by [`undone`](Self::undone).
    pub async fn undo<S, F, Fut>(
        &self,
        step: core::marker::PhantomData<S>,
        index: u32,
        call: F,
    ) -> Undo
    where
        S: Step,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), CompensationError>>,
    {
        self.undo_after(step, index, call, None).await
    }

    /// Records what undoing step `S` (at `index`) came to.
    pub fn undone<S: Step>(&mut self, index: u32, undo: Undo) {
        let (name, function) = (S::INFO.name(), S::INFO.compensation().unwrap_or_default());
        let phase = if S::INFO.kind() == StepKind::Tcc {
            Phase::Cancel
        } else {
            Phase::Compensation
        };
        match undo {
            Undo::Skipped => {}
            Undo::Halt(e) => self.halt(e),
            Undo::Undone {
                attempts,
                duration,
                last_error,
            } => self.record_undone(name, function, index, attempts, duration, last_error, phase),
            Undo::Failed {
                attempts,
                outcome,
                duration,
                error,
            } => {
                // A failure replayed from the journal was recorded by the run
                // that saw it; only the error remembers it.
                if let Some(outcome) = outcome {
                    self.push_record(StepRecord {
                        group: None,
                        step: name,
                        function,
                        index,
                        phase,
                        outcome,
                        attempts,
                        duration,
                        error: Some(error.clone()),
                    });
                }
                self.failure().failed.push(FailedCompensation {
                    step: name,
                    compensation: function,
                    error,
                    attempts,
                });
            }
        }
    }

    /// Ends a run whose steps all succeeded.
    #[inline]
    pub async fn committed<T>(&mut self, output: &T)
    where
        J: Keep<T>,
    {
        if J::DURABLE && !self.journal.halted() {
            // An output that cannot be encoded is not worth failing a committed
            // saga over: its steps are done. It is recorded without its output.
            let entry = Entry::Finished {
                status: SagaStatus::Committed,
                output: J::encode(output).ok(),
            };
            self.journal.defer(entry);
            let messages = self
                .outgoing
                .as_ref()
                .map(|o| o.take_commit())
                .unwrap_or_default();
            if !messages.is_empty() {
                self.journal.defer(Entry::Sent { messages });
            }
            // Boxed for the same reason as a durable step.
            if let Err(e) = Box::pin(self.write_deferred()).await {
                self.halt(e);
            }
        }
        self.committed_in_memory();
    }
}
