//! A saga definition's fingerprint: what is stored with each saga so that
//! recovery refuses to drive a journal with code whose steps, kinds,
//! compensations, groups or branches have changed since, and the words that
//! say what changed.

use core::ops::Range;

use super::store::SagaRecord;
use crate::{BranchInfo, StepInfo};

/// The stored shape of a saga's definition: each step's name, kind and
/// compensation (and a TCC step's cancel and confirm: `hold:tcc=release+confirm`),
/// in order. Retry and timeout policies may change between a
/// saga's start and its recovery; these may not.
pub fn fingerprint(steps: &[StepInfo]) -> String {
    fingerprint_grouped(steps, &[])
}

/// [`fingerprint`] with the saga's `sagaflow::join!` groups (`Saga::GROUPS`):
/// a member's part ends in `@N`, N counting the groups from 1, so that
/// regrouping steps, which changes what a recovery must run again and undo
/// together, refuses recovery as other definition changes do. Without groups
/// it is the plain fingerprint, so records made before groups existed still
/// match.
pub fn fingerprint_grouped(steps: &[StepInfo], groups: &[Range<u32>]) -> String {
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut part = match s.compensation() {
                Some(c) => format!("{}:{}={}", s.name(), s.kind().keyword(), c),
                None => format!("{}:{}", s.name(), s.kind().keyword()),
            };
            // A TCC step's confirm; its cancel is its compensation.
            if let Some(confirm) = s.confirm() {
                part.push_str(&format!("+{confirm}"));
            }
            if let Some(g) = groups.iter().position(|r| r.contains(&(i as u32))) {
                part.push_str(&format!("@{}", g + 1));
            }
            part
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// [`fingerprint_grouped`] with the saga's branches (`Saga::BRANCHES`): one
/// part per branch after the steps, `?K=a..b|c..d` with the positions of each
/// arm's steps, so that moving a step into another arm, or adding an arm,
/// refuses recovery (a recorded arm number would mean another path). Without
/// branches it is the grouped fingerprint, so earlier records still match.
pub fn fingerprint_branched(
    steps: &[StepInfo],
    groups: &[Range<u32>],
    branches: &[BranchInfo],
) -> String {
    let mut out = fingerprint_grouped(steps, groups);
    for (k, b) in branches.iter().enumerate() {
        let arms: Vec<String> = b
            .arms()
            .iter()
            .map(|a| format!("{}..{}", a.steps().start, a.steps().end))
            .collect();
        out.push_str(&format!(" ?{}={}", k + 1, arms.join("|")));
    }
    out
}

/// How the stored definition differs from the code's, if it does.
pub(super) fn definition_change(
    steps: &[StepInfo],
    groups: &[Range<u32>],
    branches: &[BranchInfo],
    record: &SagaRecord,
) -> Option<String> {
    let now = fingerprint_branched(steps, groups, branches);
    if now == record.fingerprint {
        return None;
    }
    let then: Vec<&str> = record
        .fingerprint
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    let now: Vec<&str> = now.split(' ').collect();
    for (i, (a, b)) in then.iter().zip(&now).enumerate() {
        if a != b && (a.starts_with('?') || b.starts_with('?')) {
            return Some(format!(
                "its branches (`if`/`match`) and their arms' steps differ (`{a}`, now `{b}`)"
            ));
        }
        if a != b {
            let grouping = |p: &str| p.split_once('@').map_or(p, |(step, _)| step).to_owned();
            if grouping(a) == grouping(b) {
                return Some(format!(
                    "step {} (`{}`) has moved into or out of a `sagaflow::join!` group (`{a}`, now `{b}`)",
                    i + 1,
                    grouping(a)
                ));
            }
            return Some(format!("step {} was `{a}` and is now `{b}`", i + 1));
        }
    }
    Some(format!(
        "it had {} steps and the code now has {}",
        then.len(),
        now.len()
    ))
}
