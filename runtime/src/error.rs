//! How a saga that did not commit tells what happened.

use core::fmt;
use core::time::Duration;

use crate::FailedRun;
use crate::report::{Outcome, RunReport, StepRecord};

/// Why a step failed for good, after its retries.
#[derive(Debug)]
#[non_exhaustive]
pub enum StepFailure<E> {
    /// The step returned this error.
    Error(E),
    /// An attempt took longer than the step's `timeout`.
    TimedOut {
        /// The step's per-attempt timeout.
        after: Duration,
    },
    /// The step panicked; the panic was caught and the saga compensated.
    Panicked {
        /// The panic's message, when it had one.
        message: String,
    },
    /// A durable saga's step that failed before the executor restarted: its error
    /// as persisted, in text.
    Recovered {
        /// The persisted error text.
        message: String,
    },
    /// A fault injected by the test kit (`sagaflow::testing`).
    Injected {
        /// What was injected.
        message: String,
    },
    /// A durable saga's step succeeded but its output could not be persisted (or
    /// read back), so the saga cannot go on past it and treats it as failed.
    NotPersisted {
        /// What went wrong.
        message: String,
    },
    /// Messages the step (or the saga body, at its commit) sent could not be
    /// made or handed over: not serializable, or refused by the in-memory
    /// runner's sink. The transition they belong to did not happen.
    NotSent {
        /// What went wrong.
        message: String,
    },
}

impl<E> StepFailure<E> {
    /// The step's own error, `None` for a timeout or a panic.
    pub fn cause(&self) -> Option<&E> {
        match self {
            StepFailure::Error(e) => Some(e),
            _ => None,
        }
    }

    /// The same failure with the error converted, as `?` would convert it.
    pub fn map_err<F>(self, f: impl FnOnce(E) -> F) -> StepFailure<F> {
        match self {
            StepFailure::Error(e) => StepFailure::Error(f(e)),
            StepFailure::TimedOut { after } => StepFailure::TimedOut { after },
            StepFailure::Panicked { message } => StepFailure::Panicked { message },
            StepFailure::Recovered { message } => StepFailure::Recovered { message },
            StepFailure::Injected { message } => StepFailure::Injected { message },
            StepFailure::NotPersisted { message } => StepFailure::NotPersisted { message },
            StepFailure::NotSent { message } => StepFailure::NotSent { message },
        }
    }
}

impl<E: fmt::Display> fmt::Display for StepFailure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepFailure::Error(e) => e.fmt(f),
            StepFailure::TimedOut { after } => {
                write!(
                    f,
                    "timed out after {}",
                    sagaflow_graph::format_duration(*after)
                )
            }
            StepFailure::Panicked { message } => write!(f, "panicked: {message}"),
            StepFailure::Recovered { message } => write!(f, "{message} (before a restart)"),
            StepFailure::Injected { message } => write!(f, "{message} (injected)"),
            StepFailure::NotPersisted { message } => {
                write!(f, "its output could not be persisted: {message}")
            }
            StepFailure::NotSent { message } => write!(f, "its messages were not sent: {message}"),
        }
    }
}

/// A compensation that still failed after its retries: the effect of its step
/// is still in place and needs a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedCompensation {
    pub(crate) step: &'static str,
    pub(crate) compensation: &'static str,
    pub(crate) error: String,
    pub(crate) attempts: u32,
}

impl FailedCompensation {
    /// The name of the step whose effect could not be undone.
    pub fn step(&self) -> &str {
        self.step
    }

    /// The compensation function's name.
    pub fn compensation(&self) -> &str {
        self.compensation
    }

    /// The last error's text (its `Display`), or what timed out or panicked.
    pub fn error(&self) -> &str {
        &self.error
    }

