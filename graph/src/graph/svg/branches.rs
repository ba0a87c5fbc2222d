//! The SVG of a saga with branches (`if` and `match`): each branch a fork.
//!
//! ```text
//! [s0] → ◇ cond ─ arm a → [s1] → [s2] ─┬─● → [s4]     the arms in parallel rows,
//!   ⋮    │                  ⋮      ⋮    │              meeting again at a join dot
//!   ⋮    └─ arm b → [s3] ───────────────┘
//! [c0] ←┬─────────── [c1] ← [c2] ←───┬── [c4]         each arm has its own lane,
//!       └── [c3] ←───────────────────┘                which leads back before the fork
//! ```
//!
//! Every arm takes a band of its own (its steps' row and its compensations'
//! lane) under the arm before it. A failure after the branch forks at the
//! join into each arm's lane; each arm's lane goes back to the compensations
//! before the branch, not through the other arms.
//!
//! Known limit: in a saga with branches, a `sagaflow::join!` group's members
//! stand with `‖` between them but without the dotted frames of the picture
//! without branches.

use std::fmt::Write as _;

use super::{
    CHAR_W, Column, GAP, PILL_H, ROW_GAP, SMALL_CHAR_W, THIN, boxed, can_fail, column, even_ceil,
    line, num, pill, pill_width, text_width, xml_escape,
};
use crate::SagaGraph;

/// Room over each band's row for the conditions' labels.
const LABEL_H: f64 = 22.0;
/// Room under each band's lane, before the next band.
const BAND_GAP: f64 = 10.0;
/// The diamond's width and height.
const DIAMOND: f64 = 20.0;

/// The legend of a saga with branches.
pub(super) const LEGEND_BRANCHES: &str = "dashed: when a step fails, the compensations to its left on its path run, right to left; each arm has its own lane";

/// One thing on a lane, left to right, for drawing the lane afterwards.
enum LaneItem {
    /// A compensation's box: its left and right edges.
    Comp(f64, f64),
    /// Where a failing step's dashed line lands on the lane.
    Fail(f64),
    /// A branch: its index in `Layout::forks`.
    Fork(usize),
}

/// A branch as laid out.
struct Fork {
    /// The diamond's left tip, on the band's row.
    x0: f64,
    /// The join dot.
    x_j: f64,
    /// The band of the branch (and of its first arm).
    band: usize,
    /// Each arm's band and its lane's items.
    arms: Vec<(usize, Vec<LaneItem>)>,
}

/// The state of the layout, written as it goes.
struct Layout {
    out: String,
    arrow: String,
    cols: Vec<Column>,
    done: Vec<bool>,
    forks: Vec<Fork>,
    row_f: f64,
    row_c: f64,
    /// The rightmost x drawn.
    right: f64,
    /// The lowest y drawn.
    bottom: f64,
}

impl Layout {
    fn band_h(&self) -> f64 {
        LABEL_H + self.row_f + ROW_GAP + self.row_c + BAND_GAP
    }
    /// The middle of band `b`'s row of steps.
    fn y_f(&self, b: usize) -> f64 {
        let b = u32::try_from(b).unwrap_or(u32::MAX);
        super::MARGIN + f64::from(b) * self.band_h() + LABEL_H + self.row_f / 2.0
    }
    /// The middle of band `b`'s lane of compensations.
    fn y_c(&self, b: usize) -> f64 {
        self.y_f(b) + self.row_f / 2.0 + ROW_GAP + self.row_c / 2.0
    }
    fn dashed(&mut self, d: &str, arrow: bool) {
        let end = if arrow { self.arrow.as_str() } else { "" };
        let _ = writeln!(
            self.out,
            "<path d=\"{d}\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\" {end}/>"
        );
    }
    fn solid(&mut self, d: &str, arrow: bool) {
        let end = if arrow { self.arrow.as_str() } else { "" };
        let _ = writeln!(
            self.out,
            "<path d=\"{d}\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\" {end}/>"
        );
    }
}

