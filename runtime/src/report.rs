//! What happened in one saga run, step by step.

use core::fmt;
use core::time::Duration;

use crate::context::{Phase, SagaId};

/// How a step or compensation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It succeeded (perhaps after retries).
    Succeeded,
    /// It returned an error on its last attempt.
    Failed,
    /// Its last attempt timed out.
    TimedOut,
    /// Its last attempt panicked.
    Panicked,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Succeeded => "ok",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed out",
            Outcome::Panicked => "panicked",
        }
    }
}

/// One step's, or one compensation's, part of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    pub(crate) group: Option<u32>,
    pub(crate) step: &'static str,
    pub(crate) function: &'static str,
    pub(crate) index: u32,
    pub(crate) phase: Phase,
    pub(crate) outcome: Outcome,
    pub(crate) attempts: u32,
    pub(crate) duration: Option<Duration>,
    pub(crate) error: Option<String>,
}

impl StepRecord {
    /// The step's name.
    pub fn step(&self) -> &'static str {
        self.step
    }

    /// The `sagaflow::join!` group the step ran in, counting the saga's
    /// groups from 0 (as `Saga::GROUPS` lists them), or `None` for a step that
    /// ran on its own.
    pub fn group(&self) -> Option<u32> {
        self.group
    }

    /// The function that ran: the step itself, its compensation, or a TCC
    /// step's confirm or cancel.
    pub fn function(&self) -> &'static str {
        self.function
    }

    /// The step's position in the saga, from 0.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Whether the step, its compensation, or a TCC step's confirm or cancel ran.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// How it ended.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Attempts made, from 1.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Time from the first attempt's start to the end, backoff included; `None` when
    /// the run was not timed. Runs are timed when the runner has hooks or the report
    /// was asked for ([`Runner::run_reported`](crate::Runner::run_reported)), or with
    /// [`Runner::with_timings`](crate::Runner::with_timings). Measured on the wall
    /// clock (`std::time::Instant`), so it does not follow tokio's paused clock.
    pub fn duration(&self) -> Option<Duration> {
        self.duration
    }

    /// The last error's text, if the last attempt failed; for a success after
    /// retries, the error that caused the last retry.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// How a whole run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunOutcome {
    /// Every step succeeded.
    Committed,
    /// A step failed and everything was undone.
    Compensated,
    /// A step failed and a compensation failed too.
    CompensationFailed,
}

/// Everything that happened in one saga run: each step's and each compensation's
/// outcome, attempts, timing and errors, in the order they ran.
///
/// Its `Display` is a summary table for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub(crate) saga: &'static str,
    pub(crate) id: SagaId,
    pub(crate) outcome: RunOutcome,
    pub(crate) duration: Option<Duration>,
    pub(crate) records: Vec<StepRecord>,
}

impl RunReport {
    /// The saga's name.
    pub fn saga(&self) -> &'static str {
        self.saga
    }

    /// The run's id.
    pub fn id(&self) -> SagaId {
        self.id
    }

    /// How the run ended.
    pub fn outcome(&self) -> RunOutcome {
        self.outcome
    }

    /// The run's wall-clock time, if it was timed (see [`StepRecord::duration`]).
    pub fn duration(&self) -> Option<Duration> {
        self.duration
    }

    /// Every step and compensation, in the order they ran.
    pub fn records(&self) -> &[StepRecord] {
        &self.records
    }

    /// The steps that ran forward, in order.
    pub fn steps(&self) -> impl Iterator<Item = &StepRecord> {
        self.records.iter().filter(|r| r.phase == Phase::Forward)
    }

    /// The compensations that ran, in order.
    pub fn compensations(&self) -> impl Iterator<Item = &StepRecord> {
        self.records
            .iter()
            .filter(|r| r.phase == Phase::Compensation)
    }

    /// The confirms of TCC steps that ran, in order.
    pub fn confirms(&self) -> impl Iterator<Item = &StepRecord> {
        self.records.iter().filter(|r| r.phase == Phase::Confirm)
    }

    /// The cancels of TCC steps that ran, in order.
    pub fn cancels(&self) -> impl Iterator<Item = &StepRecord> {
        self.records.iter().filter(|r| r.phase == Phase::Cancel)
    }

    /// The record of the step named `step` in the given phase.
    pub fn find(&self, step: &str, phase: Phase) -> Option<&StepRecord> {
        self.records
            .iter()
            .find(|r| r.step == step && r.phase == phase)
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = match self.outcome {
            RunOutcome::Committed => "committed",
            RunOutcome::Compensated => "compensated",
            RunOutcome::CompensationFailed => "compensation failed, needs manual repair",
        };
        write!(f, "saga `{}` {} ({})", self.saga, outcome, self.id)?;
        if let Some(d) = self.duration {
            write!(f, " in {}", humanize_short(d))?;
        }
        writeln!(f)?;
        let width = self
            .records
            .iter()
            .map(|r| label(r).chars().count())
            .max()
            .unwrap_or(0);
        for r in &self.records {
            let name = label(r);
            write!(
                f,
                "  {:<width$}  {:<9}  {} attempt{}  {}",
                name,
                r.outcome.word(),
                r.attempts,
                if r.attempts == 1 { " " } else { "s" },
                r.duration.map(humanize_short).unwrap_or_default(),
            )?;
            match (&r.error, r.outcome) {
                (Some(e), Outcome::Succeeded) => write!(f, "  (retried after: {e})")?,
                (Some(e), _) => write!(f, "  ({e})")?,
                (None, _) => {}
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// A record's name in the report: `undo: ` before a compensation (`confirm: `
/// and `cancel: ` before a TCC step's confirm and cancel), and the
/// group, counted from 1, after a member of one (`book_flight ‖1`).
fn label(r: &StepRecord) -> String {
    let mut name = match r.phase {
        Phase::Forward => r.function.to_string(),
        Phase::Compensation => format!("undo: {}", r.function),
        Phase::Confirm => format!("confirm: {}", r.function),
        Phase::Cancel => format!("cancel: {}", r.function),
    };
    if let Some(g) = r.group {
        name.push_str(&format!(" ‖{}", g + 1));
    }
    name
}

/// One decimal in the unit that fits, so that a column of durations lines up.
fn humanize_short(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if d >= Duration::from_secs(1) {
        format!("{secs:.1}s")
    } else if d >= Duration::from_millis(1) {
        format!("{:.1}ms", secs * 1e3)
    } else {
        format!("{:.1}µs", secs * 1e6)
    }
}
