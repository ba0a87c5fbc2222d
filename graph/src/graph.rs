//! A saga's shape as a value, and its pictures: Mermaid, Graphviz DOT and inline SVG.
//!
//! Every saga has the same shape: a forward chain of steps, and compensation edges
//! going back. A failed step is not compensated (it produced nothing), so its
//! failure leads to the compensation of the nearest completed compensatable step
//! before it, then to the one before that, and so on down to the end of the undo.
//!
//! Because the shape is always that, the SVG uses a small deterministic layout
//! written for it rather than a general layout engine: `#[saga]` can then put a
//! picture in rustdoc that renders offline, and the same input always gives the
//! same bytes, so snapshots stay stable. Nodes and edges come out in source order.
//!
//! Ids in every format are generated (`s0`, `c0`, `start`, ...) and never taken
//! from user text; user text only ever appears inside quoted, escaped labels.

mod dot;
mod mermaid;
mod svg;
#[cfg(test)]
mod tests;

use core::fmt;
use core::time::Duration;

use crate::branch::BranchInfo;
use crate::step::{RetryPolicy, StepInfo, StepKind};

/// The steps of a saga in order, with their kinds, compensations and policies.
///
/// `#[saga]` builds one for each saga (`BookTripSaga::graph()`); it costs nothing at
/// run time, since it only borrows the `'static` step table the macro wrote. The
/// renderers turn it into a picture for documentation or for a dashboard.
///
/// ```
/// use sagaflow_graph::{RetryPolicy, SagaGraph, StepInfo, StepKind};
/// use std::time::Duration;
///
/// const STEPS: &[StepInfo] = &[
///     StepInfo::new("debit_customer", StepKind::Compensatable).with_compensation("refund_customer"),
///     StepInfo::new("book_flight", StepKind::Compensatable)
///         .with_compensation("cancel_flight")
///         .with_retry(RetryPolicy::retries(3))
///         .with_timeout(Duration::from_secs(2)),
///     StepInfo::new("check_hotel", StepKind::ReadOnly),
///     StepInfo::new("book_hotel", StepKind::Pivot),
///     StepInfo::new("email_itinerary", StepKind::Retriable),
/// ];
/// const GRAPH: SagaGraph = SagaGraph::new("travel", STEPS);
///
/// assert_eq!(GRAPH.pivot(), Some(3));
/// assert!(GRAPH.to_mermaid().starts_with("flowchart LR"));
/// assert!(GRAPH.to_dot().starts_with("digraph \"travel\""));
/// assert!(GRAPH.to_svg().contains("cancel_flight"));
/// assert_eq!(
///     GRAPH.to_string().lines().nth(2),
///     Some("2. book_flight (compensate: cancel_flight, retry 3, timeout 2s)"),
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SagaGraph {
    name: &'static str,
    steps: &'static [StepInfo],
    branches: &'static [BranchInfo],
}

impl SagaGraph {
    /// The graph of the saga `name` made of `steps`, in the order they run.
    ///
    /// `const` so that the macro can write the graph as a constant next to the step table.
    pub const fn new(name: &'static str, steps: &'static [StepInfo]) -> Self {
        SagaGraph {
            name,
            steps,
            branches: &[],
        }
    }

    /// The same graph with the body's branches (`if` and `match`), drawn as a
    /// diamond labelled with the condition and the arms side by side (in the
    /// SVG, parallel rows with a lane of compensations each, and a join dot).
    pub const fn with_branches(mut self, branches: &'static [BranchInfo]) -> Self {
        self.branches = branches;
        self
    }

    /// The branches, depth first.
    pub const fn branches(&self) -> &'static [BranchInfo] {
        self.branches
    }

    /// The saga's name, as the saga function is called.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The steps, in the order they run.
    pub const fn steps(&self) -> &'static [StepInfo] {
        self.steps
    }

    /// The index of the pivot step (the point of no return), if the saga has one.
    ///
    /// The macro allows at most one pivot; should a hand-built graph have several,
    /// this is the first, since that is where going back stops.
    pub const fn pivot(&self) -> Option<usize> {
        let mut i = 0;
        while i < self.steps.len() {
            if matches!(self.steps[i].kind(), StepKind::Pivot) {
                return Some(i);
            }
            i += 1;
        }
        None
    }

    /// Whether a step's failure leads anywhere: the last step that can fail for good.
    fn last_failing(&self) -> Option<usize> {
        self.steps.iter().rposition(can_fail)
    }

    /// The compensations that some failure can reach, in source order: those of
    /// the compensatable steps before the last step that can fail.
    fn reachable_compensations(&self) -> impl Iterator<Item = usize> + '_ {
        // A failing member's siblings after it are undone too.
        // A failing TCC step's own cancel runs too.
        let end = self.last_failing().map_or(0, |i| {
            self.group_of(i).map_or(
                i + usize::from(self.steps[i].kind() == StepKind::Tcc),
                |r| r.end,
            )
        });
        (0..end).filter(|&j| compensation_of(&self.steps[j]).is_some())
    }
}