    /// How many times the compensation was tried.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

impl fmt::Display for FailedCompensation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` (undoing `{}`) failed after {} attempt{}: {}",
            self.compensation,
            self.step,
            self.attempts,
            plural(self.attempts),
            self.error
        )
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Why a saga did not commit.
///
/// ```
/// # use sagaflow::{SagaError, StepFailure};
/// fn explain(err: &SagaError<std::io::Error>) -> String {
///     if err.is_compensated() {
///         format!("`{}` failed and everything was undone", err.failed_step())
///     } else {
///         let broken: Vec<_> = err.failed_compensations().iter().map(|c| c.step()).collect();
///         format!("needs manual repair of {broken:?}")
///     }
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SagaError<E> {
    /// A step failed for good and every completed compensatable step was undone.
    Compensated {
        /// Why it failed.
        failure: StepFailure<E>,
        /// The rest, one box: which step failed, what was undone, and the
        /// report (built when it is read). See the accessors.
        run: Box<FailedRun>,
    },
    /// A step failed for good and at least one compensation failed too. The other
    /// steps were still compensated; the failed ones need a person
    /// ([`failed_compensations`](Self::failed_compensations)).
    CompensationFailed {
        /// Why it failed.
        failure: StepFailure<E>,
        /// The rest, one box: which step failed, what was undone, which
        /// compensations failed, and the report (built when it is read).
        run: Box<FailedRun>,
    },
}

impl<E> SagaError<E> {
    fn run(&self) -> &FailedRun {
        match self {
            SagaError::Compensated { run, .. } | SagaError::CompensationFailed { run, .. } => run,
        }
    }

    /// The name of the step function that failed.
    pub fn failed_step(&self) -> &str {
        self.run().step
    }

    /// Every step that failed for good, the one that failed first
    /// ([`failed_step`](Self::failed_step)) first, then the others in their
    /// order in the saga: more than one when several members of a
    /// `sagaflow::join!` group failed. Each is the step's row of the
    /// [`report`](Self::report), with its error text and attempts.
    pub fn failed_steps(&self) -> Vec<&StepRecord> {
        let first = self.failed_step();
        let mut failed: Vec<&StepRecord> = self
            .report()
            .steps()
            .filter(|r| r.outcome() != Outcome::Succeeded)
            .collect();
        if let Some(pos) = failed.iter().position(|r| r.step() == first) {
            let record = failed.remove(pos);
            failed.insert(0, record);
        }
        failed
    }

    /// How the step failed.
    pub fn failure(&self) -> &StepFailure<E> {
        match self {
            SagaError::Compensated { failure, .. }
            | SagaError::CompensationFailed { failure, .. } => failure,
        }
    }

    /// The step's own error; `None` if it timed out or panicked.
    pub fn cause(&self) -> Option<&E> {
        self.failure().cause()
    }

    /// The step's own error, by value.
    pub fn into_cause(self) -> Option<E> {
        match self {
            SagaError::Compensated { failure, .. }
            | SagaError::CompensationFailed { failure, .. } => match failure {
                StepFailure::Error(e) => Some(e),
                _ => None,
            },
        }
    }

    /// Whether every completed step was undone.
    pub fn is_compensated(&self) -> bool {
        matches!(self, SagaError::Compensated { .. })
    }

    /// The steps that were undone, in the order their compensations ran.
    pub fn undone(&self) -> &[&'static str] {
        self.run().undone()
    }

    /// Each compensation that failed for good, in the order they ran.
    pub fn failed_compensations(&self) -> &[FailedCompensation] {
        &self.run().failed
    }

    /// Everything that happened in the run: each step's and compensation's outcome,
    /// attempts, timings and errors. Built at the first call, unless hooks
    /// or `run_reported` needed it when the run ended.
    pub fn report(&self) -> &RunReport {
        self.run().report()
    }
}

fn write_names(f: &mut fmt::Formatter<'_>, names: &[&str]) -> fmt::Result {
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "`{name}`")?;
    }
    Ok(())
}

impl<E: fmt::Display> fmt::Display for SagaError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "saga step `{}` failed ({})",
            self.failed_step(),
            self.failure()
        )?;
        // The other members of its group that failed too.
        for other in self.failed_steps().iter().skip(1) {
            write!(f, "; `{}` failed too", other.step())?;
            if let Some(error) = other.error() {
                write!(f, " ({error})")?;
            }
        }
        let undone = self.undone();
        match self {
            SagaError::Compensated { .. } => {
                if undone.is_empty() {
                    f.write_str("; nothing had to be undone")
                } else {
                    f.write_str("; undone: ")?;
                    write_names(f, undone)
                }
            }
            SagaError::CompensationFailed { .. } => {
                f.write_str("; could not undo ")?;
                for (i, c) in self.failed_compensations().iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "`{}` ({})", c.step, c.error)?;
                }
                f.write_str(", which needs manual repair")?;
                if !undone.is_empty() {
                    f.write_str("; undone: ")?;
                    write_names(f, undone)?;
                }
                Ok(())
            }
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for SagaError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
