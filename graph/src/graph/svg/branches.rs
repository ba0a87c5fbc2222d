//! The SVG of a saga's branches, over the row of steps: a diamond labelled with
//! the condition where the branch starts, and over each arm's steps a frame
//! labelled with the arm, the arms side by side with `or` between them. An
//! arm without steps is named beside the diamond.

use std::fmt::Write as _;

use super::{CHAR_W, num, text_width, xml_escape};
use crate::SagaGraph;

/// The height of the band over the row that holds the diamonds and labels.
const BAND: f64 = 40.0;

/// A step's column: its left edge and width.
pub(super) type Span = (f64, f64);

impl SagaGraph {
    /// The band over the row, if the saga has branches.
    pub(super) fn branch_band(&self) -> f64 {
        if self.branches().is_empty() {
            0.0
        } else {
            BAND
        }
    }

    /// Whether step `i` is the first step of an arm after the first one with
    /// steps: the row has no arrow into it, but `or`.
    pub(super) fn starts_later_arm(&self, i: usize) -> bool {
        self.branches().iter().any(|b| {
            let mut arms = b.arms().iter().filter(|a| !a.steps().is_empty());
            arms.next().is_some() && arms.any(|a| a.steps().start as usize == i)
        })
    }

    /// The text beside branch `b`'s diamond: its condition, and the arms
    /// without steps.
    fn branch_text(&self, b: &crate::BranchInfo) -> String {
        let empty: Vec<&str> = b
            .arms()
            .iter()
            .filter(|a| a.steps().is_empty())
            .map(|a| a.label())
            .collect();
        if empty.is_empty() {
            b.label().to_owned()
        } else {
            format!("{} ({}: no step)", b.label(), empty.join(", "))
        }
    }

    /// Where the branch starts on the row: its first step's column, or the
    /// gap before the step after it.
    fn branch_x(b: &crate::BranchInfo, spans: &[Span], done_x: f64) -> f64 {
        let start = b.steps().start as usize;
        spans.get(start).map_or(done_x, |s| s.0) - 6.0
    }

    /// The rightmost x the branches' texts reach.
    pub(super) fn branches_right(&self, spans: &[Span], done_x: f64) -> f64 {
        self.branches()
            .iter()
            .map(|b| {
                Self::branch_x(b, spans, done_x) + 22.0 + text_width(&self.branch_text(b), CHAR_W)
            })
            .fold(0.0, f64::max)
    }

    /// Draws the diamonds and the arms' frames; `y_f` is the row's middle and
    /// `row_f` its height.
    pub(super) fn draw_branches(
        &self,
        out: &mut String,
        spans: &[Span],
        done_x: f64,
        y_f: f64,
        row_f: f64,
    ) {
        let top = y_f - row_f / 2.0 - BAND;
        for (depth, b) in self.branches().iter().enumerate() {
            let x = Self::branch_x(b, spans, done_x);
            // A nested branch's diamond sits a little lower, so that both read.
            let cy = top + 12.0 + if depth % 2 == 1 { 4.0 } else { 0.0 };
            let _ = writeln!(
                out,
                "<path d=\"M{},{}L{},{}L{},{}L{},{}z\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\"/>",
                num(x + 8.0),
                num(cy - 8.0),
                num(x + 16.0),
                num(cy),
                num(x + 8.0),
                num(cy + 8.0),
                num(x),
                num(cy),
            );
            let _ = writeln!(
                out,
                "<text x=\"{}\" y=\"{}\" fill=\"currentColor\">{}</text>",
                num(x + 22.0),
                num(cy + 4.0),
                xml_escape(&self.branch_text(b))
            );
            for arm in b.arms() {
                let r = arm.steps();
                if r.is_empty() {
                    continue;
                }
                let (first, last) = (spans[r.start as usize], spans[r.end as usize - 1]);
                let (x0, x1) = (first.0 - 6.0, last.0 + last.1 + 6.0);
                let y0 = y_f - row_f / 2.0 - 18.0;
                let _ = writeln!(
                    out,
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"6\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"1\" stroke-dasharray=\"6 3\"/>",
                    num(x0),
                    num(y0),
                    num(x1 - x0),
                    num(row_f + 24.0),
                );
                let _ = writeln!(
                    out,
                    "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"currentColor\">{}</text>",
                    num(x0 + 6.0),
                    num(y0 + 12.0),
                    xml_escape(arm.label())
                );
            }
        }
    }
}

/// The legend of a saga with branches.
pub(super) const LEGEND_BRANCHES: &str = "dashed: when a step fails, the compensations to its left on the path taken run, right to left, passing over the arms not taken";

/// `or` between two arms on the row, at `x`.
pub(super) fn or(out: &mut String, x: f64, y_f: f64) {
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" fill=\"currentColor\">or</text>",
        num(x),
        num(y_f + 4.0),
    );
}
