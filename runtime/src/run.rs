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
use crate::hooks::Hooks;
use crate::outbox::sending::Outgoing;
use crate::report::{Outcome, RunOutcome, RunReport, StepRecord};
use crate::step::Step;
use crate::{RetryPolicy, StepInfo, StepKind};

mod group;
pub use group::{Group, Joined, Member, Undo};

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
        self.map_err(|e| CompensationError(e.to_string()))
    }
}

pin_project_lite::pin_project! {
    /// Polls a step's future with its context current, and turns a panic into a value.
    struct Guarded<'c, F> {
        #[pin]
        future: F,
        // Borrowed, not owned: copying a 64-byte context into each step's future
        // costs more than the rest of a trivial step's overhead together.
        cx: &'c StepContext,
    }
}

impl<F: Future> Future for Guarded<'_, F> {
    type Output = Result<F::Output, String>;

    #[inline]
    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let future = this.future;
        // `cx` outlives the future, so the thread-local may point at it for the
        // duration of this poll instead of copying it in and out.
        let polled = StepContext::enter(this.cx, || {
            std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(task)))
        });
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

fn settle<T, E>(outcome: Result<Result<T, E>, String>) -> Result<T, StepFailure<E>> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(StepFailure::Error(error)),
        Err(message) => Err(StepFailure::Panicked { message }),
    }
}

/// One attempt: the future, guarded, under a timeout only if the step has one, in
/// a span only if someone listens.
async fn attempt<Fut, T, E>(
    future: Fut,
    cx: &StepContext,
    timeout: Option<Duration>,
    span: Option<tracing::Span>,
) -> Result<T, StepFailure<E>>
where
    Fut: Future<Output = Result<T, E>>,
{
    let guarded = Guarded { future, cx };
    let outcome = match (timeout, span) {
        (None, None) => guarded.await,
        (None, Some(span)) => guarded.instrument(span).await,
        (Some(after), span) => {
            let limited = tokio::time::timeout(after, guarded);
            let result = match span {
                None => limited.await,
                Some(span) => limited.instrument(span).await,
            };
            match result {
                Ok(outcome) => outcome,
                Err(_elapsed) => return Err(StepFailure::TimedOut { after }),
            }
        }
    };
    settle(outcome)
}

/// The wait before retry number `retry`, with equal jitter: between half of the
/// policy's [`base_delay`](RetryPolicy::base_delay) and all of it, so that sagas
/// failing together do not retry in lock step.
fn jittered_delay(policy: RetryPolicy, retry: u32) -> Duration {
    let base = policy.base_delay(retry);
    let half = base / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(fastrand::u64(0..=nanos))
}

fn outcome_of<E>(failure: &StepFailure<E>) -> Outcome {
    match failure {
        StepFailure::TimedOut { .. } => Outcome::TimedOut,
        StepFailure::Panicked { .. } => Outcome::Panicked,
        _ => Outcome::Failed,
    }
}

/// What a step returns once its saga's store has failed: nothing more runs.
fn halted<E>() -> StepFailure<E> {
    StepFailure::Recovered {
        message: "not run: the saga's store failed, so the saga stopped where it was".to_owned(),
    }
}

