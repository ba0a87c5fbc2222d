//! The layout of a saga without branches: the steps in a row, their
//! compensations in a lane under them, and the failure paths into that lane.

use std::fmt::Write as _;

use super::lane::{Frame, Lane};
use super::text::xml_escape;
use super::*;

/// Where everything of a straight saga's picture goes.
pub(super) struct Straight {
    pub(super) cols: Vec<Column>,
    /// The centre of the left column (`start`, and `undone` under it).
    left_cx: f64,
    start_w: f64,
    undone_w: f64,
    done_w: f64,
    done_x: f64,
    /// The heights of the steps' row and of the compensations' lane.
    row_f: f64,
    pub(super) row_c: f64,
    /// The middles of the steps' row and of the compensations' lane.
    y_f: f64,
    pub(super) y_c: f64,
    legend: &'static str,
    legend_y: f64,
    pub(super) width: f64,
    pub(super) height: f64,
}

impl SagaGraph {
    /// Columns for `start`, each step and `done`; the rows' heights and middles;
    /// the picture's size.
    pub(super) fn straight_layout(&self) -> Straight {
        let steps = self.steps;
        let last_fail = self.last_failing();
        let has_lower = last_fail.is_some() || steps.iter().any(|s| compensation_of(s).is_some());
        let framed = self
            .groups()
            .iter()
            .any(|r| r.clone().any(|i| compensation_of(&steps[i]).is_some()));
        let legend = if framed { LEGEND_GROUPS } else { LEGEND };

        // Horizontal layout: a left column for `start` (and `undone` under it), one
        // column per step, wide enough for the step and its compensation, then `done`.
        let start_w = pill_width("start");
        let undone_w = pill_width("undone");
        let done_w = pill_width("done");
        let left_w = if last_fail.is_some() {
            start_w.max(undone_w)
        } else {
            start_w
        };
        let left_cx = MARGIN + left_w / 2.0;
        let mut x = MARGIN + left_w + GAP;
        let mut cols = Vec::with_capacity(steps.len());
        for step in steps {
            let mut col = column(step);
            col.x = x;
            x += col.w + GAP;
            cols.push(col);
        }
        let done_x = x;
        let mut width = done_x + done_w + MARGIN;

        // Vertical layout: the steps' row, and under it the compensations' lane.
        let row_f = cols.iter().map(|c| c.step_h).fold(PILL_H, f64::max);
        let row_c = cols
            .iter()
            .filter(|c| c.comp.is_some())
            .map(|c| c.comp_h)
            .fold(PILL_H, f64::max);
        let y_f = MARGIN + row_f / 2.0;
        let y_c = y_f + row_f / 2.0 + ROW_GAP + row_c / 2.0;
        let legend_y = y_c + row_c / 2.0 + 22.0;
        let height = if last_fail.is_some() {
            width = width.max(2.0 * MARGIN + text_width(legend, SMALL_CHAR_W));
            legend_y + MARGIN
        } else if has_lower {
            y_c + row_c / 2.0 + MARGIN
        } else {
            y_f + row_f / 2.0 + MARGIN
        };
        let width = even_ceil(width);
        let height = even_ceil(height);
        Straight {
            cols,
            left_cx,
            start_w,
            undone_w,
            done_w,
            done_x,
            row_f,
            row_c,
            y_f,
            y_c,
            legend,
            legend_y,
            width,
            height,
        }
    }

    /// `start`, the steps in source order with arrows (or `‖` inside a group)
    /// between them, and `done`.
    pub(super) fn forward_row(&self, out: &mut String, l: &Straight, arrow: &str) {
        let steps = self.steps;
        let cols = &l.cols;
        let (y_f, row_f, done_x, done_w) = (l.y_f, l.row_f, l.done_x, l.done_w);
        pill(out, l.left_cx, y_f, l.start_w, "start", THIN);
        let mut prev_right = l.left_cx + l.start_w / 2.0;
        for (i, (step, col)) in steps.iter().zip(cols).enumerate() {
            // Inside a `sagaflow::join!` group, no arrow between members but
            // `‖`: they run at once, in the dashed frame drawn around them.
            match self.group_of(i) {
                Some(range) if range.start != i => {
                    let _ = writeln!(
                        out,
                        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"18\" fill=\"currentColor\">‖</text>",
                        num((prev_right + col.x) / 2.0),
                        num(y_f + 6.0),
                    );
                }
                Some(range) => {
                    line(out, prev_right, y_f, col.x - 6.0, y_f, arrow);
                    let last = &cols[range.end - 1];
                    let (x0, x1) = (col.x - 6.0, last.x + last.w + 6.0);
                    let _ = writeln!(
                        out,
                        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"6\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"1\" stroke-dasharray=\"2 4\"/>",
                        num(x0),
                        num(y_f - row_f / 2.0 - 6.0),
                        num(x1 - x0),
                        num(row_f + 12.0),
                    );
                }
                None => line(out, prev_right, y_f, col.x, y_f, arrow),
            }
            let (rx, stroke) = step_stroke(step);
            boxed(
                out,
                col.x,
                y_f,
                col.w,
                col.step_h,
                rx,
                stroke,
                step.name(),
                &col.details,
            );
            prev_right = col.x + col.w;
            if self.group_of(i).is_some_and(|r| r.end == i + 1) {
                prev_right += 6.0;
            }
        }
        line(out, prev_right, y_f, done_x, y_f, arrow);
        pill(
            out,
            done_x + done_w / 2.0,
            y_f,
            done_w,
            "done",
            "stroke-width=\"2.5\"",
        );
    }

    /// The compensations, each under its step and joined to it by a dotted line.
    /// A TCC step's cancel hangs by a double line: it runs on rollback,
    /// also after its own try failed.
    pub(super) fn compensation_row(&self, out: &mut String, l: &Straight) {
        let (y_f, y_c) = (l.y_f, l.y_c);
        for (step, col) in self.steps.iter().zip(&l.cols) {
            if let Some(comp) = col.comp {
                let cx = col.x + col.w / 2.0;
                let tcc = step.kind() == StepKind::Tcc;
                let offsets: &[f64] = if tcc { &[-2.0, 2.0] } else { &[0.0] };
                for dx in offsets {
                    line(
                        out,
                        cx + dx,
                        y_f + col.step_h / 2.0,
                        cx + dx,
                        y_c - col.comp_h / 2.0,
                        "stroke-dasharray=\"2 3\"",
                    );
                }
                boxed(
                    out,
                    col.x,
                    y_c,
                    col.w,
                    col.comp_h,
                    3.0,
                    THIN,
                    comp,
                    &col.comp_details,
                );
            }
        }
    }

    /// The failure paths, into the lane of compensations and along it to
    /// `undone`, and the legend that says how to read them.
    pub(super) fn failure_part(
        &self,
        out: &mut String,
        l: &Straight,
        frames: &[Frame],
        last: usize,
        arrow: &str,
    ) {
        let lane = Lane {
            last,
            y_f: l.y_f,
            y_c: l.y_c,
            row_c: l.row_c,
            to: l.left_cx + l.undone_w / 2.0,
        };
        self.failure_lane(out, &l.cols, frames, &lane, arrow);
        pill(
            out,
            l.left_cx,
            l.y_c,
            l.undone_w,
            "undone",
            "stroke-width=\"1.5\" stroke-dasharray=\"6 4\"",
        );
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"currentColor\">{}</text>",
            num(MARGIN),
            num(l.legend_y),
            xml_escape(l.legend)
        );
    }
}
