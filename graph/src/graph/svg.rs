//! The SVG renderer: a small deterministic layout written for the saga's shape.

use std::fmt::Write as _;

use super::*;

mod branches;
mod lane;
mod straight;
mod text;

pub(super) use text::default_prefix;
use text::{svg_prefix, xml_escape};

impl SagaGraph {
    /// The graph as a self-contained SVG picture, for rustdoc and any HTML page.
    ///
    /// Same as [`to_svg_with_prefix`](Self::to_svg_with_prefix) with a prefix made
    /// from the saga's name, so that the pictures of two sagas on one page do not
    /// share ids.
    ///
    /// ```
    /// use sagaflow_graph::{SagaGraph, StepInfo, StepKind};
    ///
    /// const STEPS: &[StepInfo] = &[
    ///     StepInfo::new("book_flight", StepKind::Compensatable).with_compensation("cancel_flight"),
    /// ];
    /// let svg = SagaGraph::new("trip", STEPS).to_svg();
    /// assert!(svg.starts_with("<svg "));
    /// assert!(svg.contains("id=\"sagaflow-trip-arrow\""));
    /// assert!(!svg.contains("\n\n"));
    /// ```
    pub fn to_svg(&self) -> String {
        self.to_svg_with_prefix(&default_prefix(self.name))
    }

    /// The SVG as a file of its own, for a README or a web page that shows it as an
    /// `<img>`: there `currentColor` does not come from the page, so a small style
    /// picks dark strokes on a light scheme and light ones on a dark scheme
    /// (following the reader's system setting). The inline picture of
    /// [`to_svg`](Self::to_svg) stays without a style, so that it follows rustdoc's theme.
    ///
    /// ```
    /// use sagaflow_graph::{SagaGraph, StepInfo, StepKind};
    ///
    /// const STEPS: &[StepInfo] = &[StepInfo::new("check", StepKind::ReadOnly)];
    /// let svg = SagaGraph::new("trip", STEPS).to_svg_standalone();
    /// assert!(svg.contains("prefers-color-scheme:dark"));
    /// ```
    pub fn to_svg_standalone(&self) -> String {
        let svg = self.to_svg();
        let style = "<style>svg{color:#1f2328}@media (prefers-color-scheme:dark){svg{color:#e6edf3}}</style>";
        match svg.find('>') {
            Some(end) => format!("{}\n{}{}", &svg[..=end], style, &svg[end + 1..]),
            None => svg,
        }
    }

    /// The graph as a self-contained SVG picture whose ids all start with `prefix`.
    ///
    /// The layout is written for the saga's shape: the steps in a row from left to
    /// right with arrows between them, and under each compensatable step its
    /// compensation, joined to it by a dotted line. When a step fails, a dashed
    /// line leads down from it into the lane of compensations, which runs back from
    /// right to left through the compensations of the steps before it, to `undone`.
    /// The members of a `sagaflow::join!` group stand side by side in a dotted
    /// frame, `‖` between them, and so do their compensations, which run at once:
    /// the lane enters their frame and leaves it from its left edge, and a
    /// member's failure leads into it (its siblings are undone).
    /// A branch (`if`, `match`) is a fork: a diamond labelled with the
    /// condition, its arms in parallel rows one under the other, each with its
    /// own lane of compensations that leads back to those before the branch,
    /// and a dot where the rows meet again; a failure after the branch forks at
    /// that dot into every arm's lane (only the arm that ran is undone).
    /// The pivot has a thick border and says "point of no return", read-only steps
    /// have a dashed border, and retriable steps rounded corners and `↻`.
    ///
    /// The picture is made to be pasted into Markdown, rustdoc's included:
    /// no script and no external font or stylesheet; strokes and text in
    /// `currentColor`, so that it follows the light and dark themes; no blank line,
    /// which would end the HTML block; every id starts with `prefix` (reduced to
    /// `[A-Za-z0-9_-]`, and starting with a letter) so that two pictures on one page
    /// do not clash; every text escaped for XML.
    pub fn to_svg_with_prefix(&self, prefix: &str) -> String {
        let p = svg_prefix(prefix);
        if !self.branches().is_empty() {
            return self.branched_svg(&p);
        }
        let layout = self.straight_layout();
        let mut out = self.svg_head(&p, layout.width, layout.height);
        let arrow = format!("marker-end=\"url(#{p}-arrow)\"");
        self.forward_row(&mut out, &layout, &arrow);
        // The frames of the groups' compensations, which run at once.
        let frames = self.compensation_frames(&mut out, &layout.cols, layout.y_c, layout.row_c);
        self.compensation_row(&mut out, &layout);
        if let Some(last) = self.last_failing() {
            self.failure_part(&mut out, &layout, &frames, last, &arrow);
        }
        out.push_str("</svg>");
        out
    }
}

