//! The failure and repeat sweeps: every step made to fail, every step and
//! compensation delivered twice.

use super::*;

impl<'a, S> SagaTest<'a, S>
where
    S: DurableSaga<Plan>,
{
    /// Runs the saga once clean, then once per step and fault with that step made
    /// to fail, checking the compensations and the invariant after each run.
    ///
    /// A step in an arm that the input does not take is not reached: its run
    /// is listed as such, and checked against the invariant only.
    pub fn failure_sweep(&mut self) -> Result<SweepReport, SweepFailure> {
        let runtime = paused_runtime()?;
        runtime.block_on(async {
            self.start_sweep();
            let mut report = SweepReport::default();
            for input in 0..self.inputs {
                self.input = input;
                self.failure_sweep_input(&mut report).await?;
            }
            self.end_sweep("failure sweep", report)
        })
    }

    async fn failure_sweep_input(&mut self, report: &mut SweepReport) -> Result<(), SweepFailure> {
        {
            let sweep = "failure sweep";
            let prefix = self.input_prefix();
            let clean = self.run_once(Plan::default()).await;
            let summary = RunSummary::of(format!("{prefix}no fault"), &clean)
                .with_messages(core::mem::take(&mut self.sent));
            report.cases.push(summary.case.clone());
            self.check(sweep, report.runs(), &summary)?;
            for (index, info) in S::STEPS.iter().enumerate() {
                let index = index as u32;
                for fault in self.faults.clone() {
                    let retriable = info.kind() == StepKind::Retriable;
                    let times = if retriable { Some(2) } else { None };
                    let mut case = if retriable {
                        format!(
                            "{prefix}`{}` (retriable) made to fail twice by {fault}",
                            info.name()
                        )
                    } else {
                        format!("{prefix}`{}` made to fail by {fault}", info.name())
                    };
                    let result = self.run_once(Plan::failing(index, fault, times)).await;
                    let reached = self.last_reached;
                    if !reached {
                        case.push_str(" (not reached: in an arm this input does not take)");
                    }
                    let compensatable_before = undone_when_failing::<S>(index, &self.last_arms);
                    let summary = RunSummary::of(case.clone(), &result)
                        .with_messages(core::mem::take(&mut self.sent));
                    report.cases.push(case.clone());
                    let run = report.runs();
                    let wrong = |what: String| SweepFailure {
                        message: format!("{sweep}, run {run} ({case}): {what}"),
                    };
                    if !reached {
                        // Nothing to expect of a step that never ran.
                    } else if retriable {
                        if let Err(e) = &result {
                            return Err(wrong(format!(
                                "a retriable step must be retried until it succeeds, but the saga ended with `{}` failed ({})",
                                e.failed_step(),
                                e.report()
                                    .records()
                                    .iter()
                                    .rev()
                                    .find_map(|r| r.error())
                                    .unwrap_or("no error text")
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
                            let failed: Vec<String> = e
                                .failed_compensations()
                                .iter()
                                .map(|c| c.to_string())
                                .collect();
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
            self.fail_confirms(sweep, report).await?;
            self.overlap_runs(report).await?;
            Ok(())
        }
    }

    /// Runs each step twice, and each compensation twice (after making a later
    /// step fail so that it runs), checking the invariant after each run.
    pub fn repeat_sweep(&mut self) -> Result<SweepReport, SweepFailure> {
        let runtime = paused_runtime()?;
        runtime.block_on(async {
            self.start_sweep();
            let mut report = SweepReport::default();
            for input in 0..self.inputs {
                self.input = input;
                self.repeat_sweep_input(&mut report).await?;
            }
            self.end_sweep("repeat sweep", report)
        })
    }

    async fn repeat_sweep_input(&mut self, report: &mut SweepReport) -> Result<(), SweepFailure> {
        {
            let sweep = "repeat sweep";
            let prefix = self.input_prefix();
            for (index, info) in S::STEPS.iter().enumerate() {
                let case = format!("{prefix}`{}` delivered twice", info.name());
                let result = self
                    .run_once(Plan {
                        repeat: Some((index as u32, Phase::Forward)),
                        ..Plan::default()
                    })
                    .await;
                report.cases.push(case.clone());
                let summary =
                    RunSummary::of(case, &result).with_messages(core::mem::take(&mut self.sent));
                self.check(sweep, report.runs(), &summary)?;
            }
            // The arms this input takes: only the steps on its path are undone,
            // and only a step on it can make them be.
            let path = self.last_arms.clone();
            let on_path = |i: usize| !super::arms::off_path::<S>(i as u32, &path);
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
                if !on_path(index) {
                    continue;
                }
                // A sibling in its `sagaflow::join!` group, or else the first
                // later step on this input's path, that can fail for good makes this one's
                // compensation run.
                let can_fail = |(i, s): &(usize, &crate::StepInfo)| {
                    s.kind() != StepKind::Retriable && on_path(*i)
                };
                let sibling = S::GROUPS
                    .iter()
                    .find(|r| r.contains(&(index as u32)))
                    .and_then(|r| {
                        let (start, end) = (r.start as usize, r.end as usize);
                        S::STEPS
                            .iter()
                            .enumerate()
                            .take(end)
                            .skip(start)
                            .filter(|(i, _)| *i != index)
                            .find(can_fail)
                    });
                let later = || S::STEPS.iter().enumerate().skip(index + 1).find(can_fail);
                let Some((later, trigger)) = sibling.or_else(later) else {
                    continue;
                };
                let case = format!(
                    "{prefix}`{}` made to fail, so that `{compensation}` (undoing `{}`) runs, delivered twice",
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
                let summary = RunSummary::of(case.clone(), &result)
                    .with_messages(core::mem::take(&mut self.sent));
                if let Err(e) = &result
                    && !e.failed_compensations().is_empty()
                {
                    let failed: Vec<String> = e
                        .failed_compensations()
                        .iter()
                        .map(|c| c.to_string())
                        .collect();
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
            self.repeat_tcc(sweep, report).await?;
            Ok(())
        }
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
/// TCC step (its try is cancelled with `None`); only those on the path the
/// run took (`arms`: not in an arm it did not take).
pub(super) fn undone_when_failing<S: Saga>(index: u32, arms: &[(u32, u32)]) -> Vec<&'static str> {
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
        .filter(|&i| !super::arms::off_path::<S>(i, arms))
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
