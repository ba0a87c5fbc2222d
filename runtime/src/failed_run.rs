//! What a failed run leaves: one box, made at its first failure, that the
//! run fills as it compensates and that its [`SagaError`](crate::SagaError)
//! then owns. The report is built from it only when it is read.

use core::ops::Range;
use core::time::Duration;
use std::sync::OnceLock;

use crate::StepInfo;
use crate::context::{Phase, SagaId};
use crate::error::FailedCompensation;
use crate::report::{Outcome, RunOutcome, RunReport, StepRecord};

mod kept;

pub(crate) use kept::{Kept, Short, StepText};

/// What a failed run did about its failure: the step that failed, the
/// compensations that failed for good, and what its report is built from.
///
/// A saga's error owns one; read it through the error's accessors
/// ([`SagaError::report`](crate::SagaError::report),
/// [`undone`](crate::SagaError::undone),
/// [`failed_compensations`](crate::SagaError::failed_compensations)). The
/// report is built at the first read, unless hooks or `run_reported` needed
/// it at the end of the run.
#[derive(Debug)]
pub struct FailedRun {
    pub(crate) saga: &'static str,
    pub(crate) id: SagaId,
    /// The step that failed for good.
    pub(crate) step: &'static str,
    /// The compensations that failed for good, in the order they ran.
    pub(crate) failed: Vec<FailedCompensation>,
    /// What the report is built from, until it is built.
    pub(crate) pending: Option<Pending>,
    /// The report, once built.
    pub(crate) report: OnceLock<RunReport>,
    /// The steps undone, once read: taken from the records.
    pub(crate) undone: OnceLock<Vec<&'static str>>,
    /// The records that the run kept here rather than in its `Vec` (they
    /// follow those), and the failed step's error text that one of them
    /// reads: a failed run whose report nobody reads allocates for neither.
    pub(crate) kept: Kept,
    pub(crate) text: StepText,
}

/// The run's records as it left them (the plain successes not rebuilt), and
/// what rebuilding them needs.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) outcome: RunOutcome,
    pub(crate) duration: Option<Duration>,
    pub(crate) records: Vec<StepRecord>,
    pub(crate) steps: &'static [StepInfo],
    #[allow(clippy::box_collection)] // as the run keeps it
    pub(crate) skipped: Option<Box<Vec<Range<u32>>>>,
    pub(crate) succeeded: u32,
}

impl Pending {
    /// The report: the records with the plain successes rebuilt, each
    /// marked with its group.
    pub(crate) fn into_report(
        mut self,
        saga: &'static str,
        id: SagaId,
        kept: &Kept,
        text: &StepText,
    ) -> RunReport {
        kept.extend_into(&mut self.records, self.steps, text);
        let skipped = self.skipped.as_deref().map_or(&[][..], |s| s.as_slice());
        let mut records =
            crate::run::rebuild(self.records, self.steps, skipped, self.succeeded, true);
        mark_groups(&mut records, self.steps);
        RunReport {
            saga,
            id,
            outcome: self.outcome,
            duration: self.duration,
            records,
        }
    }
}

/// Marks each record with its step's group: the step table's, where
/// `#[saga]` marks each member.
pub(crate) fn mark_groups(records: &mut [StepRecord], steps: &[StepInfo]) {
    for r in records {
        r.group = steps.get(r.index as usize).and_then(StepInfo::group);
    }
}

impl FailedRun {
    pub(crate) fn new(saga: &'static str, id: SagaId) -> Self {
        FailedRun {
            saga,
            id,
            step: "",
            failed: Vec::new(),
            pending: None,
            report: OnceLock::new(),
            undone: OnceLock::new(),
            kept: Kept::new(),
            text: StepText::new(),
        }
    }

    /// The report, built now if it was not.
    pub(crate) fn report(&self) -> &RunReport {
        self.report.get_or_init(|| match &self.pending {
            Some(p) => Pending {
                records: p.records.clone(),
                skipped: p.skipped.clone(),
                ..*p
            }
            .into_report(self.saga, self.id, &self.kept, &self.text),
            // Not reached: the run leaves its records or its report.
            None => RunReport {
                saga: self.saga,
                id: self.id,
                outcome: RunOutcome::Compensated,
                duration: None,
                records: Vec::new(),
            },
        })
    }

    /// The steps undone, in the order their compensations ran: the
    /// compensations and cancels that succeeded.
    pub(crate) fn undone(&self) -> &[&'static str] {
        self.undone.get_or_init(|| {
            let (records, kept) = match (&self.pending, self.report.get()) {
                (_, Some(report)) => (&report.records, None),
                (Some(p), None) => (&p.records, Some(self.kept.undone(p.steps))),
                (None, None) => return Vec::new(),
            };
            records
                .iter()
                .filter(|r| {
                    matches!(r.phase, Phase::Compensation | Phase::Cancel)
                        && r.outcome == Outcome::Succeeded
                })
                .map(|r| r.step)
                .chain(kept.into_iter().flatten())
                .collect()
        })
    }
}
