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
use std::time::Instant;

use tracing::Instrument;

use crate::context::{Phase, SagaId, StepContext};
use crate::error::{FailedCompensation, SagaError, StepFailure};
use crate::hooks::Hooks;
use crate::report::{Outcome, RunOutcome, RunReport, StepRecord};
use crate::step::Step;
use crate::{RetryPolicy, StepKind};

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
    struct Guarded<F> {
        #[pin]
        future: F,
        cx: StepContext,
    }
}

impl<F: Future> Future for Guarded<F> {
    type Output = Result<F::Output, String>;

    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let future = this.future;
        let polled = this
            .cx
            .enter(|| std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(task))));
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

/// One attempt: the future, guarded, under a timeout only if the step has one.
async fn attempt<Fut, T, E>(
    future: Fut,
    cx: StepContext,
    timeout: Option<Duration>,
) -> Result<T, StepFailure<E>>
where
    Fut: Future<Output = Result<T, E>>,
{
    let guarded = Guarded { future, cx };
    let outcome = match timeout {
        None => guarded.await,
        Some(after) => match tokio::time::timeout(after, guarded).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => return Err(StepFailure::TimedOut { after }),
        },
    };
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(StepFailure::Error(error)),
        Err(message) => Err(StepFailure::Panicked { message }),
    }
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
        StepFailure::Error(_) => Outcome::Failed,
        StepFailure::TimedOut { .. } => Outcome::TimedOut,
        StepFailure::Panicked { .. } => Outcome::Panicked,
    }
}

/// The state of one saga run that is not the saga's own data: who to tell,
/// what happened so far, and how the run failed if it did.
#[doc(hidden)]
pub struct Run<'h, H> {
    hooks: &'h H,
    saga: &'static str,
    id: SagaId,
    span: tracing::Span,
    started: Instant,
    mark: Instant,
    records: Vec<StepRecord>,
    undone: Vec<&'static str>,
    failed: Vec<FailedCompensation>,
    failed_step: &'static str,
    report: Option<RunReport>,
}

impl<'h, H: Hooks> Run<'h, H> {
    pub(crate) fn new(
        hooks: &'h H,
        saga: &'static str,
        id: SagaId,
        steps: usize,
        span: tracing::Span,
    ) -> Self {
        hooks.saga_started(saga, id);
        let now = Instant::now();
        Run {
            hooks,
            saga,
            id,
            span,
            started: now,
            mark: now,
            records: Vec::with_capacity(steps),
            undone: Vec::new(),
            failed: Vec::new(),
            failed_step: "",
            report: None,
        }
    }

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

    /// Runs step `S` (at position `index`) to success, or to failure after its retries.
    ///
    /// `call` builds a fresh future for each attempt: the step's arguments are
    /// evaluated again each time.
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
    {
        let info = S::INFO;
        let started = self.mark;
        let mut attempt_no = 1u32;
        let mut last_error = None;
        loop {
            let cx = self.context(info.name(), index, attempt_no, Phase::Forward);
            self.hooks.step_started(&cx);
            let span = tracing::info_span!(parent: &self.span, "step", step = info.name(), attempt = attempt_no);
            let failure = match attempt(call(), cx, info.timeout()).instrument(span).await {
                Ok(output) => {
                    let now = Instant::now();
                    self.mark = now;
                    let elapsed = now.saturating_duration_since(started);
                    self.hooks.step_succeeded(&cx, elapsed);
                    self.records.push(StepRecord {
                        step: info.name(),
                        function: info.name(),
                        index,
                        phase: Phase::Forward,
                        outcome: Outcome::Succeeded,
                        attempts: attempt_no,
                        duration: elapsed,
                        error: last_error,
                    });
                    return Ok(output);
                }
                Err(failure) => failure,
            };
            let text = failure.to_string();
            if info.retry().allows_attempt_after(attempt_no) {
                let delay = jittered_delay(info.retry(), attempt_no);
                tracing::warn!(parent: &self.span, step = info.name(), attempt = attempt_no, error = %text, ?delay, "step failed, retrying");
                self.hooks.step_retrying(&cx, &text, delay);
                last_error = Some(text);
                tokio::time::sleep(delay).await;
                attempt_no = attempt_no.saturating_add(1);
                continue;
            }
            tracing::warn!(parent: &self.span, step = info.name(), attempts = attempt_no, error = %text, "step failed for good, compensating");
            self.hooks.step_failed(&cx, &text);
            let now = Instant::now();
            self.mark = now;
            self.records.push(StepRecord {
                step: info.name(),
                function: info.name(),
                index,
                phase: Phase::Forward,
                outcome: outcome_of(&failure),
                attempts: attempt_no,
                duration: now.saturating_duration_since(started),
                error: Some(text),
            });
            self.failed_step = info.name();
            return Err(failure);
        }
    }

