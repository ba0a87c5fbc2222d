//! The failure sweep's runs for `sagaflow::join!` groups: a member fails for
//! good while a sibling's attempt is in flight.
//!
//! For each member `a` of a group that can fail (not `retriable`) and each
//! sibling `b`, twice: `a` fails for good (an error at every attempt, after
//! its retries), starting late so that `b`'s first attempt is in flight when
//! it does; `b`'s attempt stays in flight until then, and then either runs to
//! its end or fails with an injected error. The kit checks that the saga
//! blamed `a`; that `b`'s attempt did overlap the failure; that a `b` which
//! failed made that one attempt and no retry; that the members that succeeded
//! (`b` among them if it did) were undone, then the steps before the group in
//! reverse order; and the invariant.

use super::sweeps::names;
use super::*;

/// What a saga undoes when member `a` of group `group` fails for good while
/// member `b` ends as `b_fails` says, every other step working: the other
/// members (latest first), then the steps before the group (latest first);
/// only the compensatable ones.
fn undone_when_overlapping<S: Saga>(
    group: &core::ops::Range<u32>,
    a: u32,
    b: u32,
    b_fails: bool,
) -> Vec<&'static str> {
    group
        .clone()
        .rev()
        .filter(|&i| i != a && !(b_fails && i == b))
        .chain((0..group.start).rev())
        .map(|i| &S::STEPS[i as usize])
        .filter(|s| s.kind() == StepKind::Compensatable)
        .map(|s| s.name())
        .collect()
}

impl<S> SagaTest<'_, S>
where
    S: DurableSaga<Plan>,
{
    /// The failure sweep's runs with a member failing while a sibling's
    /// attempt is in flight, for every group of the saga.
    pub(super) async fn overlap_runs(
        &mut self,
        report: &mut SweepReport,
    ) -> Result<(), SweepFailure> {
        for group in S::GROUPS {
            for a in group.clone() {
                if S::STEPS[a as usize].kind() == StepKind::Retriable {
                    continue;
                }
                for b in group.clone().filter(|&b| b != a) {
                    for b_fails in [false, true] {
                        self.overlap_run(report, group, a, b, b_fails).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn overlap_run(
        &mut self,
        report: &mut SweepReport,
        group: &core::ops::Range<u32>,
        a: u32,
        b: u32,
        b_fails: bool,
    ) -> Result<(), SweepFailure> {
        let sweep = "failure sweep";
        let (a_name, b_name) = (S::STEPS[a as usize].name(), S::STEPS[b as usize].name());
        let then = if b_fails {
            "then fails"
        } else {
            "then runs to its end"
        };
        let case = format!(
            "`{a_name}` made to fail by an error while `{b_name}` is in flight, which {then}"
        );
        let plan = Plan {
            overlap: Some((a, b, b_fails)),
            ..Plan::failing(a, Fault::Error, None)
        };
        let result = self.run_once(plan).await;
        let summary =
            RunSummary::of(case.clone(), &result).with_messages(core::mem::take(&mut self.sent));
        report.cases.push(case.clone());
        let run = report.runs();
        let wrong = |what: String| SweepFailure {
            message: format!("{sweep}, run {run} ({case}): {what}"),
        };
        let Err(e) = &result else {
            return Err(wrong(
                "the saga committed although a member failed for good".to_owned(),
            ));
        };
        if !self.overlapped {
            return Err(wrong(format!(
                "`{b_name}`'s attempt was to be in flight when `{a_name}` failed, but it started after"
            )));
        }
        if e.failed_step() != a_name {
            return Err(wrong(format!(
                "the saga blamed `{}`, not `{a_name}`, the first member to fail",
                e.failed_step()
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
        if b_fails {
            let attempts = e
                .failed_steps()
                .iter()
                .find(|r| r.step() == b_name)
                .map(|r| r.attempts());
            match attempts {
                Some(1) => {}
                Some(n) => {
                    return Err(wrong(format!(
                        "`{b_name}` was retried after `{a_name}` had failed for good: {n} attempts, \
                         where a member whose sibling has failed starts no new retry"
                    )));
                }
                None => {
                    return Err(wrong(format!(
                        "`{b_name}` failed, but the error does not list it among the failed steps"
                    )));
                }
            }
        }
        let expected = undone_when_overlapping::<S>(group, a, b, b_fails);
        if e.undone() != expected.as_slice() {
            return Err(wrong(format!(
                "expected {} to be undone, in that order, but {} {}",
                names(&expected),
                names(e.undone()),
                if e.undone().len() == 1 { "was" } else { "were" }
            )));
        }
        self.check(sweep, run, &summary)
    }
}