impl SagaGraph {
    /// The picture's opening: the `<svg>` element, its title and description,
    /// and the arrow's marker.
    fn svg_head(&self, p: &str, width: f64, height: f64) -> String {
        let mut out = String::new();
        // Writing to a `String` never fails, hence the ignored results below. Every
        // element is on a line of its own, and no line is empty.
        let _ = writeln!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-labelledby=\"{p}-title {p}-desc\" font-family=\"sans-serif\" font-size=\"13\" style=\"max-width:100%;height:auto\">",
            w = num(width),
            h = num(height),
        );
        let _ = writeln!(
            out,
            "<title id=\"{p}-title\">Saga {}: steps and compensations</title>",
            xml_escape(self.name)
        );
        let _ = writeln!(
            out,
            "<desc id=\"{p}-desc\">{}</desc>",
            xml_escape(&self.to_string())
        );
        let _ = writeln!(
            out,
            "<defs><marker id=\"{p}-arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0L10,5L0,10z\" fill=\"currentColor\"/></marker></defs>"
        );
        out
    }
}

/// A step box's corner radius and stroke, by the step's kind.
fn step_stroke(step: &StepInfo) -> (f64, &'static str) {
    match step.kind() {
        StepKind::Compensatable | StepKind::Tcc => (3.0, THIN),
        StepKind::ReadOnly => (3.0, "stroke-width=\"1.5\" stroke-dasharray=\"5 3\""),
        StepKind::Pivot => (3.0, "stroke-width=\"3\""),
        StepKind::Retriable => (12.0, THIN),
    }
}

/// A step's column, at `x = 0`: wide enough for the step and its compensation.
fn column(step: &StepInfo) -> Column {
    let details = step_details(step);
    let comp = compensation_of(step);
    let comp_details = match comp {
        Some(_) => compensation_details(step),
        None => Vec::new(),
    };
    let mut content = text_width(step.name(), CHAR_W);
    for line in &details {
        content = content.max(text_width(line, SMALL_CHAR_W));
    }
    if let Some(comp) = comp {
        content = content.max(text_width(comp, CHAR_W));
    }
    for line in &comp_details {
        content = content.max(text_width(line, SMALL_CHAR_W));
    }
    let w = even_ceil((content + 2.0 * PAD_X).max(MIN_BOX_W));
    Column {
        x: 0.0,
        w,
        step_h: box_height(details.len()),
        details,
        comp,
        comp_h: box_height(comp_details.len()),
        comp_details,
    }
}

/// Width of a character at 13px, roughly, for a sans-serif font.
const CHAR_W: f64 = 7.5;
/// Width of a character at 11px.
const SMALL_CHAR_W: f64 = 6.5;
const PAD_X: f64 = 12.0;
const PAD_Y: f64 = 8.0;
const NAME_LINE: f64 = 16.0;
const DETAIL_LINE: f64 = 14.0;
const MIN_BOX_W: f64 = 64.0;
const PILL_H: f64 = 24.0;
const MARGIN: f64 = 12.0;
/// Horizontal space between two columns, where the forward arrows are.
const GAP: f64 = 40.0;
/// Vertical space between the steps' row and the compensations' lane.
const ROW_GAP: f64 = 44.0;
/// The stroke of most shapes.
const THIN: &str = "stroke-width=\"1.5\"";
pub(super) const LEGEND: &str =
    "dashed: when a step fails, the compensations to its left run, right to left";
