//! Lifecycle hooks: user code told of every step of a saga's life.

use core::time::Duration;

use crate::context::{SagaId, StepContext};
use crate::report::RunReport;

/// Observes a saga's life. Every method has an empty default: implement the ones you need.
///
/// Hooks run inline on the saga's task; keep them quick. Error texts are the
/// `Display` of the step's error (or what timed out or panicked).
///
/// ```
/// use sagaflow::{Hooks, RunReport, StepContext};
///
/// struct PrintSummary;
///
/// impl Hooks for PrintSummary {
///     fn step_retrying(&self, cx: &StepContext, error: &str, delay: std::time::Duration) {
///         println!("{} attempt {} failed ({error}), retrying in {delay:?}", cx.step(), cx.attempt());
///     }
///     fn saga_finished(&self, report: &RunReport) {
///         println!("{report}");
///     }
/// }
/// ```
pub trait Hooks {
    /// Whether runs with these hooks are timed by default, so that `elapsed`
    /// and the report's durations are real. `true` unless overridden; [`NoHooks`]
    /// says `false`, which keeps the clock off the default path.
    const TIMED: bool = true;

    /// Whether these hooks ignore every event, so that a run need not build a
    /// report only to hand it to them. Not public API: only [`NoHooks`] says `true`.
    #[doc(hidden)]
    const __SILENT: bool = false;

    /// A saga run begins.
    fn saga_started(&self, saga: &'static str, id: SagaId) {
        let _ = (saga, id);
    }
    /// An attempt of a step begins.
    fn step_started(&self, cx: &StepContext) {
        let _ = cx;
    }
    /// A step succeeded; `elapsed` covers all its attempts.
    ///
    /// In a durable run this is told when the step returns, before its output is
    /// on disk: the output is written with the saga's next transition, which is
    /// committed before the next step starts. If the process dies in between,
    /// recovery runs the step again with the same idempotency key, and this hook
    /// is told again.
    fn step_succeeded(&self, cx: &StepContext, elapsed: Duration) {
        let _ = (cx, elapsed);
    }
    /// An attempt failed and another follows after `delay`.
    fn step_retrying(&self, cx: &StepContext, error: &str, delay: Duration) {
        let _ = (cx, error, delay);
    }
    /// A step failed for good; compensation follows.
    fn step_failed(&self, cx: &StepContext, error: &str) {
        let _ = (cx, error);
    }
    /// An attempt of a compensation begins.
    fn compensation_started(&self, cx: &StepContext) {
        let _ = cx;
    }
    /// A compensation succeeded.
    fn compensation_succeeded(&self, cx: &StepContext, elapsed: Duration) {
        let _ = (cx, elapsed);
    }
    /// A compensation attempt failed and another follows after `delay`.
    fn compensation_retrying(&self, cx: &StepContext, error: &str, delay: Duration) {
        let _ = (cx, error, delay);
    }
    /// A compensation failed for good: recorded, and the saga goes on undoing earlier steps.
    fn compensation_failed(&self, cx: &StepContext, error: &str) {
        let _ = (cx, error);
    }
    /// The saga decided to commit (at its pivot, or after its last step) and
    /// is `Confirming`: the confirms of its TCC steps follow, each retried
    /// until it succeeds. Told before any confirm starts; in a durable run,
    /// once the decision is on disk.
    fn saga_confirming(&self, saga: &'static str, id: SagaId) {
        let _ = (saga, id);
    }
    /// An attempt of a TCC step's confirm begins. (A cancel is told as a
    /// compensation, with [`Phase::Cancel`](crate::Phase::Cancel).)
    fn confirm_started(&self, cx: &StepContext) {
        let _ = cx;
    }
    /// A TCC step's confirm succeeded; `elapsed` covers all its attempts.
    fn confirm_succeeded(&self, cx: &StepContext, elapsed: Duration) {
        let _ = (cx, elapsed);
    }
    /// A confirm attempt failed and another follows after `delay`: a confirm
    /// never gives up, and never turns into a cancel.
    fn confirm_retrying(&self, cx: &StepContext, error: &str, delay: Duration) {
        let _ = (cx, error, delay);
    }
    /// The run ended, committed or not.
    fn saga_finished(&self, report: &RunReport) {
        let _ = report;
    }
    /// A durable run stopped because its store refused a write: this worker
    /// no longer holds the saga's lease (another worker took it over, after
    /// this one was paused or cut off past its lease). Nothing of the write
    /// was stored; the saga goes on in the worker that has it. `error` names
    /// the saga and, when known, its new holder.
    fn lease_lost(&self, saga: &'static str, id: SagaId, error: &str) {
        let _ = (saga, id, error);
    }
}

/// No hooks: the default, which costs nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl Hooks for NoHooks {
    const TIMED: bool = false;
    const __SILENT: bool = true;
}

impl<H: Hooks + ?Sized> Hooks for &H {
    const TIMED: bool = H::TIMED;
    const __SILENT: bool = H::__SILENT;

    fn saga_started(&self, saga: &'static str, id: SagaId) {
        (**self).saga_started(saga, id)
    }
    fn step_started(&self, cx: &StepContext) {
        (**self).step_started(cx)
    }
    fn step_succeeded(&self, cx: &StepContext, elapsed: Duration) {
        (**self).step_succeeded(cx, elapsed)
    }
    fn step_retrying(&self, cx: &StepContext, error: &str, delay: Duration) {
        (**self).step_retrying(cx, error, delay)
    }
    fn step_failed(&self, cx: &StepContext, error: &str) {
        (**self).step_failed(cx, error)
    }
    fn compensation_started(&self, cx: &StepContext) {
        (**self).compensation_started(cx)
    }
    fn compensation_succeeded(&self, cx: &StepContext, elapsed: Duration) {
        (**self).compensation_succeeded(cx, elapsed)
    }
    fn compensation_retrying(&self, cx: &StepContext, error: &str, delay: Duration) {
        (**self).compensation_retrying(cx, error, delay)
    }
    fn compensation_failed(&self, cx: &StepContext, error: &str) {
        (**self).compensation_failed(cx, error)
    }
    fn saga_confirming(&self, saga: &'static str, id: SagaId) {
        (**self).saga_confirming(saga, id)
    }
    fn confirm_started(&self, cx: &StepContext) {
        (**self).confirm_started(cx)
    }
    fn confirm_succeeded(&self, cx: &StepContext, elapsed: Duration) {
        (**self).confirm_succeeded(cx, elapsed)
    }
    fn confirm_retrying(&self, cx: &StepContext, error: &str, delay: Duration) {
        (**self).confirm_retrying(cx, error, delay)
    }
    fn saga_finished(&self, report: &RunReport) {
        (**self).saga_finished(report)
    }
    fn lease_lost(&self, saga: &'static str, id: SagaId, error: &str) {
        (**self).lease_lost(saga, id, error)
    }
}
