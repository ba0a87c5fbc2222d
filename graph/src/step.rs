//! What the runtime knows about a step: its kind, its compensation and its policies.
//!
//! `#[step]` writes these values; the runtime and [`SagaGraph`](crate::SagaGraph) read them,
//! and `#[saga]` reads them at expansion time to draw the saga in its rustdoc.

use core::time::Duration;

/// What happens to a completed step when a later step fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepKind {
    /// `#[step(compensate = f)]`: undone by `f`, in reverse order of completion.
    Compensatable,
    /// `#[step(read_only)]`: has no side effect, so there is nothing to undo.
    ReadOnly,
    /// `#[step(pivot)]`: the point of no return. Once it succeeds the saga only goes forward.
    Pivot,
    /// `#[step(retriable)]`: never undone; retried until it succeeds.
    Retriable,
    /// `#[step(tcc(confirm = c, cancel = x))]`: try-confirm-cancel. The step is
    /// the try; `c` runs once the saga decides to commit (retried until it
    /// succeeds), `x` on rollback, also after a try that failed. It may not come
    /// after the pivot.
    Tcc,
}

impl StepKind {
    /// The attribute word that declares this kind (`compensate`, `read_only`,
    /// `pivot`, `retriable`, `tcc`).
    pub const fn keyword(self) -> &'static str {
        match self {
            StepKind::Compensatable => "compensate",
            StepKind::ReadOnly => "read_only",
            StepKind::Pivot => "pivot",
            StepKind::Retriable => "retriable",
            StepKind::Tcc => "tcc",
        }
    }

    /// Whether a step of this kind is undone on rollback: by its compensation,
    /// or by its cancel.
    pub const fn is_undone(self) -> bool {
        matches!(self, StepKind::Compensatable | StepKind::Tcc)
    }
}

/// How often, and how patiently, a step or a compensation is retried.
///
/// The delay before retry `r` (1 for the first retry) is
/// `min(max_backoff, backoff * 2^(r-1))`, of which a random half is dropped
/// ("equal jitter"), so that many sagas failing together do not retry in lock step.
///
/// ```
/// use sagaflow_graph::RetryPolicy;
/// use std::time::Duration;
///
/// let policy = RetryPolicy::retries(3).with_backoff(Duration::from_millis(10));
/// assert_eq!(policy.max_retries(), Some(3));
/// assert_eq!(policy.base_delay(3), Duration::from_millis(40));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RetryPolicy {
    max_retries: Option<u32>,
    backoff: Duration,
    max_backoff: Duration,
}

impl RetryPolicy {
    /// The first retry waits about this long, unless a step says otherwise: 100 ms.
    pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(100);
    /// No wait between retries is longer than this, unless a step says otherwise: 10 s.
    pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(10);

    /// A step's default: one attempt, no retry.
    pub const NONE: RetryPolicy = RetryPolicy::retries(0);

    /// A `retriable` step's default: retried until it succeeds.
    pub const FOREVER: RetryPolicy = RetryPolicy {
        max_retries: None,
        backoff: Self::DEFAULT_BACKOFF,
        max_backoff: Self::DEFAULT_MAX_BACKOFF,
    };

    /// A compensation's default: up to 5 retries after the first attempt, backing off
    /// from 100 ms up to 10 s (about 3 s in all before it is given up and recorded).
    ///
    /// A compensation that still fails is not dropped: the saga ends
    /// `CompensationFailed` and names it.
    pub const COMPENSATION_DEFAULT: RetryPolicy = RetryPolicy::retries(5);

    /// Up to `max_retries` retries after the first attempt, with the default backoff.
    pub const fn retries(max_retries: u32) -> Self {
        RetryPolicy {
            max_retries: Some(max_retries),
            backoff: Self::DEFAULT_BACKOFF,
            max_backoff: Self::DEFAULT_MAX_BACKOFF,
        }
    }

    /// The same policy with another initial backoff.
    pub const fn with_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// The same policy with another cap on the backoff.
    pub const fn with_max_backoff(mut self, max_backoff: Duration) -> Self {
        self.max_backoff = max_backoff;
        self
    }

    /// Retries allowed after the first attempt; `None` means until success.
    pub const fn max_retries(&self) -> Option<u32> {
        self.max_retries
    }

    /// The wait before the first retry, before jitter.
    pub const fn backoff(&self) -> Duration {
        self.backoff
    }

    /// The longest wait between two attempts.
    pub const fn max_backoff(&self) -> Duration {
        self.max_backoff
    }

    /// Whether another attempt may follow attempt number `attempt` (1 for the first).
    pub const fn allows_attempt_after(&self, attempt: u32) -> bool {
        match self.max_retries {
            None => true,
            Some(max) => attempt <= max,
        }
    }

    /// The wait before retry number `retry` (1 for the first retry), before jitter.
    pub fn base_delay(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(32);
        let delay = self
            .backoff
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(self.max_backoff);
        delay.min(self.max_backoff)
    }
}