/// What a failed run has done about its failure so far.
#[derive(Default)]
struct Failure {
    /// The step that failed for good.
    step: &'static str,
    /// The steps undone, in the order their compensations ran.
    undone: Vec<&'static str>,
    /// The compensations that failed for good.
    failed: Vec<FailedCompensation>,
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
    pub(crate) span: tracing::Span,
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
    /// Forward steps that succeeded so far (they run in order).
    succeeded: u32,
    /// What cannot be rebuilt at the end: every forward step that was retried, timed
    /// or failed, and every compensation. A step that succeeded at its first attempt
    /// in an untimed run is not pushed, so the default success path never allocates.
    records: Vec<StepRecord>,
    /// What compensating leaves: boxed, made at the first failure, so that a
    /// committed run carries a pointer for it, not three vectors.
    failure: Option<Box<Failure>>,
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
        span: tracing::Span,
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
        span: tracing::Span,
        timed: bool,
        reported: bool,
    ) -> Self {
        hooks.saga_started(saga, id);
        Run {
            hooks,
            journal,
            saga,
            id,
            span,
            timed,
            reported: reported || !H::__SILENT,
            keeps_report: reported,
            started: if timed { Some(Instant::now()) } else { None },
            steps,
            succeeded: 0,
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
        // they are skipped altogether rather than created disabled.
        if self.span.is_disabled() {
            return None;
        }
        Some(match phase {
            Phase::Forward => tracing::info_span!(parent: &self.span, "step", step, attempt),
            Phase::Compensation => {
                tracing::info_span!(parent: &self.span, "compensation", step, compensation = function, attempt)
            }
        })
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
            let span = self.span_for(Phase::Forward, S::INFO.name(), "", 1);
            let guarded = Guarded {
                future: call(),
                cx: &cx,
            };
            // Nested matches, not one over a `(timeout, span)` pair: the pair
            // would be kept, 56 bytes of it, across the step's await.
            let outcome = match S::INFO.timeout() {
                None => match span {
                    None => settle(guarded.await),
                    Some(span) => settle(guarded.instrument(span).await),
                },
                Some(after) => {
                    let limited = tokio::time::timeout(after, guarded);
                    let result = match span {
                        None => limited.await,
                        Some(span) => limited.instrument(span).await,
                    };
                    match result {
                        Ok(outcome) => settle(outcome),
                        Err(_elapsed) => Err(StepFailure::TimedOut { after }),
                    }
                }
            };
            match outcome {
                Ok(output) => {
                    self.record_success::<S>(&cx, index, 1, started, None);
                    return Ok(output);
                }
                Err(failure) => Some(failure),
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
        self.records.push(StepRecord {
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

    /// Every attempt of a step after a failed first one, every attempt of a step
    /// with a timeout, and every attempt of a durable step; numbered from
    /// `attempt_no`, with `spent` attempts made before (by a process before a
    /// restart) counted against the retry budget. `first` is the failure of an
    /// attempt already made (number `attempt_no`), if one was.
    ///
    /// In a durable run each attempt's intent is written before the attempt
    /// starts, its output is deferred into the next commit, and a failure for
    /// good is written before the saga turns back.
    async fn step_attempts<S, F, Fut>(
        &mut self,
        index: u32,
        mut call: F,
        (mut attempt_no, spent): (u32, u32),
        first: Option<StepFailure<S::Error>>,
        started: Option<Instant>,
    ) -> Result<S::Output, StepFailure<S::Error>>
    where
        S: Step,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<S::Output, S::Error>>,
        J: Keep<S::Output>,
    {
        let name = S::INFO.name();
        let policy = S::INFO.retry();
        let mut last_error = None;
        // Attempts that count against the budget, across restarts. After a
        // restart the loop makes its first attempt before it looks at the
        // budget: the attempt a crash cut short may or may not have failed.
        let mut tries = spent.saturating_add(u32::from(first.is_some()));
        let mut pending = first;
        loop {
            if let Some(failure) = pending.take() {
                if !policy.allows_attempt_after(tries) {
                    return self
                        .step_failed::<S>(index, attempt_no, failure, started)
                        .await;
                }
                let cx = self.context(name, index, attempt_no, Phase::Forward);
                let text = failure.to_string();
                let delay = self.step_will_retry(&cx, policy, tries, &text);
                last_error = Some(text);
                tokio::time::sleep(delay).await;
                attempt_no = attempt_no.saturating_add(1);
            }
            tries = tries.saturating_add(1);
            if J::DURABLE {
                let entry = Entry::StepStarted {
                    index,
                    attempt: attempt_no,
                };
                if let Err(e) = self.write(entry).await {
                    self.halt(e);
                    return Err(halted());
                }
            }
            let cx = self.context(name, index, attempt_no, Phase::Forward);
            if let Some(outgoing) = &self.outgoing {
                outgoing.discard(index, Phase::Forward);
            }
            self.hooks.step_started(&cx);
            let span = self.span_for(Phase::Forward, name, "", attempt_no);
            let outcome = self
                .one_attempt(&mut call, cx, Phase::Forward, S::INFO.timeout(), span)
                .await;
            match outcome {
                Ok(output) => {
                    if J::DURABLE {
                        match J::encode(&output) {
                            Ok(bytes) => self.journal.defer(Entry::StepSucceeded {
                                index,
                                output: bytes,
                            }),
                            Err(message) => {
                                let failure = StepFailure::NotPersisted { message };
                                return self
                                    .step_failed::<S>(index, attempt_no, failure, started)
                                    .await;
                            }
                        }
                    }
                    if let Err(message) = self.hand_over(index, Phase::Forward).await {
                        let failure = StepFailure::NotSent { message };
                        return self
                            .step_failed::<S>(index, attempt_no, failure, started)
                            .await;
                    }
                    self.record_success::<S>(&cx, index, attempt_no, started, last_error);
                    return Ok(output);
                }
                Err(failure) => pending = Some(failure),
            }
        }
    }

    /// One attempt of a step or a compensation after the first, or under the
    /// test kit; the test kit's plan may change it.
    async fn one_attempt<F, Fut, T, E>(
        &self,
        call: &mut F,
        cx: StepContext,
        phase: Phase,
        timeout: Option<Duration>,
        span: Option<tracing::Span>,
    ) -> Result<T, StepFailure<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if J::FAULTS {
            Box::pin(self.faulty_attempt(call, cx, phase, timeout)).await
        } else {
            attempt(call(), &cx, timeout, span).await
        }
    }

    /// One attempt under the test kit's plan: a fault instead of the attempt, or
    /// the attempt run twice (the first result dropped), or the attempt as is.
    async fn faulty_attempt<F, Fut, T, E>(
        &self,
        call: &mut F,
        cx: StepContext,
        phase: Phase,
        timeout: Option<Duration>,
    ) -> Result<T, StepFailure<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let index = cx.index;
        match self.journal.fault(index, phase, cx.attempt) {
            Some(Fault::Error) => Err(StepFailure::Injected {
                message: format!("an error injected into `{}`", cx.step),
            }),
            Some(Fault::Timeout) => Err(StepFailure::TimedOut {
                after: timeout.unwrap_or_default(),
            }),
            Some(Fault::Panic) => {
                let step = cx.step;
                let panicking = core::future::poll_fn(move |_| -> Poll<Result<T, E>> {
                    panic!("a panic injected into `{step}`")
                });
                attempt(panicking, &cx, None, None).await
            }
            None => {
                if self.journal.repeats(index, phase) {
                    // At-least-once delivery: the same attempt arrives twice.
                    let _first = attempt(call(), &cx, timeout, None).await;
                }
                attempt(call(), &cx, timeout, None).await
            }
        }
    }

    /// Writes `entry`, with a deferred step outcome before it in the same commit.
    async fn write(&mut self, entry: Entry) -> Result<(), StoreError> {
        let mut entries = self.journal.take_deferred();
        if entries.is_empty() {
            self.journal.record(entry).await
        } else {
            entries.push(entry);
            self.journal.record_all(entries).await
        }
    }

    /// Writes the entries kept by `defer`, in one commit.
    async fn write_deferred(&mut self) -> Result<(), StoreError> {
        let mut entries = self.journal.take_deferred();
        match entries.len() {
            0 => Ok(()),
            1 => self.journal.record(entries.remove(0)).await,
            _ => self.journal.record_all(entries).await,
        }
    }

    fn halt(&mut self, error: StoreError) {
        if error.is_lease_lost() {
            tracing::warn!(parent: &self.span, %error, "lease lost: another worker has this saga now; this run stops here");
            self.hooks.lease_lost(self.saga, self.id, error.message());
        } else {
            tracing::error!(parent: &self.span, %error, "the saga's store failed; the saga stops here and stays for recovery");
        }
        self.journal.halt(error);
    }

    /// Takes the store error that stopped the run, if one did.
    pub(crate) fn take_halt(&mut self) -> Option<StoreError> {
        self.journal.take_halt()
    }

    /// Stops the run without writing anything, as `halt` does: what the journal
    /// holds cannot be resumed by this code.
    #[cold]
    fn refuse(&mut self, reason: String) {
        tracing::error!(parent: &self.span, %reason, "the saga cannot be resumed; it stops here, its record untouched");
        self.journal.refuse(reason);
    }

    /// Why a run cannot go on past a step whose recorded output no longer reads.
    #[cold]
    fn output_changed(&self, name: &str, index: u32, error: &str) -> String {
        format!(
            "saga {} (`{}`) cannot be resumed: the output recorded for step `{name}` (step {}) \
             no longer reads as the step's output type: {error}; the type changed since the \
             step ran; its record is left as it is",
            self.id,
            self.saga,
            index + 1
        )
    }

    /// Takes the reason the run was refused, if it was.
    pub(crate) fn take_refusal(&mut self) -> Option<String> {
        self.journal.take_refusal()
    }

    /// A step of a durable saga: answered from the journal if it finished before a
    /// restart; otherwise each attempt's intent is durable before the attempt
    /// starts, and the outcome before the saga moves on.
    async fn step_durable<S, F, Fut>(
        &mut self,
        index: u32,
        call: F,
    ) -> Result<S::Output, StepFailure<S::Error>>
    where
        S: Step,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<S::Output, S::Error>>,
        J: Keep<S::Output>,
    {
        let name = S::INFO.name();
        if self.journal.halted() {
            return Err(halted());
        }
        let attempt_no = match self.journal.replayed(index, false) {
            Replayed::Succeeded(bytes) => match J::decode(&bytes) {
                Ok(output) => {
                    self.succeeded += 1;
                    return Ok(output);
                }
                Err(e) => {
                    // The step happened; its output type changed since. Failing
                    // it would leave its effect in place, never undone, and going
                    // on needs the output: a changed definition, refused.
                    let reason = self.output_changed(name, index, &e);
                    self.refuse(reason);
                    return Err(halted());
                }
            },
            Replayed::Failed(message) => {
                self.push_failure(name, index, 0, Outcome::Failed, None, message.clone());
                return Err(StepFailure::Recovered { message });
            }
            Replayed::Run {
                next_attempt,
                spent,
            } => (next_attempt, spent),
        };
        let started = self.now();
        self.step_attempts::<S, F, Fut>(index, call, attempt_no, None, started)
            .await
    }

    /// Ends a step that failed for good: written first in a durable run, then
    /// told and recorded.
    async fn step_failed<S: Step>(
        &mut self,
        index: u32,
        attempts: u32,
        failure: StepFailure<S::Error>,
        started: Option<Instant>,
    ) -> Result<S::Output, StepFailure<S::Error>> {
        let name = S::INFO.name();
        let text = failure.to_string();
        let entry = Entry::StepFailed {
            index,
            error: text.clone(),
        };
        if J::DURABLE
            && let Err(e) = self.write(entry).await
        {
            self.halt(e);
            return Err(halted());
        }
        let cx = self.context(name, index, attempts, Phase::Forward);
        self.step_failed_for_good::<S>(&cx, &failure, text, started);
        Err(failure)
    }

    /// Tells of a step that failed for good and records it, for the report and
    /// for the error the saga ends with.
    #[cold]
    #[inline(never)]
    fn step_failed_for_good<S: Step>(
        &mut self,
        cx: &StepContext,
        failure: &StepFailure<S::Error>,
        text: String,
        started: Option<Instant>,
    ) {
        let name = S::INFO.name();
        tracing::warn!(parent: &self.span, step = name, attempts = cx.attempt, error = %text, "step failed for good, compensating");
        self.hooks.step_failed(cx, &text);
        self.push_failure(
            name,
            cx.index,
            cx.attempt,
            outcome_of(failure),
            started,
            text,
        );
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn push_failure(
        &mut self,
        name: &'static str,
        index: u32,
        attempts: u32,
        outcome: Outcome,
        started: Option<Instant>,
        text: String,
    ) {
        // The failure path from here on: the failed step and each
        // compensation add a record, each compensation a name. Room for all at
        // once, so that compensating allocates per saga, not per step.
        let steps = self.steps.len();
        self.records.reserve(steps + 1);
        let failure = self.failure.get_or_insert_with(Box::default);
        failure.undone.reserve(steps);
        self.records.push(StepRecord {
            group: None,
            step: name,
            function: name,
            index,
            phase: Phase::Forward,
            outcome,
            attempts,
            duration: started.map(|s| s.elapsed()),
            error: Some(text),
        });
        failure.step = name;
    }

    /// Tells that attempt `retry` of a step failed and another follows, and
    /// returns the backoff to wait first. Not `async`, and kept out of line, so
    /// that the step's state machine carries none of it.
    #[cold]
    #[inline(never)]
    fn step_will_retry(
        &self,
        cx: &StepContext,
        policy: RetryPolicy,
        retry: u32,
        text: &str,
    ) -> Duration {
        let delay = jittered_delay(policy, retry);
        tracing::warn!(parent: &self.span, step = cx.step, attempt = cx.attempt, error = %text, ?delay, "step failed, retrying");
        self.hooks.step_retrying(cx, text, delay);
        delay
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
        if S::INFO.kind() == StepKind::Compensatable {
            // Not boxed here: the generated backward loop is boxed once per
            // failed run (`__private::compensating`), which keeps this state out
            // of every saga's future at one allocation per saga, not per step.
            self.compensate_step(step, index, call).await;
        }
    }

    async fn compensate_step<S, F, Fut>(
        &mut self,
        step: core::marker::PhantomData<S>,
        index: u32,
        call: F,
    ) where
        S: Step,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), CompensationError>>,
    {
        if J::DURABLE
            && let Err(e) = self.write_deferred().await
        {
            self.halt(e);
            return;
        }
        let undo = self.undo(step, index, call).await;
        self.undone::<S>(index, undo);
    }

    /// Every attempt of step `S`'s compensation, by its policy, on a shared
    /// borrow, so that a group's members are undone at once: told as it goes,
    /// recorded afterwards by [`undone`](Self::undone).
    pub async fn undo<S, F, Fut>(
        &self,
        _step: core::marker::PhantomData<S>,
        index: u32,
        mut call: F,
    ) -> Undo
    where
        S: Step,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), CompensationError>>,
    {
        let (StepKind::Compensatable, Some(function)) = (S::INFO.kind(), S::INFO.compensation())
        else {
            return Undo::Skipped;
        };
        let name = S::INFO.name();
        let policy = S::INFO.compensation_retry();
        let started = self.now();
        let mut attempt_no = 1u32;
        let mut spent = 0u32;
        if J::DURABLE {
            if self.journal.halted() {
                return Undo::Skipped;
            }
            match self.journal.replayed(index, true) {
                Replayed::Succeeded(_) => {
                    return Undo::Undone {
                        attempts: 0,
                        duration: None,
                        last_error: None,
                    };
                }
                Replayed::Failed(error) => {
                    return Undo::Failed {
                        attempts: 0,
                        outcome: None,
                        duration: None,
                        error,
                    };
                }
                Replayed::Run {
                    next_attempt,
                    spent: before,
                } => (attempt_no, spent) = (next_attempt, before),
            }
        }
        let first_attempt = attempt_no;
        let mut last_error = None;
        loop {
            if J::DURABLE {
                let entry = Entry::CompensationStarted {
                    index,
                    attempt: attempt_no,
                };
                if let Err(e) = self.journal.record(entry).await {
                    return Undo::Halt(e);
                }
            }
            let cx = self.context(name, index, attempt_no, Phase::Compensation);
            if let Some(outgoing) = &self.outgoing {
                outgoing.discard(index, Phase::Compensation);
            }
            self.hooks.compensation_started(&cx);
            let span = self.span_for(Phase::Compensation, name, function, attempt_no);
            let timeout = S::INFO.compensation_timeout();
            let outcome = self
                .one_attempt(&mut call, cx, Phase::Compensation, timeout, span)
                .await;
            let failure = match outcome {
                Ok(()) => {
                    if let Err(e) = self.compensation_done(name, function, index).await {
                        return Undo::Halt(e);
                    }
                    let duration = started.map(|s| s.elapsed());
                    self.hooks
                        .compensation_succeeded(&cx, duration.unwrap_or_default());
                    return Undo::Undone {
                        attempts: attempt_no,
                        duration,
                        last_error,
                    };
                }
                Err(failure) => failure.map_err(|CompensationError(text)| text),
            };
            let text = failure.to_string();
            // Across restarts, as for steps (see `step_attempts`).
            let tries = spent + (attempt_no - first_attempt + 1);
            if policy.allows_attempt_after(tries) {
                let delay = jittered_delay(policy, tries);
                tracing::warn!(parent: &self.span, step = name, compensation = function, attempt = attempt_no, error = %text, ?delay, "compensation failed, retrying");
                self.hooks.compensation_retrying(&cx, &text, delay);
                last_error = Some(text);
                tokio::time::sleep(delay).await;
                attempt_no = attempt_no.saturating_add(1);
                continue;
            }
            if J::DURABLE {
                let entry = Entry::CompensationFailed {
                    index,
                    error: text.clone(),
                };
                if let Err(e) = self.journal.record(entry).await {
                    return Undo::Halt(e);
                }
            }
            tracing::error!(parent: &self.span, step = name, compensation = function, attempts = attempt_no, error = %text, "compensation failed for good; the step's effect needs manual repair");
            self.hooks.compensation_failed(&cx, &text);
            return Undo::Failed {
                attempts: attempt_no,
                outcome: Some(outcome_of(&failure)),
                duration: started.map(|s| s.elapsed()),
                error: text,
            };
        }
    }

    /// Records what undoing step `S` (at `index`) came to.
    pub fn undone<S: Step>(&mut self, index: u32, undo: Undo) {
        let (name, function) = (S::INFO.name(), S::INFO.compensation().unwrap_or_default());
        match undo {
            Undo::Skipped => {}
            Undo::Halt(e) => self.halt(e),
            Undo::Undone {
                attempts,
                duration,
                last_error,
            } => {
                self.failure().undone.push(name);
                self.records.push(StepRecord {
                    group: None,
                    step: name,
                    function,
                    index,
                    phase: Phase::Compensation,
                    outcome: Outcome::Succeeded,
                    attempts,
                    duration,
                    error: last_error,
                });
            }
            Undo::Failed {
                attempts,
                outcome,
                duration,
                error,
            } => {
                // A failure replayed from the journal was recorded by the run
                // that saw it; only the error remembers it.
                if let Some(outcome) = outcome {
                    self.records.push(StepRecord {
                        group: None,
                        step: name,
                        function,
                        index,
                        phase: Phase::Compensation,
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

    /// Every record in the order things ran: the plain successes that were not
    /// pushed are rebuilt from the step table, since forward steps run in order.
    fn all_records(&mut self) -> Vec<StepRecord> {
        let kept = core::mem::take(&mut self.records);
        let forward_run = self.succeeded as usize + usize::from(self.failure.is_some());
        let forward_kept = kept.iter().filter(|r| r.phase == Phase::Forward).count();
        if forward_kept >= forward_run {
            // Every forward step has a record already (a timed run).
            return kept;
        }
        let mut all = Vec::with_capacity(kept.len() + forward_run);
        let mut kept = kept.into_iter().peekable();
        for (index, info) in self.steps.iter().enumerate().take(forward_run) {
            let index = index as u32;
            match kept.peek() {
                Some(r) if r.phase == Phase::Forward && r.index == index => {
                    all.extend(kept.next());
                }
                _ => all.push(StepRecord {
                    group: None,
                    step: info.name(),
                    function: info.name(),
                    index,
                    phase: Phase::Forward,
                    outcome: Outcome::Succeeded,
                    attempts: 1,
                    duration: None,
                    error: None,
                }),
            }
        }
        all.extend(kept);
        all
    }

    /// The run's report, told to the hooks, and kept for the caller if it
    /// takes it.
    fn finish(&mut self, outcome: RunOutcome) -> RunReport {
        let mut report = RunReport {
            saga: self.saga,
            id: self.id,
            outcome,
            duration: self.started.map(|s| s.elapsed()),
            records: self.all_records(),
        };
        // The group is the step table's: `#[saga]` marks each member there.
        for r in &mut report.records {
            r.group = self.steps.get(r.index as usize).and_then(StepInfo::group);
        }
        self.hooks.saga_finished(&report);
        if self.keeps_report {
            self.report = Some(Box::new(report.clone()));
        }
        report
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

    /// Ends a run in memory whose steps all succeeded: nothing to write.
    #[inline]
    pub fn committed_in_memory(&mut self) {
        if self.reported {
            self.finish(RunOutcome::Committed);
        }
    }

    /// Ends a run that failed with `failure` and compensated what it could.
    pub async fn failed<E>(&mut self, failure: StepFailure<E>) -> SagaError<E> {
        if J::DURABLE && !self.journal.halted() {
            let status = if self.failure().failed.is_empty() {
                SagaStatus::Compensated
            } else {
                SagaStatus::Parked
            };
            let entry = Entry::Finished {
                status,
                output: None,
            };
            if let Err(e) = self.write(entry).await {
                self.halt(e);
            }
        }
        let outcome = if self.failure().failed.is_empty() {
            RunOutcome::Compensated
        } else {
            RunOutcome::CompensationFailed
        };
        // The report first: it rebuilds the plain successes before the failed
        // step, which it counts from the failure still being there.
        let report = Box::new(self.finish(outcome));
        let Failure {
            step,
            undone,
            failed,
        } = self.failure.take().map(|f| *f).unwrap_or_default();
        if failed.is_empty() {
            SagaError::Compensated {
                step,
                failure,
                undone,
                report,
            }
        } else {
            SagaError::CompensationFailed {
                step,
                failure,
                undone,
                failed,
                report,
            }
        }
    }

    /// What the run's failure left so far; made if the run has not failed yet
    /// (a compensation runs only after a failure, so in practice it was made).
    fn failure(&mut self) -> &mut Failure {
        self.failure.get_or_insert_with(Box::default)
    }

    pub(crate) fn take_report(&mut self) -> Option<RunReport> {
        self.report.take().map(|r| *r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_between_half_and_whole() {
        let p = RetryPolicy::retries(3).with_backoff(Duration::from_millis(100));
        for _ in 0..1000 {
            let d = jittered_delay(p, 2);
            assert!(
                d >= Duration::from_millis(100) && d <= Duration::from_millis(200),
                "{d:?}"
            );
        }
    }
}