    /// Undoes step `S` (at position `index`) if it is compensatable, retrying its
    /// compensation by policy; a compensation that still fails is recorded.
    pub async fn compensate<S, F, Fut>(
        &mut self,
        _step: core::marker::PhantomData<S>,
        index: u32,
        mut call: F,
    ) where
        S: Step,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), CompensationError>>,
    {
        let info = S::INFO;
        let (StepKind::Compensatable, Some(function)) = (info.kind(), info.compensation()) else {
            return;
        };
        let policy = info.compensation_retry();
        let started = Instant::now();
        let mut attempt_no = 1u32;
        let mut last_error = None;
        loop {
            let cx = self.context(info.name(), index, attempt_no, Phase::Compensation);
            self.hooks.compensation_started(&cx);
            let span = tracing::info_span!(parent: &self.span, "compensation", step = info.name(), compensation = function, attempt = attempt_no);
            let result = attempt(call(), cx, None).instrument(span).await;
            let failure = match result {
                Ok(()) => {
                    let elapsed = started.elapsed();
                    self.hooks.compensation_succeeded(&cx, elapsed);
                    self.undone.push(info.name());
                    self.records.push(StepRecord {
                        step: info.name(),
                        function,
                        index,
                        phase: Phase::Compensation,
                        outcome: Outcome::Succeeded,
                        attempts: attempt_no,
                        duration: elapsed,
                        error: last_error,
                    });
                    return;
                }
                Err(failure) => failure.map_err(|CompensationError(text)| text),
            };
            let text = failure.to_string();
            if policy.allows_attempt_after(attempt_no) {
                let delay = jittered_delay(policy, attempt_no);
                tracing::warn!(parent: &self.span, step = info.name(), compensation = function, attempt = attempt_no, error = %text, ?delay, "compensation failed, retrying");
                self.hooks.compensation_retrying(&cx, &text, delay);
                last_error = Some(text);
                tokio::time::sleep(delay).await;
                attempt_no = attempt_no.saturating_add(1);
                continue;
            }
            tracing::error!(parent: &self.span, step = info.name(), compensation = function, attempts = attempt_no, error = %text, "compensation failed for good; the step's effect needs manual repair");
            self.hooks.compensation_failed(&cx, &text);
            self.records.push(StepRecord {
                step: info.name(),
                function,
                index,
                phase: Phase::Compensation,
                outcome: outcome_of(&failure),
                attempts: attempt_no,
                duration: started.elapsed(),
                error: Some(text.clone()),
            });
            self.failed.push(FailedCompensation {
                step: info.name(),
                compensation: function,
                error: text,
                attempts: attempt_no,
            });
            return;
        }
    }

    fn finish(&mut self, outcome: RunOutcome) -> &RunReport {
        let report = RunReport {
            saga: self.saga,
            id: self.id,
            outcome,
            duration: self.started.elapsed(),
            records: core::mem::take(&mut self.records),
        };
        self.hooks.saga_finished(&report);
        self.report.insert(report)
    }

    /// Ends a run whose steps all succeeded.
    pub fn committed(&mut self) {
        self.finish(RunOutcome::Committed);
    }

    /// Ends a run that failed with `failure` and compensated what it could.
    pub fn failed<E>(&mut self, failure: StepFailure<E>) -> SagaError<E> {
        let step = self.failed_step;
        let undone = core::mem::take(&mut self.undone);
        if self.failed.is_empty() {
            let report = Box::new(self.finish(RunOutcome::Compensated).clone());
            SagaError::Compensated {
                step,
                failure,
                undone,
                report,
            }
        } else {
            let failed = core::mem::take(&mut self.failed);
            let report = Box::new(self.finish(RunOutcome::CompensationFailed).clone());
            SagaError::CompensationFailed {
                step,
                failure,
                undone,
                failed,
                report,
            }
        }
    }

    pub(crate) fn take_report(&mut self) -> Option<RunReport> {
        self.report.take()
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
