//! The test kit and branches: which arms the sweeps took, several inputs so
//! that they take each, and the cases a step in an arm not taken makes.

use super::*;

impl SweepReport {
    /// The arms of the saga's branches that no run of the sweep took, as
    /// "arm `false` of `order.express`": a sweep checks only the paths its
    /// inputs take (see [`SagaTest::with_inputs`] and [`SagaTest::every_arm`]).
    pub fn untaken_arms(&self) -> &[String] {
        &self.untaken_arms
    }
}

impl<'a, S> SagaTest<'a, S>
where
    S: DurableSaga<Plan>,
{
    /// Makes every sweep fail if some arm of the saga's branches was taken by
    /// none of its runs: the inputs do not cover the saga.
    pub fn every_arm(mut self) -> Self {
        self.every_arm = true;
        self
    }

    /// `"input 2: "` when the test has several inputs, else nothing.
    pub(super) fn input_prefix(&self) -> String {
        if self.inputs > 1 {
            format!("input {}: ", self.input)
        } else {
            String::new()
        }
    }

    /// Starts a sweep: no arm taken yet.
    pub(super) fn start_sweep(&mut self) {
        self.taken.clear();
    }

    /// Ends a sweep: notes the arms no run took, and fails if each must be.
    pub(super) fn end_sweep(
        &mut self,
        sweep: &str,
        mut report: SweepReport,
    ) -> Result<SweepReport, SweepFailure> {
        report.untaken_arms = untaken::<S>(&self.taken);
        if self.every_arm && !report.untaken_arms.is_empty() {
            return Err(SweepFailure {
                message: format!(
                    "{sweep}: no run took {}; give the test inputs that take it (`SagaTest::with_inputs`)",
                    report.untaken_arms.join(", ")
                ),
            });
        }
        Ok(report)
    }
}

/// The arms of `S`'s branches not in `taken`, described.
fn untaken<S: Saga>(taken: &std::collections::HashSet<(u32, u32)>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, branch) in S::BRANCHES.iter().enumerate() {
        for (a, arm) in branch.arms().iter().enumerate() {
            if !taken.contains(&(k as u32, a as u32)) {
                out.push(format!("arm `{}` of `{}`", arm.label(), branch.label()));
            }
        }
    }
    out
}

/// Whether step `index` is in an arm that a run taking `arms` did not take.
pub(super) fn off_path<S: Saga>(index: u32, arms: &[(u32, u32)]) -> bool {
    arms.iter().any(|&(k, taken)| {
        S::BRANCHES.get(k as usize).is_some_and(|b| {
            b.arms()
                .iter()
                .enumerate()
                .any(|(a, arm)| a as u32 != taken && arm.steps().contains(&index))
        })
    })
}
