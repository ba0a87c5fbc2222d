//! The failure and repeat sweeps: every step made to fail, every step and
//! compensation delivered twice.

use super::*;

impl<'a, S> SagaTest<'a, S>
where
    S: DurableSaga<Plan>,
{
    /// Runs the saga once clean, then once per step and fault with that step made
    /// to fail, checking the compensations and the invariant after each run.
    pub fn failure_sweep(&mut self) -> Result<SweepReport, SweepFailure> {
        let runtime = paused_runtime()?;
        runtime.block_on(async {
            let sweep = "failure sweep";
            let mut report = SweepReport::default();
            let clean = self.run_once(Plan::default()).await;
            let summary = RunSummary::of("no fault".to_owned(), &clean).with_messages(core::mem::take(&mut self.sent));
            report.cases.push(summary.case.clone());
            self.check(sweep, report.runs(), &summary)?;
            for (index, info) in S::STEPS.iter().enumerate() {
                let index = index as u32;
                let compensatable_before = undone_when_failing::<S>(index);
                for fault in self.faults.clone() {
                    let retriable = info.kind() == StepKind::Retriable;
                    let times = if retriable { Some(2) } else { None };
                    let case = if retriable {
                        format!("`{}` (retriable) made to fail twice by {fault}", info.name())
                    } else {
                        format!("`{}` made to fail by {fault}", info.name())
                    };
                    let result = self.run_once(Plan::failing(index, fault, times)).await;
                    let summary = RunSummary::of(case.clone(), &result).with_messages(core::mem::take(&mut self.sent));
                    report.cases.push(case.clone());
                    let run = report.runs();
                    let wrong = |what: String| SweepFailure {
                        message: format!("{sweep}, run {run} ({case}): {what}"),
                    };
                    if retriable {
                        if let Err(e) = &result {
                            return Err(wrong(format!(
                                "a retriable step must be retried until it succeeds, but the saga ended with `{}` failed ({})",
                                e.failed_step(),
                                e.report().records().iter().rev().find_map(|r| r.error()).unwrap_or("no error text")
                            )));
                        }
                    } else {
                        let Err(e) = &result else {
                            return Err(wrong(
                                "the saga committed although the step failed for good".to_owned(),
                            ));
                        };
                        if e.failed_step() != info.name() {
                            return Err(wrong(format!(
                                "the saga blamed `{}`, not `{}`",
                                e.failed_step(),
                                info.name()
                            )));
                        }
                        if !e.failed_compensations().is_empty() {
                            let failed: Vec<String> =
                                e.failed_compensations().iter().map(|c| c.to_string()).collect();
                            return Err(wrong(format!(
                                "a compensation failed: {}",
                                failed.join("; ")
                            )));
                        }
                        if e.undone() != compensatable_before.as_slice() {
                            return Err(wrong(format!(
                                "expected {} to be undone, in that order, but {} {}",
                                names(&compensatable_before),
                                names(e.undone()),
                                if e.undone().len() == 1 { "was" } else { "were" }
                            )));
                        }
                    }
                    self.check(sweep, run, &summary)?;
                }
            }
            self.fail_confirms(sweep, &mut report).await?;
            self.overlap_runs(&mut report).await?;
            Ok(report)
        })
    }

    /// Runs each step twice, and each compensation twice (after making a later
    /// step fail so that it runs), checking the invariant after each run.
    pub fn repeat_sweep(&mut self) -> Result<SweepReport, SweepFailure> {
        let runtime = paused_runtime()?;
        runtime.block_on(async {
            let sweep = "repeat sweep";
            let mut report = SweepReport::default();
            for (index, info) in S::STEPS.iter().enumerate() {
                let case = format!("`{}` delivered twice", info.name());
                let result = self
                    .run_once(Plan {
                        repeat: Some((index as u32, Phase::Forward)),
                        ..Plan::default()
                    })
                    .await;
                report.cases.push(case.clone());
                let summary = RunSummary::of(case, &result).with_messages(core::mem::take(&mut self.sent));
                self.check(sweep, report.runs(), &summary)?;
            }
            for (index, info) in S::STEPS.iter().enumerate() {
                let (true, Some(compensation)) = (info.kind().is_undone(), info.compensation())
                else {
                    continue;
                };
                let phase = if info.kind() == StepKind::Tcc {
                    Phase::Cancel
                } else {
                    Phase::Compensation
                };
                // A sibling in its `sagaflow::join!` group, or else the first
                // later step, that can fail for good makes this one's
                // compensation run.
                let can_fail = |(_, s): &(usize, &crate::StepInfo)| s.kind() != StepKind::Retriable;
                let sibling = S::GROUPS
                    .iter()
                    .find(|r| r.contains(&(index as u32)))
                    .and_then(|r| {
                        let (start, end) = (r.start as usize, r.end as usize);
                        S::STEPS.iter().enumerate().take(end).skip(start)
                            .filter(|(i, _)| *i != index)
                            .find(can_fail)
                    });
                let later = || S::STEPS.iter().enumerate().skip(index + 1).find(can_fail);
                let Some((later, trigger)) = sibling.or_else(later) else {
                    continue;
                };
                let case = format!(
                    "`{}` made to fail, so that `{compensation}` (undoing `{}`) runs, delivered twice",
                    trigger.name(),
                    info.name()
                );
                let result = self
                    .run_once(Plan {
                        repeat: Some((index as u32, phase)),
                        ..Plan::failing(later as u32, Fault::Error, None)
                    })
                    .await;
                report.cases.push(case.clone());
                let summary = RunSummary::of(case.clone(), &result).with_messages(core::mem::take(&mut self.sent));
                if let Err(e) = &result
                    && !e.failed_compensations().is_empty() {
                        let failed: Vec<String> =
                            e.failed_compensations().iter().map(|c| c.to_string()).collect();
                        return Err(SweepFailure {
                            message: format!(
                                "{sweep}, run {} ({case}): a compensation failed: {}",
                                report.runs(),
                                failed.join("; ")
                            ),
                        });
                    }
                self.check(sweep, report.runs(), &summary)?;
            }
            self.repeat_tcc(sweep, &mut report).await?;
            Ok(report)
        })
    }

    /// The repeat sweep's TCC cases: each confirm delivered twice, and each
    /// cancel of a try that failed (with `None`) delivered twice.
    async fn repeat_tcc(
        &mut self,
        sweep: &str,
        report: &mut SweepReport,
    ) -> Result<(), SweepFailure> {
        for (index, info) in S::STEPS.iter().enumerate() {
            let (StepKind::Tcc, Some(confirm), Some(cancel)) =
                (info.kind(), info.confirm(), info.compensation())
            else {
                continue;
            };
            let index = index as u32;
            let cases = [
                (
                    format!("`{confirm}` (confirming `{}`) delivered twice", info.name()),
                    Plan {
                        repeat: Some((index, Phase::Confirm)),
                        ..Plan::default()
                    },
                ),
                (
                    format!(
                        "`{}` made to fail, so that `{cancel}` runs with `None`, delivered twice",
                        info.name()
                    ),
                    Plan {
                        fail: Some((index, Fault::Error, None)),
                        repeat: Some((index, Phase::Cancel)),
                        ..Plan::default()
                    },
                ),
            ];
            for (case, plan) in cases {
                let result = self.run_once(plan).await;
                report.cases.push(case.clone());
                let summary =
                    RunSummary::of(case, &result).with_messages(core::mem::take(&mut self.sent));
                self.check(sweep, report.runs(), &summary)?;
            }
        }
        Ok(())
    }

    /// The failure sweep's TCC cases: each confirm made to fail three times,
    /// which must be retried until it succeeds and the saga commit.
    async fn fail_confirms(
        &mut self,
        sweep: &str,
        report: &mut SweepReport,
    ) -> Result<(), SweepFailure> {
        for (index, info) in S::STEPS.iter().enumerate() {
            let (StepKind::Tcc, Some(confirm)) = (info.kind(), info.confirm()) else {
                continue;
            };
            let case = format!(
                "`{confirm}` (confirming `{}`) made to fail 3 times",
                info.name()
            );
            let result = self
                .run_once(Plan {
                    fail_confirm: Some((index as u32, 3)),
                    ..Plan::default()
                })
                .await;
            report.cases.push(case.clone());
            let run = report.runs();
            let wrong = |what: String| SweepFailure {
                message: format!("{sweep}, run {run} ({case}): {what}"),
            };
            // A cancel after the decision would show in the invariant: the
            // runtime never runs one once the saga decided.
            if let Err(e) = &result {
                return Err(wrong(format!(
                    "a confirm is retried until it succeeds, but the saga ended with `{}` failed",
                    e.failed_step()
                )));
            }
            let summary =
                RunSummary::of(case, &result).with_messages(core::mem::take(&mut self.sent));
            self.check(sweep, run, &summary)?;
        }
        Ok(())
    }
}

/// What a saga undoes when step `index` fails for good and every other step
/// works: the other members of its `sagaflow::join!` group, if it is in one
/// (latest first), then the steps before it (or its group), latest first;
/// only the compensatable and TCC ones, and first the step itself if it is a
/// TCC step (its try is cancelled with `None`).
pub(super) fn undone_when_failing<S: Saga>(index: u32) -> Vec<&'static str> {
    let group = S::GROUPS.iter().find(|r| r.contains(&index));
    let start = group.map_or(index, |r| r.start);
    let siblings = group
        .into_iter()
        .flat_map(|r| r.clone().rev())
        .filter(|&i| i != index);
    // A TCC step's try that failed is cancelled first (never in a group).
    let own =
        (group.is_none() && S::STEPS[index as usize].kind() == StepKind::Tcc).then_some(index);
    own.into_iter()
        .chain(siblings)
        .chain((0..start).rev())
        .map(|i| &S::STEPS[i as usize])
        .filter(|s| s.kind().is_undone())
        .map(|s| s.name())
        .collect()
}

pub(super) fn names<T: AsRef<str>>(names: &[T]) -> String {
    if names.is_empty() {
        return "nothing".to_owned();
    }
    names
        .iter()
        .map(|n| format!("`{}`", n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}
