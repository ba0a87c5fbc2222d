//! The run's report: records of plain successes rebuilt at the end, and the
//! report kept for a caller that takes it.

use super::*;

impl<'h, H: Hooks, J: Journal> Run<'h, H, J> {
    /// Every record in the order things ran: the plain successes that were not
    /// pushed are rebuilt from the step table, since forward steps run in
    /// order (passing over the arms not taken). In place when the records have
    /// room for them, as a failed run's have (`push_failure` makes it): the
    /// output is the kept records in their order, with the rebuilt ones at
    /// their steps' positions on the path.
    pub(super) fn all_records(&mut self) -> Vec<StepRecord> {
        // The records the failure's box keeps come last.
        if let Some(run) = self.failure.as_deref_mut() {
            run.kept.spill(&mut self.records, self.steps, &run.text);
        }
        let kept = core::mem::take(&mut self.records);
        let skipped = self.skipped.as_deref().map_or(&[][..], |s| s.as_slice());
        rebuild(
            kept,
            self.steps,
            skipped,
            self.succeeded,
            self.failure.is_some(),
        )
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
        crate::failed_run::mark_groups(&mut report.records, self.steps);
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

    /// A failed run's report, or what it is built from when nobody reads
    /// it at the end (no hooks, no `run_reported`): the error builds it
    /// when it is read.
    pub(super) fn finish_failed(&mut self, outcome: RunOutcome, run: &mut FailedRun) {
        if self.keeps_report || !H::__SILENT {
            // The box is out of the run by now: what it keeps goes in first.
            run.kept.spill(&mut self.records, self.steps, &run.text);
            let report = self.finish(outcome);
            // Set once: the box is this run's, and nothing read it yet.
            let _ = run.report.set(report);
            return;
        }
        run.pending = Some(Pending {
            outcome,
            duration: self.started.map(|s| s.elapsed()),
            records: core::mem::take(&mut self.records),
            steps: self.steps,
            skipped: self.skipped.take(),
            succeeded: self.succeeded,
        });
    }

    pub(crate) fn take_report(&mut self) -> Option<RunReport> {
        self.report.take().map(|r| *r)
    }
}

/// [`Run::all_records`] over what it reads: `kept` records, the step table,
/// the arms not taken, the plain successes counted and whether a step
/// failed; a failed run's report calls it when it is read.
pub(crate) fn rebuild(
    mut kept: Vec<StepRecord>,
    steps: &'static [StepInfo],
    skipped: &[core::ops::Range<u32>],
    succeeded: u32,
    failed: bool,
) -> Vec<StepRecord> {
    let on_path = |i: &usize| !skipped.iter().any(|r| r.contains(&(*i as u32)));
    // At most the steps on the path: a saga without steps fails its commit
    // with a failure of its own (its messages), which has a record but no step.
    let path_len = (0..steps.len()).filter(on_path).count();
    let forward_run = (succeeded as usize + usize::from(failed)).min(path_len);
    // The end of the part of the step table that the first `forward_run`
    // steps on the path cover, so that they can be walked from either end.
    let end = (0..steps.len())
        .filter(on_path)
        .nth(forward_run.wrapping_sub(1))
        .map_or(0, |i| i + 1);
    let path = || (0..end).filter(on_path);
    // The kept records that take positions on the path: a forward record
    // at the position of its step, in order.
    // A TCC saga's confirms stand among them, where the decision was made.
    let confirms = kept.iter().any(|r| r.phase == Phase::Confirm);
    let mut matched = 0;
    let mut at = 0;
    for index in path() {
        while kept.get(at).is_some_and(|r| r.phase == Phase::Confirm) {
            at += 1;
        }
        match kept.get(at) {
            Some(r) if r.phase == Phase::Forward && r.index as usize == index => {
                matched += 1;
                at += 1;
            }
            _ => {}
        }
    }
    let missing = forward_run - matched;
    if missing == 0 {
        // Every forward step has a record already (a timed run).
        return kept;
    }
    let rebuilt = |index: usize| {
        let info = &steps[index];
        StepRecord {
            group: None,
            step: info.name(),
            function: info.name(),
            index: index as u32,
            phase: Phase::Forward,
            outcome: Outcome::Succeeded,
            attempts: 1,
            duration: None,
            error: None,
        }
    };
    if confirms || kept.capacity() - kept.len() < missing {
        let mut all = Vec::with_capacity(kept.len() + missing);
        let mut kept = kept.into_iter();
        for index in path() {
            // Confirms ran before every forward step not kept yet: the
            // decision to commit kept those before it (`Run::decide`).
            while kept
                .as_slice()
                .first()
                .is_some_and(|r| r.phase == Phase::Confirm)
            {
                all.extend(kept.next());
            }
            match kept.as_slice().first() {
                Some(r) if r.phase == Phase::Forward && r.index as usize == index => {
                    all.extend(kept.next());
                }
                _ => all.push(rebuilt(index)),
            }
        }
        all.extend(kept);
        return all;
    }
    // In place, from the back: the records after the forward ones move
    // `missing` places on, then each position below `forward_run` takes
    // its kept record or a rebuilt one; positions above the next kept
    // record to place are free all along.
    let len = kept.len();
    kept.resize_with(len + missing, || rebuilt(0));
    for j in (matched..len).rev() {
        kept.swap(j, j + missing);
    }
    let mut next = matched;
    for (position, index) in (0..forward_run).rev().zip(path().rev()) {
        if next > 0 && kept[next - 1].index as usize == index {
            next -= 1;
            kept.swap(next, position);
        } else {
            kept[position] = rebuilt(index);
        }
    }
    kept
}
