//! What the durable executor answers: what became of recovered sagas, and why
//! it could not do what it was asked.

use core::fmt;

use super::store::{SagaStatus, StoreError};
use crate::{FailedCompensation, SagaError, SagaId};

/// Why a run stopped before its end, writing nothing more.
pub(crate) enum Stopped {
    /// The store failed.
    Halted(StoreError),
    /// What the journal holds cannot be resumed by this code (a stored step
    /// output no longer reads as its type).
    Refused(String),
}

/// What became of one recovered saga.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Its id.
    pub id: SagaId,
    /// Its saga type's name.
    pub saga: String,
    /// How it ended.
    pub outcome: RecoveredOutcome,
}

/// How a recovered saga ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveredOutcome {
    /// Every step succeeded.
    Committed,
    /// A step failed and every completed step was undone.
    Compensated {
        /// The failed step.
        failed_step: String,
        /// The steps undone, in the order their compensations ran (during this
        /// run or before the restart).
        undone: Vec<String>,
    },
    /// A compensation failed for good: the saga is parked for a person.
    Parked {
        /// The failed step.
        failed_step: String,
        /// The compensations that failed.
        failed: Vec<FailedCompensation>,
    },
    /// The store failed while it ran; it stays unfinished in the store.
    Halted(StoreError),
    /// It was not run, or stopped before it wrote anything: unknown type,
    /// changed definition (including a stored step output that no longer reads
    /// as the step's output type), or missing resource. Its record is untouched.
    Refused(String),
}

impl RecoveredOutcome {
    pub(crate) fn of<T, E>(result: Result<T, SagaError<E>>, stopped: Option<Stopped>) -> Self {
        match stopped {
            Some(Stopped::Halted(error)) => return RecoveredOutcome::Halted(error),
            Some(Stopped::Refused(reason)) => return RecoveredOutcome::Refused(reason),
            None => {}
        }
        match result {
            Ok(_) => RecoveredOutcome::Committed,
            Err(e) if e.is_compensated() => RecoveredOutcome::Compensated {
                failed_step: e.failed_step().to_owned(),
                undone: e.undone().iter().map(|s| (*s).to_owned()).collect(),
            },
            Err(e) => RecoveredOutcome::Parked {
                failed_step: e.failed_step().to_owned(),
                failed: e.failed_compensations().to_vec(),
            },
        }
    }
}

/// What [`Executor::recover`](super::Executor::recover) found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Each saga it took up, in the order they ended.
    pub sagas: Vec<Recovered>,
    /// Unfinished sagas it left alone because this executor (or another over the
    /// same store, if the store shares its [`Claims`](super::Claims)) was already running them.
    pub already_running: usize,
    /// Finished sagas purged by the executor's retention
    /// ([`Executor::retention`](super::Executor::retention)) before it recovered.
    pub purged: usize,
}

impl RecoveryReport {
    /// How many sagas ended with an outcome matching `f`.
    pub fn count(&self, f: impl Fn(&RecoveredOutcome) -> bool) -> usize {
        self.sagas.iter().filter(|s| f(&s.outcome)).count()
    }
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sagas.is_empty() {
            writeln!(f, "recovery: nothing unfinished")?;
        } else {
            writeln!(f, "recovery: {} unfinished saga(s)", self.sagas.len())?;
        }
        for s in &self.sagas {
            write!(f, "  {} {}: ", s.saga, s.id)?;
            match &s.outcome {
                RecoveredOutcome::Committed => writeln!(f, "finished, committed")?,
                RecoveredOutcome::Compensated {
                    failed_step,
                    undone,
                } => writeln!(
                    f,
                    "`{failed_step}` had failed; compensated ({})",
                    if undone.is_empty() {
                        "nothing to undo".to_owned()
                    } else {
                        format!("undone: {}", undone.join(", "))
                    }
                )?,
                RecoveredOutcome::Parked {
                    failed_step,
                    failed,
                } => {
                    write!(f, "`{failed_step}` had failed; parked, needs a person:")?;
                    for c in failed {
                        write!(f, " {c};")?;
                    }
                    writeln!(f)?;
                }
                RecoveredOutcome::Halted(e) => writeln!(f, "stopped again: {e}")?,
                RecoveredOutcome::Refused(reason) => writeln!(f, "refused: {reason}")?,
            }
        }
        if self.purged > 0 {
            writeln!(
                f,
                "  ({} finished saga(s) past their retention purged)",
                self.purged
            )?;
        }
        if self.already_running > 0 {
            writeln!(f, "  ({} already running here)", self.already_running)?;
        }
        Ok(())
    }
}

/// Why the executor could not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DurableError {
    /// The store failed.
    Store(StoreError),
    /// The saga type is not registered, so it could not be recovered after a crash.
    NotRegistered {
        /// The saga's name.
        saga: &'static str,
    },
    /// The saga's input could not be serialized.
    Input {
        /// The saga's name.
        saga: &'static str,
        /// What went wrong.
        message: String,
    },
    /// No saga has this id.
    UnknownSaga {
        /// The id asked for.
        id: SagaId,
    },
    /// What the store holds for this saga is not what was asked for, or does
    /// not read (a saga of another type, a committed saga without its output).
    Stored {
        /// The saga's id.
        id: SagaId,
        /// What is wrong.
        message: String,
    },
    /// The saga is not parked, so there is nothing to retry or resolve.
    NotParked {
        /// Its id.
        id: SagaId,
        /// Where it stands.
        status: SagaStatus,
    },
}

impl fmt::Display for DurableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurableError::Store(e) => e.fmt(f),
            DurableError::NotRegistered { saga } => write!(
                f,
                "saga `{saga}` is not registered on this executor, so it could not be recovered after a crash; add `.register::<…Saga>()`"
            ),
            DurableError::Input { saga, message } => {
                write!(
                    f,
                    "the input of saga `{saga}` could not be persisted: {message}"
                )
            }
            DurableError::UnknownSaga { id } => write!(f, "no saga {id} in the store"),
            DurableError::Stored { id, message } => write!(f, "saga {id}: {message}"),
            DurableError::NotParked { id, status } => {
                write!(f, "saga {id} is {status}, not parked")
            }
        }
    }
}

impl std::error::Error for DurableError {}

impl From<StoreError> for DurableError {
    fn from(e: StoreError) -> Self {
        DurableError::Store(e)
    }
}
