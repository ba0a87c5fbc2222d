//! The branches of a saga body (`if` and `match`), as the graph and the
//! durable fingerprint read them.

use core::ops::Range;

/// One `if` or `match` of a saga body: its condition's text and its arms, each
/// with the positions of its steps in the saga's step list (steps are numbered
/// depth first, so each arm's steps come one after the other).
///
/// ```
/// use sagaflow_graph::{ArmInfo, BranchInfo};
///
/// const SHIPPING: BranchInfo = BranchInfo::new(
///     "order.express",
///     &[ArmInfo::new("true", 1, 2), ArmInfo::new("false", 2, 4)],
/// );
/// assert_eq!(SHIPPING.label(), "order.express");
/// assert_eq!(SHIPPING.arms()[1].steps(), 2..4);
/// assert_eq!(SHIPPING.steps(), 1..4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BranchInfo {
    label: &'static str,
    arms: &'static [ArmInfo],
}

impl BranchInfo {
    /// A branch labelled `label` (the condition as written) with `arms`.
    pub const fn new(label: &'static str, arms: &'static [ArmInfo]) -> Self {
        BranchInfo { label, arms }
    }

    /// The condition as written: `order.express`, `match order.region`.
    pub const fn label(&self) -> &'static str {
        self.label
    }

    /// The arms, in the order written (an `if` without `else` has an empty last arm).
    pub const fn arms(&self) -> &'static [ArmInfo] {
        self.arms
    }

    /// The positions of every step inside the branch.
    pub fn steps(&self) -> Range<u32> {
        let start = self.arms.first().map_or(0, |a| a.start);
        let end = self.arms.last().map_or(start, |a| a.end);
        start..end
    }
}

/// One arm of a [`BranchInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmInfo {
    label: &'static str,
    start: u32,
    end: u32,
}

impl ArmInfo {
    /// An arm labelled `label` (`true`, `else`, a pattern) whose steps are at
    /// positions `start..end` (an empty range for an arm without steps).
    pub const fn new(label: &'static str, start: u32, end: u32) -> Self {
        ArmInfo { label, start, end }
    }

    /// The arm's label: `true`, `false`, `else`, the pattern as written.
    pub const fn label(&self) -> &'static str {
        self.label
    }

    /// The positions of the arm's steps (nested branches' steps included).
    pub fn steps(&self) -> Range<u32> {
        self.start..self.end
    }
}