impl SagaGraph {
    /// The whole picture of a saga with branches, ids prefixed with `p`.
    pub(super) fn branched_svg(&self, p: &str) -> String {
        let cols: Vec<Column> = self.steps().iter().map(column).collect();
        let row_f = cols.iter().map(|c| c.step_h).fold(PILL_H, f64::max);
        let row_c = cols
            .iter()
            .filter(|c| c.comp.is_some())
            .map(|c| c.comp_h)
            .fold(PILL_H, f64::max);
        let mut l = Layout {
            out: String::new(),
            arrow: format!("marker-end=\"url(#{p}-arrow)\""),
            cols,
            done: vec![false; self.branches().len()],
            forks: Vec::new(),
            row_f,
            row_c,
            right: 0.0,
            bottom: 0.0,
        };
        let fails = self.steps().iter().any(can_fail);
        let (start_w, undone_w, done_w) = (
            pill_width("start"),
            pill_width("undone"),
            pill_width("done"),
        );
        let left_w = if fails {
            start_w.max(undone_w)
        } else {
            start_w
        };
        let left_cx = super::MARGIN + left_w / 2.0;
        let y0 = l.y_f(0);
        pill(&mut l.out, left_cx, y0, start_w, "start", THIN);
        let x = super::MARGIN + left_w + GAP;
        let n = self.steps().len();
        let (end, _, items) = self.lay_seq(&mut l, 0..n, x, left_cx + start_w / 2.0, 0);
        let done_x = end + GAP;
        line(&mut l.out, end, y0, done_x, y0, &l.arrow.clone());
        pill(
            &mut l.out,
            done_x + done_w / 2.0,
            y0,
            done_w,
            "done",
            "stroke-width=\"2.5\"",
        );
        let mut width = (done_x + done_w + super::MARGIN).max(l.right + super::MARGIN);
        let height = if fails {
            let to = left_cx + undone_w / 2.0;
            if let Some(from) = self.draw_lane(&mut l, &items, 0, None) {
                let y = l.y_c(0);
                l.dashed(&format!("M{},{}H{}", num(from), num(y), num(to)), true);
            }
            let yc0 = l.y_c(0);
            pill(
                &mut l.out,
                left_cx,
                yc0,
                undone_w,
                "undone",
                "stroke-width=\"1.5\" stroke-dasharray=\"6 4\"",
            );
            let bottom = l.bottom.max(yc0 + PILL_H / 2.0);
            let legend_y = bottom + 22.0;
            let _ = writeln!(
                l.out,
                "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"currentColor\">{}</text>",
                num(super::MARGIN),
                num(legend_y),
                xml_escape(LEGEND_BRANCHES)
            );
            width = width.max(2.0 * super::MARGIN + text_width(LEGEND_BRANCHES, SMALL_CHAR_W));
            legend_y + super::MARGIN
        } else {
            l.bottom + super::MARGIN
        };
        let mut svg = self.svg_head(p, even_ceil(width), even_ceil(height));
        svg.push_str(&l.out);
        svg.push_str("</svg>");
        svg
    }

    /// Lays out and draws the steps `range` in band `band`, the first at `x`,
    /// with an arrow from `prev` on the row. Returns the right edge of the
    /// last thing drawn, the number of bands used and the lane's items.
    fn lay_seq(
        &self,
        l: &mut Layout,
        range: core::ops::Range<usize>,
        mut x: f64,
        mut prev: f64,
        band: usize,
    ) -> (f64, usize, Vec<LaneItem>) {
        let y = l.y_f(band);
        let mut bands = 1;
        let mut items = Vec::new();
        let mut i = range.start;
        loop {
            let next = self.branches().iter().enumerate().find(|(k, b)| {
                !l.done[*k]
                    && b.steps().start as usize == i
                    && b.steps().end as usize <= range.end
                    && (i < range.end || b.steps().is_empty())
            });
            if let Some((k, b)) = next {
                l.done[k] = true;
                i = b.steps().end as usize;
                line(&mut l.out, prev, y, x, y, &l.arrow.clone());
                let (right, used) = self.lay_fork(l, k, x, band, &mut items);
                bands = bands.max(used);
                prev = right;
                x = right + GAP;
                continue;
            }
            if i >= range.end {
                break;
            }
            let in_group = self.group_of(i).is_some_and(|r| r.start != i);
            if in_group {
                let _ = writeln!(
                    l.out,
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"18\" fill=\"currentColor\">‖</text>",
                    num((prev + x) / 2.0),
                    num(y + 6.0),
                );
            } else {
                line(&mut l.out, prev, y, x, y, &l.arrow.clone());
            }
            let w = self.lay_step(l, i, x, band, &mut items);
            prev = x + w;
            x = prev + GAP;
            l.right = l.right.max(prev);
            i += 1;
        }
        (prev, bands, items)
    }