/// One line per step, in order, with its kind and its policies, under a line
/// naming the saga:
///
/// ```text
/// saga travel
/// 1. book_flight (compensate: cancel_flight, retry 3)
/// 2. book_hotel (pivot: point of no return)
/// 3. email_itinerary (retriable)
/// ```
///
/// Meant for logs and error messages, where a picture does not fit.
impl fmt::Display for SagaGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "saga {}", self.name)?;
        if self.steps.is_empty() {
            f.write_str(" (no steps)")?;
        }
        for (i, step) in self.steps.iter().enumerate() {
            let mut parts = vec![match step.kind() {
                StepKind::Compensatable => {
                    format!("compensate: {}", step.compensation().unwrap_or("?"))
                }
                StepKind::ReadOnly => "read-only".to_owned(),
                StepKind::Pivot => "pivot: point of no return".to_owned(),
                StepKind::Retriable => "retriable".to_owned(),
                StepKind::Tcc => format!(
                    "tcc: confirm {}, cancel {}",
                    step.confirm().unwrap_or("?"),
                    step.compensation().unwrap_or("?")
                ),
            }];
            parts.extend(policy_parts(step));
            if let Some(g) = step.group() {
                parts.push(format!("at once in group {}", g + 1));
            }
            if compensation_of(step).is_some()
                && step.compensation_retry() != RetryPolicy::COMPENSATION_DEFAULT
            {
                let retry = retry_text(step.compensation_retry(), false)
                    .unwrap_or_else(|| "no retry".to_owned());
                parts.push(format!("compensation {retry}"));
            }
            if compensation_of(step).is_some()
                && let Some(timeout) = step.compensation_timeout()
            {
                parts.push(format!("compensation timeout {}", format_duration(timeout)));
            }
            write!(f, "\n{}. {} ({})", i + 1, step.name(), parts.join(", "))?;
        }
        // Then each branch: `if order.express: true → 2, false → 3-4`.
        for b in self.branches {
            let arms: Vec<String> = b
                .arms()
                .iter()
                .map(|a| {
                    let r = a.steps();
                    let steps = match r.len() {
                        0 => "no step".to_owned(),
                        1 => format!("{}", r.start + 1),
                        _ => format!("{}-{}", r.start + 1, r.end),
                    };
                    format!("{} → {steps}", a.label())
                })
                .collect();
            write!(f, "\nbranch on {}: {}", b.label(), arms.join(", "))?;
        }
        Ok(())
    }
}

/// The compensation drawn for a step: only a compensatable step has one, and a
/// TCC step its cancel, whatever a hand-built [`StepInfo`] says.
pub(crate) fn compensation_of(step: &StepInfo) -> Option<&'static str> {
    match step.kind() {
        StepKind::Compensatable | StepKind::Tcc => step.compensation(),
        _ => None,
    }
}

/// The confirm drawn for a TCC step.
pub(crate) fn confirm_of(step: &StepInfo) -> Option<&'static str> {
    match step.kind() {
        StepKind::Tcc => step.confirm(),
        _ => None,
    }
}

/// Whether a step can fail for good: it can unless it is retried until it succeeds.
fn can_fail(step: &StepInfo) -> bool {
    step.retry().max_retries().is_some()
}

/// The lines under a step's name: its kind, then its policies.
fn step_details(step: &StepInfo) -> Vec<String> {
    let mut lines = Vec::new();
    match step.kind() {
        StepKind::Compensatable => {}
        StepKind::Tcc => lines.push(format!(
            "try · ✓ {} on commit",
            step.confirm().unwrap_or("confirm")
        )),
        StepKind::ReadOnly => lines.push("read-only".to_owned()),
        StepKind::Pivot => lines.push("point of no return".to_owned()),
        StepKind::Retriable => lines.push("↻ retriable".to_owned()),
    }
    let policies = policy_parts(step);
    if !policies.is_empty() {
        lines.push(policies.join(" · "));
    }
    lines
}

/// The line under a compensation's name: its retry policy when not the default,
/// and its timeout if it has one.
fn compensation_details(step: &StepInfo) -> Vec<String> {
    let retry = step.compensation_retry();
    let mut parts = Vec::new();
    if retry != RetryPolicy::COMPENSATION_DEFAULT {
        parts.push(retry_text(retry, false).unwrap_or_else(|| "no retry".to_owned()));
    }
    if let Some(timeout) = step.compensation_timeout() {
        parts.push(format!("timeout {}", format_duration(timeout)));
    }
    if parts.is_empty() {
        Vec::new()
    } else {
        vec![parts.join(" · ")]
    }
}

/// A step's retry and timeout, compactly: `retry 3`, `timeout 2s`.
fn policy_parts(step: &StepInfo) -> Vec<String> {
    let mut parts = Vec::new();
    if let Some(retry) = retry_text(step.retry(), step.kind() == StepKind::Retriable) {
        parts.push(retry);
    }
    if let Some(timeout) = step.timeout() {
        parts.push(format!("timeout {}", format_duration(timeout)));
    }
    parts
}

/// `retry 3`, `retry 3 (backoff 10ms..5s)`, `retry ∞`; `None` when there is nothing
/// to say (no retry, or retrying forever is what the kind means anyway).
fn retry_text(policy: RetryPolicy, forever_implied: bool) -> Option<String> {
    let backoff = (policy.backoff() != RetryPolicy::DEFAULT_BACKOFF
        || policy.max_backoff() != RetryPolicy::DEFAULT_MAX_BACKOFF)
        .then(|| {
            format!(
                "backoff {}..{}",
                format_duration(policy.backoff()),
                format_duration(policy.max_backoff())
            )
        });
    let count = match policy.max_retries() {
        Some(0) => return None,
        Some(n) => format!("retry {n}"),
        None if forever_implied => return backoff,
        None => "retry ∞".to_owned(),
    };
    Some(match backoff {
        Some(backoff) => format!("{count} ({backoff})"),
        None => count,
    })
}

/// A duration the way `#[step]` takes it, exactly, largest units first: `2s`,
/// `1m30s`, `1ms500us`. Shared with the runtime, which words its timeouts the
/// same way.
#[doc(hidden)]
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    let secs = d.as_secs();
    let nanos = u64::from(d.subsec_nanos());
    let parts = [
        (secs / 3600, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
        (nanos / 1_000_000, "ms"),
        (nanos / 1_000 % 1_000, "us"),
        (nanos % 1_000, "ns"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n != 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect()
}
