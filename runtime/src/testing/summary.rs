//! What the sweeps tell: a summary of each run for the invariant, the report
//! of a sweep that found nothing wrong, and the failure of one that did.

use super::*;

/// What one run of a sweep did, for the invariant to judge.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub(super) case: String,
    pub(super) committed: bool,
    pub(super) failed_step: Option<String>,
    pub(super) undone: Vec<String>,
    pub(super) failed_compensations: Vec<FailedCompensation>,
    pub(super) report: Option<RunReport>,
    pub(super) messages: Vec<Message>,
}

impl RunSummary {
    /// What this run did to the saga, in words (`"`charge` made to fail by a timeout"`).
    pub fn case(&self) -> &str {
        &self.case
    }

    /// Whether every step succeeded.
    pub fn committed(&self) -> bool {
        self.committed
    }

    /// The step that failed for good, if one did.
    pub fn failed_step(&self) -> Option<&str> {
        self.failed_step.as_deref()
    }

    /// The steps undone, in the order their compensations ran.
    pub fn undone(&self) -> &[String] {
        &self.undone
    }

    /// The compensations that failed for good.
    pub fn failed_compensations(&self) -> &[FailedCompensation] {
        &self.failed_compensations
    }

    /// What the run sent through the outbox, in order: what its steps and
    /// compensations sent with their outcomes, and what its body sent with its
    /// commit. In the crash sweep, the messages stored with the saga after
    /// recovery.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    pub(super) fn with_messages(mut self, messages: Vec<Message>) -> Self {
        self.messages = messages;
        self
    }

    /// The run's report, when the run was in memory.
    pub fn report(&self) -> Option<&RunReport> {
        self.report.as_ref()
    }

    pub(super) fn of<T, E>(case: String, result: &Result<T, SagaError<E>>) -> Self {
        match result {
            Ok(_) => RunSummary {
                case,
                committed: true,
                failed_step: None,
                undone: Vec::new(),
                failed_compensations: Vec::new(),
                report: None,
                messages: Vec::new(),
            },
            Err(e) => RunSummary {
                case,
                committed: false,
                failed_step: Some(e.failed_step().to_owned()),
                undone: e.undone().iter().map(|s| (*s).to_owned()).collect(),
                failed_compensations: e.failed_compensations().to_vec(),
                report: Some(e.report().clone()),
                messages: Vec::new(),
            },
        }
    }
}

/// A sweep found a broken case. Its `Display` names the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepFailure {
    pub(super) message: String,
}

impl SweepFailure {
    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SweepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SweepFailure {}

/// What a sweep ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub(super) cases: Vec<String>,
    /// The arms of the saga's branches that no run took.
    pub(super) untaken_arms: Vec<String>,
}

impl SweepReport {
    /// How many runs the sweep made.
    pub fn runs(&self) -> usize {
        self.cases.len()
    }

    /// What each run did, in order.
    pub fn cases(&self) -> &[String] {
        &self.cases
    }
}

impl fmt::Display for SweepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} runs, all as expected:", self.cases.len())?;
        for case in &self.cases {
            writeln!(f, "  {case}")?;
        }
        for arm in &self.untaken_arms {
            writeln!(f, "  no run took {arm}")?;
        }
        Ok(())
    }
}