/// The declaration of one step, as `#[step(...)]` wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StepInfo {
    name: &'static str,
    kind: StepKind,
    compensation: Option<&'static str>,
    retry: RetryPolicy,
    timeout: Option<Duration>,
    compensation_retry: RetryPolicy,
    compensation_timeout: Option<Duration>,
    confirm: Option<&'static str>,
    confirm_retry: RetryPolicy,
    confirm_timeout: Option<Duration>,
    group: Option<u32>,
}

impl StepInfo {
    /// Describes a step. `#[step]` calls this; hand-written steps may too.
    pub const fn new(name: &'static str, kind: StepKind) -> Self {
        StepInfo {
            name,
            kind,
            compensation: None,
            retry: match kind {
                StepKind::Retriable => RetryPolicy::FOREVER,
                _ => RetryPolicy::NONE,
            },
            timeout: None,
            compensation_retry: RetryPolicy::COMPENSATION_DEFAULT,
            compensation_timeout: None,
            confirm: None,
            confirm_retry: RetryPolicy::FOREVER,
            confirm_timeout: None,
            group: None,
        }
    }

    /// The same step, a TCC step's try, made final by the function named `confirm`.
    /// Its cancel is its [`compensation`](Self::compensation).
    pub const fn with_confirm(mut self, confirm: &'static str) -> Self {
        self.confirm = Some(confirm);
        self
    }

    /// The same step whose confirm waits by another policy between attempts; a
    /// confirm is retried until it succeeds, whatever the policy's count.
    pub const fn with_confirm_retry(mut self, retry: RetryPolicy) -> Self {
        self.confirm_retry = retry;
        self
    }

    /// The same step with a limit on each attempt of its confirm.
    pub const fn with_confirm_timeout(mut self, timeout: Duration) -> Self {
        self.confirm_timeout = Some(timeout);
        self
    }

    /// The same step, undone by the function named `compensation`.
    pub const fn with_compensation(mut self, compensation: &'static str) -> Self {
        self.compensation = Some(compensation);
        self
    }

    /// The same step with another retry policy.
    pub const fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The same step with a limit on each attempt.
    pub const fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The same step whose compensation retries by another policy.
    pub const fn with_compensation_retry(mut self, retry: RetryPolicy) -> Self {
        self.compensation_retry = retry;
        self
    }

    /// The same step with a limit on each attempt of its compensation.
    pub const fn with_compensation_timeout(mut self, timeout: Duration) -> Self {
        self.compensation_timeout = Some(timeout);
        self
    }

    /// The same step as a member of its saga's `sagaflow::join!` group number
    /// `group` (counting the saga's groups from 0), which runs its members at
    /// once. `#[saga]` sets it in the saga's step table: it belongs to the
    /// step's place in a saga, not to the step.
    pub const fn in_group(mut self, group: u32) -> Self {
        self.group = Some(group);
        self
    }

    /// The step function's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// What happens to the step when a later one fails.
    pub const fn kind(&self) -> StepKind {
        self.kind
    }

    /// The compensation function's name, for a compensatable step; the cancel's,
    /// for a TCC step.
    pub const fn compensation(&self) -> Option<&'static str> {
        self.compensation
    }

    /// The confirm function's name, for a TCC step.
    pub const fn confirm(&self) -> Option<&'static str> {
        self.confirm
    }

    /// How a TCC step's confirm waits between attempts (it never gives up):
    /// 100 ms doubling to 10 s unless the step says otherwise.
    pub const fn confirm_retry(&self) -> RetryPolicy {
        self.confirm_retry
    }

    /// The limit on each attempt of a TCC step's confirm, if any.
    pub const fn confirm_timeout(&self) -> Option<Duration> {
        self.confirm_timeout
    }

    /// How the step is retried.
    pub const fn retry(&self) -> RetryPolicy {
        self.retry
    }

    /// The limit on each attempt, if any.
    pub const fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// How the compensation is retried.
    pub const fn compensation_retry(&self) -> RetryPolicy {
        self.compensation_retry
    }

    /// The limit on each attempt of the compensation, if any. Without one, a
    /// compensation attempt may take as long as it takes.
    pub const fn compensation_timeout(&self) -> Option<Duration> {
        self.compensation_timeout
    }

    /// The `sagaflow::join!` group the step runs in, in its saga, if any.
    pub const fn group(&self) -> Option<u32> {
        self.group
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::retries(10)
            .with_backoff(Duration::from_millis(10))
            .with_max_backoff(Duration::from_millis(50));
        let delays: Vec<_> = (1..=5).map(|r| p.base_delay(r).as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 50, 50]);
        assert_eq!(p.base_delay(400), Duration::from_millis(50));
    }

    #[test]
    fn attempts_allowed() {
        let p = RetryPolicy::retries(2);
        assert!(p.allows_attempt_after(1));
        assert!(p.allows_attempt_after(2));
        assert!(!p.allows_attempt_after(3));
        assert!(RetryPolicy::FOREVER.allows_attempt_after(u32::MAX));
        assert!(!RetryPolicy::NONE.allows_attempt_after(1));
    }
}