/// The legend of a saga whose group has compensations.
pub(super) const LEGEND_GROUPS: &str = "dashed: when a step fails, the compensations to its left run, right to left; those in a frame at once";

/// One step's column in the SVG.
struct Column {
    x: f64,
    w: f64,
    step_h: f64,
    details: Vec<String>,
    comp: Option<&'static str>,
    comp_h: f64,
    comp_details: Vec<String>,
}

fn text_width(text: &str, char_w: f64) -> f64 {
    // Lossless for any text shorter than 2^52 characters.
    #[allow(clippy::cast_precision_loss)]
    let chars = text.chars().count() as f64;
    chars * char_w
}

fn pill_width(text: &str) -> f64 {
    even_ceil(text_width(text, CHAR_W) + 20.0)
}

fn box_height(details: usize) -> f64 {
    let details = u32::try_from(details).unwrap_or(u32::MAX);
    2.0 * PAD_Y + NAME_LINE + DETAIL_LINE * f64::from(details)
}

/// Rounded up to an even number, so that halves of widths stay whole.
fn even_ceil(v: f64) -> f64 {
    (v / 2.0).ceil() * 2.0
}

/// A coordinate, to a tenth of a pixel, without a trailing `.0`.
fn num(v: f64) -> String {
    format!("{}", (v * 10.0).round() / 10.0)
}

fn line(out: &mut String, x1: f64, y1: f64, x2: f64, y2: f64, attrs: &str) {
    let _ = writeln!(
        out,
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"currentColor\" stroke-width=\"1.5\" {attrs}/>",
        num(x1),
        num(y1),
        num(x2),
        num(y2),
    );
}

/// A pill-shaped terminal (`start`, `done`, `undone`) centred on `cx, cy`.
fn pill(out: &mut String, cx: f64, cy: f64, w: f64, text: &str, stroke: &str) {
    let _ = writeln!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"{}\" fill=\"none\" stroke=\"currentColor\" {stroke}/>",
        num(cx - w / 2.0),
        num(cy - PILL_H / 2.0),
        num(w),
        num(PILL_H),
        num(PILL_H / 2.0),
    );
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"currentColor\">{}</text>",
        num(cx),
        num(cy + 4.5),
        xml_escape(text),
    );
}

/// A box at `x`, vertically centred on `cy`, with a name and smaller detail lines.
#[allow(clippy::too_many_arguments)] // private drawing helper; a struct would only rename them
fn boxed(
    out: &mut String,
    x: f64,
    cy: f64,
    w: f64,
    h: f64,
    rx: f64,
    stroke: &str,
    title: &str,
    details: &[String],
) {
    let _ = writeln!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"{}\" fill=\"currentColor\" fill-opacity=\"0.06\" stroke=\"currentColor\" {stroke}/>",
        num(x),
        num(cy - h / 2.0),
        num(w),
        num(h),
        num(rx),
    );
    let cx = x + w / 2.0;
    let details_count = u32::try_from(details.len()).unwrap_or(u32::MAX);
    let top = cy - (NAME_LINE + DETAIL_LINE * f64::from(details_count)) / 2.0;
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"currentColor\">{}</text>",
        num(cx),
        num(top + 12.5),
        xml_escape(title),
    );
    let mut baseline = top + NAME_LINE + 10.5;
    for detail in details {
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" fill=\"currentColor\">{}</text>",
            num(cx),
            num(baseline),
            xml_escape(detail),
        );
        baseline += DETAIL_LINE;
    }
}