    /// Draws step `i` at `x` in band `band`, with its compensation under it
    /// and its failure's dashed line; returns its width.
    fn lay_step(
        &self,
        l: &mut Layout,
        i: usize,
        x: f64,
        band: usize,
        items: &mut Vec<LaneItem>,
    ) -> f64 {
        let (y, yc) = (l.y_f(band), l.y_c(band));
        let step = &self.steps()[i];
        let col = &mut l.cols[i];
        col.x = x;
        let (rx, stroke) = super::step_stroke(step);
        let col = &l.cols[i];
        let mut out = String::new();
        boxed(
            &mut out,
            x,
            y,
            col.w,
            col.step_h,
            rx,
            stroke,
            step.name(),
            &col.details,
        );
        if let Some(comp) = col.comp {
            let cx = x + col.w / 2.0;
            line(
                &mut out,
                cx,
                y + col.step_h / 2.0,
                cx,
                yc - col.comp_h / 2.0,
                "stroke-dasharray=\"2 3\"",
            );
            boxed(
                &mut out,
                x,
                yc,
                col.w,
                col.comp_h,
                3.0,
                THIN,
                comp,
                &col.comp_details,
            );
        }
        let (w, step_h, has_comp) = (col.w, col.step_h, col.comp.is_some());
        let low = if has_comp {
            yc + col.comp_h / 2.0
        } else {
            y + step_h / 2.0
        };
        l.bottom = l.bottom.max(low);
        l.out.push_str(&out);
        if can_fail(step) {
            l.bottom = l.bottom.max(yc + 2.0);
            items.push(LaneItem::Fail(x - GAP / 2.0));
            let d = format!(
                "M{},{}L{},{}",
                num(x + 8.0),
                num(y + step_h / 2.0),
                num(x - GAP / 2.0),
                num(yc)
            );
            l.dashed(&d, false);
        }
        if has_comp {
            items.push(LaneItem::Comp(x, x + w));
        }
        w
    }

