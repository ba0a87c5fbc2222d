//! The run's report: records of plain successes rebuilt at the end, and the
//! report kept for a caller that takes it.

use super::*;

impl<'h, H: Hooks, J: Journal> Run<'h, H, J> {
    /// Every record in the order things ran: the plain successes that were not
    /// pushed are rebuilt from the step table, since forward steps run in order.
    pub(super) fn all_records(&mut self) -> Vec<StepRecord> {
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
            // Confirms ran before every forward step not kept yet: the
            // decision to commit kept those before it (`Run::decide`).
            while let Some(r) = kept.next_if(|r| r.phase == Phase::Confirm) {
                all.push(r);
            }
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
    pub(super) fn finish(&mut self, outcome: RunOutcome) -> RunReport {
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

    /// Ends a run in memory whose steps all succeeded: nothing to write.
    #[inline]
    pub fn committed_in_memory(&mut self) {
        if self.reported {
            self.finish(RunOutcome::Committed);
        }
    }

    pub(crate) fn take_report(&mut self) -> Option<RunReport> {
        self.report.take().map(|r| *r)
    }
}
