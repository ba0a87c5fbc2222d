//! The SVG's lane of compensations under the steps: the frames of the groups'
//! compensations, which run at once, and the dashed failure paths.
//!
//! ```text
//! [s0] → [[s1 ‖ s2]] → [s3]
//!   ⋮      ⋮    ⋮        ╲        a step's failure: down, just left of its column
//! [c0] ← [[c1 ‖ c2]] ←───╯        a member's: into its group's frame
//!   ↓                             the lane enters a frame at its right edge
//! undone                          and leaves it from its left edge
//! ```

use core::ops::Range;

use crate::StepKind;
use std::fmt::Write as _;

use super::{Column, GAP, can_fail, line, num};
use crate::graph::SagaGraph;

/// A frame around a group's compensations: the group, and the frame's left
/// and right edges.
pub(super) type Frame = (Range<usize>, f64, f64);

/// Where the failure paths go.
pub(super) struct Lane {
    /// The last step that can fail: the lane starts left of it (or its group).
    pub last: usize,
    /// The middle of the steps' row.
    pub y_f: f64,
    /// The middle of the compensations' lane.
    pub y_c: f64,
    /// The height of the compensations' lane.
    pub row_c: f64,
    /// Where the lane ends: the right edge of `undone`.
    pub to: f64,
}

impl SagaGraph {
    /// Draws a dotted frame around the compensations of each group that has
    /// any, with `‖` between the members' columns, as in the forward row.
    pub(super) fn compensation_frames(
        &self,
        out: &mut String,
        cols: &[Column],
        y_c: f64,
        row_c: f64,
    ) -> Vec<Frame> {
        let mut frames = Vec::new();
        for range in self.groups() {
            if !range.clone().any(|i| cols[i].comp.is_some()) {
                continue;
            }
            let (first, last) = (&cols[range.start], &cols[range.end - 1]);
            let (x0, x1) = (first.x - 6.0, last.x + last.w + 6.0);
            let _ = writeln!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"6\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"1\" stroke-dasharray=\"2 4\"/>",
                num(x0),
                num(y_c - row_c / 2.0 - 6.0),
                num(x1 - x0),
                num(row_c + 12.0),
            );
            for pair in cols[range.clone()].windows(2) {
                let _ = writeln!(
                    out,
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"18\" fill=\"currentColor\">‖</text>",
                    num((pair[0].x + pair[0].w + pair[1].x) / 2.0),
                    num(y_c + 6.0),
                );
            }
            frames.push((range, x0, x1));
        }
        frames
    }

    /// The failure paths: from each step that can fail, down into the lane just
    /// left of its own column (its own compensation does not run), then back
    /// through the compensations to its left, right to left, to `undone`. A
    /// group's compensations run at once: the lane enters their frame and
    /// leaves it from its left edge, and a member's failure leads into the
    /// frame (its siblings that succeeded are undone).
    pub(super) fn failure_lane(
        &self,
        out: &mut String,
        cols: &[Column],
        frames: &[Frame],
        lane: &Lane,
        arrow: &str,
    ) {
        let dashed = "stroke-dasharray=\"6 4\"";
        let dashed_arrow = format!("{dashed} {arrow}");
        let frame_of = |r: &Range<usize>| frames.iter().find(|f| f.0 == *r);
        let frame_top = lane.y_c - lane.row_c / 2.0 - 6.0;
        for (i, (step, col)) in self.steps().iter().zip(cols).enumerate() {
            if !can_fail(step) {
                continue;
            }
            let top = lane.y_f + col.step_h / 2.0;
            let group = self.group_of(i);
            if group.as_ref().and_then(frame_of).is_some() {
                line(out, col.x + 8.0, top, col.x + 2.0, frame_top, &dashed_arrow);
            } else if step.kind() == StepKind::Tcc {
                // A TCC step's failed try goes through its own cancel.
                let right = col.x + col.w;
                line(out, right - 8.0, top, right + GAP / 2.0, lane.y_c, dashed);
            } else {
                let entry = group.map_or(col.x, |r| cols[r.start].x);
                line(out, col.x + 8.0, top, entry - GAP / 2.0, lane.y_c, dashed);
            }
        }
        let (mut i, mut from) = match self.group_of(lane.last) {
            Some(r) => match frame_of(&r) {
                Some(&(_, x0, _)) => (r.start, x0),
                None => (r.start, cols[r.start].x - GAP / 2.0),
            },
            // A TCC step's own cancel is on the way back.
            None if self.steps()[lane.last].kind() == StepKind::Tcc => {
                let col = &cols[lane.last];
                (lane.last + 1, col.x + col.w + GAP / 2.0)
            }
            None => (lane.last, cols[lane.last].x - GAP / 2.0),
        };
        while i > 0 {
            i -= 1;
            if let Some(r) = self.group_of(i) {
                if let Some(&(_, x0, x1)) = frame_of(&r) {
                    line(out, from, lane.y_c, x1, lane.y_c, &dashed_arrow);
                    from = x0;
                }
                i = r.start;
            } else if cols[i].comp.is_some() {
                let right = cols[i].x + cols[i].w;
                line(out, from, lane.y_c, right, lane.y_c, &dashed_arrow);
                from = cols[i].x;
            }
        }
        line(out, from, lane.y_c, lane.to, lane.y_c, &dashed_arrow);
    }
}
