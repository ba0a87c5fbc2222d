//! A persisted journal read back into what a recovered saga needs to know:
//! per step and per compensation the attempts spent or the outcome, the arm
//! each branch took, the confirms, and whether the saga had decided to commit.
//! [`Durable`](super::Durable) answers the driver's questions from it.

use std::collections::HashMap;

use super::journal::Replayed;
use super::store::Entry;

/// A persisted journal, indexed for replay.
#[derive(Default)]
pub(super) struct ReplayIndex {
    pub(super) steps: HashMap<u32, Replayed>,
    pub(super) compensations: HashMap<u32, Replayed>,
    /// Per compensation, the last attempt number started before a person's
    /// last `retry_compensations`: the retry budget counts from there.
    pub(super) compensation_base: HashMap<u32, u32>,
    /// Per compensation, the last attempt number started.
    pub(super) compensation_last: HashMap<u32, u32>,
    /// Per branch, the arm it took.
    pub(super) arms: HashMap<u32, u32>,
    /// Per TCC step, its confirm: `Run` once started, `Succeeded` once done.
    pub(super) confirms: HashMap<u32, Replayed>,
    /// Whether the saga decided to commit: it only goes forward now.
    pub(super) decided: bool,
}

impl From<&[Entry]> for ReplayIndex {
    fn from(journal: &[Entry]) -> Self {
        let mut index = ReplayIndex::default();
        for entry in journal {
            match entry {
                Entry::StepStarted { index: i, attempt } => {
                    index.steps.insert(
                        *i,
                        Replayed::Run {
                            next_attempt: attempt + 1,
                            spent: *attempt,
                        },
                    );
                }
                Entry::StepSucceeded { index: i, output } => {
                    index.steps.insert(*i, Replayed::Succeeded(output.clone()));
                }
                Entry::StepFailed { index: i, error } => {
                    index.steps.insert(*i, Replayed::Failed(error.clone()));
                }
                Entry::CompensationStarted { index: i, attempt } => {
                    let base = index.compensation_base.get(i).copied().unwrap_or(0);
                    index.compensation_last.insert(*i, *attempt);
                    index.compensations.insert(
                        *i,
                        Replayed::Run {
                            next_attempt: attempt + 1,
                            spent: attempt.saturating_sub(base),
                        },
                    );
                }
                Entry::CompensationSucceeded { index: i } => {
                    index
                        .compensations
                        .insert(*i, Replayed::Succeeded(Vec::new()));
                }
                Entry::CompensationFailed { index: i, error } => {
                    index
                        .compensations
                        .insert(*i, Replayed::Failed(error.clone()));
                }
                Entry::Intervention { retry: true, .. } => {
                    // A person asked to try the failed compensations again: they
                    // run again with a whole budget, their attempt numbers going
                    // on from where they stopped.
                    for (i, replayed) in index.compensations.iter_mut() {
                        if matches!(replayed, Replayed::Failed(_)) {
                            let last = index.compensation_last.get(i).copied().unwrap_or(0);
                            index.compensation_base.insert(*i, last);
                            *replayed = Replayed::Run {
                                next_attempt: last + 1,
                                spent: 0,
                            };
                        }
                    }
                }
                Entry::Arm { branch, arm } => {
                    index.arms.insert(*branch, *arm);
                }
                Entry::Decided => index.decided = true,
                Entry::ConfirmStarted { index: i, attempt } => {
                    index.confirms.insert(
                        *i,
                        Replayed::Run {
                            next_attempt: attempt + 1,
                            spent: *attempt,
                        },
                    );
                }
                Entry::Confirmed { index: i } => {
                    index.confirms.insert(*i, Replayed::Succeeded(Vec::new()));
                }
                Entry::Intervention { retry: false, .. }
                | Entry::Finished { .. }
                | Entry::Sent { .. } => {}
            }
        }
        index
    }
}

impl ReplayIndex {
    pub(super) fn get(&self, index: u32, compensation: bool) -> Replayed {
        let map = if compensation {
            &self.compensations
        } else {
            &self.steps
        };
        map.get(&index).cloned().unwrap_or(Replayed::FRESH)
    }
}