    /// Lays out branch `k` with its diamond at `x0` in band `band`; returns
    /// the join dot's x and the bands used.
    fn lay_fork(
        &self,
        l: &mut Layout,
        k: usize,
        x0: f64,
        band: usize,
        items: &mut Vec<LaneItem>,
    ) -> (f64, usize) {
        let b = self.branches()[k];
        let y = l.y_f(band);
        let half = DIAMOND / 2.0;
        let _ = writeln!(
            l.out,
            "<path d=\"M{},{}L{},{}L{},{}L{},{}z\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\"/>",
            num(x0 + half),
            num(y - half),
            num(x0 + DIAMOND),
            num(y),
            num(x0 + half),
            num(y + half),
            num(x0),
            num(y),
        );
        let label_y = y - l.row_f / 2.0 - 8.0;
        let _ = writeln!(
            l.out,
            "<text x=\"{}\" y=\"{}\" fill=\"currentColor\">{}</text>",
            num(x0),
            num(label_y),
            xml_escape(b.label())
        );
        l.right = l.right.max(x0 + text_width(b.label(), CHAR_W));
        let arm_w = b
            .arms()
            .iter()
            .map(|a| text_width(a.label(), SMALL_CHAR_W))
            .fold(0.0, f64::max);
        let x_arm = x0
            + (text_width(b.label(), CHAR_W) + 8.0)
                .max(DIAMOND + 24.0 + arm_w + 16.0)
                .max(DIAMOND + GAP);
        let mut used = 0;
        let mut ends = Vec::new();
        let mut arms = Vec::new();
        for arm in b.arms() {
            let ab = band + used;
            let ya = l.y_f(ab);
            l.bottom = l.bottom.max(ya + 2.0);
            let start = if used == 0 {
                x0 + DIAMOND
            } else {
                let d = format!("M{},{}V{}", num(x0 + half), num(y + half), num(ya));
                l.solid(&d, false);
                x0 + half
            };
            let _ = writeln!(
                l.out,
                "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"currentColor\">{}</text>",
                num(x0 + DIAMOND + 4.0),
                num(ya - 5.0),
                xml_escape(arm.label())
            );
            let r = arm.steps();
            let (end, n, arm_items) = if r.is_empty() {
                (start, 1, Vec::new())
            } else {
                self.lay_seq(l, r.start as usize..r.end as usize, x_arm, start, ab)
            };
            ends.push((ab, end));
            arms.push((ab, arm_items));
            used += n;
        }
        let x_j = ends.iter().map(|e| e.1).fold(x_arm, f64::max) + GAP / 2.0;
        for &(ab, end) in &ends {
            let ya = l.y_f(ab);
            let d = if ab == band {
                format!("M{},{}H{}", num(end), num(ya), num(x_j))
            } else {
                format!("M{},{}H{}V{}", num(end), num(ya), num(x_j), num(y))
            };
            l.solid(&d, false);
        }
        let _ = writeln!(
            l.out,
            "<circle cx=\"{}\" cy=\"{}\" r=\"3.5\" fill=\"currentColor\"/>",
            num(x_j),
            num(y)
        );
        l.right = l.right.max(x_j + 4.0);
        items.push(LaneItem::Fork(l.forks.len()));
        l.forks.push(Fork {
            x0,
            x_j,
            band,
            arms,
        });
        (x_j, used)
    }

    /// Draws the lane of `items` in band `band`, right to left; `from` is
    /// where a lane coming from the right starts, if any. Returns where the
    /// lane ends on the left, if there is a lane.
    fn draw_lane(
        &self,
        l: &mut Layout,
        items: &[LaneItem],
        band: usize,
        mut from: Option<f64>,
    ) -> Option<f64> {
        let y = l.y_c(band);
        for item in items.iter().rev() {
            match *item {
                LaneItem::Fail(x) => {
                    if from.is_none() {
                        from = Some(x);
                    }
                }
                LaneItem::Comp(x0, x1) => {
                    if let Some(f) = from {
                        l.dashed(&format!("M{},{}H{}", num(f), num(y), num(x1)), true);
                        from = Some(x0);
                    }
                }
                LaneItem::Fork(k) => from = self.draw_fork_lane(l, k, from),
            }
        }
        from
    }

    /// The lanes of fork `k`: a lane from the right forks at the join into
    /// each arm's lane, and each arm's lane leads back before the diamond.
    fn draw_fork_lane(&self, l: &mut Layout, k: usize, from: Option<f64>) -> Option<f64> {
        let arms = std::mem::take(&mut l.forks[k].arms);
        let (x0, x_j, band) = (l.forks[k].x0, l.forks[k].x_j, l.forks[k].band);
        let y = l.y_c(band);
        let x_in = x_j + 8.0;
        let merge = x0 - 6.0;
        if let Some(f) = from {
            l.dashed(&format!("M{},{}H{}", num(f), num(y), num(x_in)), false);
        }
        let mut any = false;
        for (ab, arm_items) in &arms {
            let ya = l.y_c(*ab);
            if from.is_some() && *ab != band {
                l.bottom = l.bottom.max(ya + 2.0);
                l.dashed(&format!("M{},{}V{}", num(x_in), num(y), num(ya)), false);
            }
            if let Some(end) = self.draw_lane(l, arm_items, *ab, from.map(|_| x_in)) {
                any = true;
                l.bottom = l.bottom.max(ya + 2.0);
                let d = if *ab == band {
                    format!("M{},{}H{}", num(end), num(y), num(merge))
                } else {
                    format!("M{},{}H{}V{}", num(end), num(ya), num(merge), num(y))
                };
                l.dashed(&d, true);
            }
        }
        any.then_some(merge)
    }
}
