//! A saga's shape as a value, and its pictures: Mermaid, Graphviz DOT and inline SVG.
//!
//! Every saga has the same shape: a forward chain of steps, and compensation edges
//! going back. A failed step is not compensated (it produced nothing), so its
//! failure leads to the compensation of the nearest completed compensatable step
//! before it, then to the one before that, and so on down to the end of the undo.
//!
//! Because the shape is always that, the SVG uses a small deterministic layout
//! written for it rather than a general layout engine: `#[saga]` can then put a
//! picture in rustdoc that renders offline, and the same input always gives the
//! same bytes, so snapshots stay stable. Nodes and edges come out in source order.
//!
//! Ids in every format are generated (`s0`, `c0`, `start`, ...) and never taken
//! from user text; user text only ever appears inside quoted, escaped labels.

use core::fmt;
use core::time::Duration;
use std::fmt::Write as _;

use crate::step::{RetryPolicy, StepInfo, StepKind};

/// The steps of a saga in order, with their kinds, compensations and policies.
///
/// `#[saga]` builds one for each saga (`BookTripSaga::graph()`); it costs nothing at
/// run time, since it only borrows the `'static` step table the macro wrote. The
/// renderers turn it into a picture for documentation or for a dashboard.
///
/// ```
/// use sagaflow_graph::{RetryPolicy, SagaGraph, StepInfo, StepKind};
/// use std::time::Duration;
///
/// const STEPS: &[StepInfo] = &[
///     StepInfo::new("debit_customer", StepKind::Compensatable).with_compensation("refund_customer"),
///     StepInfo::new("book_flight", StepKind::Compensatable)
///         .with_compensation("cancel_flight")
///         .with_retry(RetryPolicy::retries(3))
///         .with_timeout(Duration::from_secs(2)),
///     StepInfo::new("check_hotel", StepKind::ReadOnly),
///     StepInfo::new("book_hotel", StepKind::Pivot),
///     StepInfo::new("email_itinerary", StepKind::Retriable),
/// ];
/// const GRAPH: SagaGraph = SagaGraph::new("travel", STEPS);
///
/// assert_eq!(GRAPH.pivot(), Some(3));
/// assert!(GRAPH.to_mermaid().starts_with("flowchart LR"));
/// assert!(GRAPH.to_dot().starts_with("digraph \"travel\""));
/// assert!(GRAPH.to_svg().contains("cancel_flight"));
/// assert_eq!(
///     GRAPH.to_string().lines().nth(2),
///     Some("2. book_flight (compensate: cancel_flight, retry 3, timeout 2s)"),
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SagaGraph {
    name: &'static str,
    steps: &'static [StepInfo],
}

impl SagaGraph {
    /// The graph of the saga `name` made of `steps`, in the order they run.
    ///
    /// `const` so that the macro can write the graph as a constant next to the step table.
    pub const fn new(name: &'static str, steps: &'static [StepInfo]) -> Self {
        SagaGraph { name, steps }
    }

    /// The saga's name, as the saga function is called.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The steps, in the order they run.
    pub const fn steps(&self) -> &'static [StepInfo] {
        self.steps
    }

    /// The index of the pivot step (the point of no return), if the saga has one.
    ///
    /// The macro allows at most one pivot; should a hand-built graph have several,
    /// this is the first, since that is where going back stops.
    pub const fn pivot(&self) -> Option<usize> {
        let mut i = 0;
        while i < self.steps.len() {
            if matches!(self.steps[i].kind(), StepKind::Pivot) {
                return Some(i);
            }
            i += 1;
        }
        None
    }

    /// The graph as a Mermaid `flowchart LR`, for Markdown renderers that draw Mermaid
    /// (GitHub, GitLab, many wikis).
    ///
    /// The forward chain runs `start → step… → done`; each compensation is a
    /// stadium-shaped node joined to its step by a dotted link, and the dotted
    /// arrows labelled `fails` show where each step's failure leads: to the
    /// compensations before it, in reverse order, down to `undone`. Pivots are
    /// hexagons with a thick border, read-only steps have a dashed border,
    /// retriable steps are rounded.
    ///
    /// Node ids are generated (`s0`, `c0`, ...); names only appear in double-quoted
    /// labels, with Mermaid's `#quot;`-style entity codes for every character that
    /// could end the label or start markup, so no step name can break the chart.
    ///
    /// ```
    /// use sagaflow_graph::{SagaGraph, StepInfo, StepKind};
    ///
    /// const STEPS: &[StepInfo] = &[
    ///     StepInfo::new("book_flight", StepKind::Compensatable).with_compensation("cancel_flight"),
    ///     StepInfo::new("charge", StepKind::Compensatable).with_compensation("refund"),
    /// ];
    /// let mermaid = SagaGraph::new("trip", STEPS).to_mermaid();
    /// assert!(mermaid.contains(r#"s1 -.->|fails| c0"#));
    /// assert!(mermaid.contains(r#"c0(["cancel_flight"])"#));
    /// ```
    pub fn to_mermaid(&self) -> String {
        let steps = self.steps;
        let last_fail = self.last_failing();
        let mut out = String::from("flowchart LR\n");
        // Writing to a `String` never fails, hence the ignored results below.
        out.push_str("    %% steps, in the order they run\n");
        out.push_str("    start((\"start\"))\n");
        for (i, step) in steps.iter().enumerate() {
            let label = mermaid_label(step.name(), &step_details(step));
            let (open, close) = match step.kind() {
                StepKind::Compensatable | StepKind::ReadOnly => ("[", "]"),
                StepKind::Pivot => ("{{", "}}"),
                StepKind::Retriable => ("(", ")"),
            };
            let _ = writeln!(out, "    s{i}{open}\"{label}\"{close}");
        }
        out.push_str("    done((\"done\"))\n");
        if steps.iter().any(|s| compensation_of(s).is_some()) {
            out.push_str("    %% compensations\n");
        }
        for (i, step) in steps.iter().enumerate() {
            if let Some(comp) = compensation_of(step) {
                let label = mermaid_label(comp, &compensation_details(step));
                let _ = writeln!(out, "    c{i}([\"{label}\"])");
            }
        }
        if last_fail.is_some() {
            out.push_str("    undone((\"undone\"))\n");
        }

        // Each group's members side by side, between a fork and a join.
        for (k, range) in self.groups().iter().enumerate() {
            let _ = writeln!(out, "    subgraph g{k} [\"at once\"]");
            for i in range.clone() {
                let _ = writeln!(out, "        s{i}");
            }
            out.push_str("    end\n");
        }
        out.push_str("    %% forward\n");
        for (from, to) in self.forward_edges() {
            let _ = writeln!(out, "    {from} --> {to}");
        }

        if last_fail.is_some() {
            out.push_str("    %% on failure\n");
        }
        for (i, step) in steps.iter().enumerate() {
            if compensation_of(step).is_some() {
                let _ = writeln!(out, "    s{i} -.- c{i}");
            }
            if can_fail(step) {
                for target in self.failure_targets(i) {
                    let _ = writeln!(out, "    s{i} -.->|fails| {target}");
                }
            }
        }
        for j in self.reachable_compensations() {
            for target in self.undo_next(j) {
                let _ = writeln!(out, "    c{j} -.-> {target}");
            }
        }

        let classes = [
            (StepKind::Pivot, "pivot", "stroke-width:3px"),
            (StepKind::ReadOnly, "readOnly", "stroke-dasharray:5 5"),
        ];
        for (kind, class, style) in classes {
            let ids: Vec<String> = steps
                .iter()
                .enumerate()
                .filter(|(_, s)| s.kind() == kind)
                .map(|(i, _)| format!("s{i}"))
                .collect();
            if !ids.is_empty() {
                let _ = writeln!(out, "    classDef {class} {style}");
                let _ = writeln!(out, "    class {} {class}", ids.join(","));
            }
        }
        out
    }

    /// The graph as Graphviz DOT, for `dot -Tsvg` and the many tools that read DOT.
    ///
    /// Same nodes and edges as [`to_mermaid`](Self::to_mermaid): compensations sit
    /// in the same rank (column) as their step, failure and undo edges are dashed,
    /// the pivot is a bold `doubleoctagon`, read-only steps have a dashed outline
    /// and retriable steps rounded corners. Backward edges carry `constraint=false`
    /// so that they do not disturb the left-to-right order of the steps.
    ///
    /// ```
    /// use sagaflow_graph::{SagaGraph, StepInfo, StepKind};
    ///
    /// const STEPS: &[StepInfo] = &[
    ///     StepInfo::new("book_flight", StepKind::Compensatable).with_compensation("cancel_flight"),
    ///     StepInfo::new("charge", StepKind::Pivot),
    /// ];
    /// let dot = SagaGraph::new("trip", STEPS).to_dot();
    /// assert!(dot.starts_with("digraph \"trip\" {"));
    /// assert!(dot.contains("s1 -> c0 [style=dashed, label=\"fails\", constraint=false];"));
    /// ```
    pub fn to_dot(&self) -> String {
        let steps = self.steps;
        let last_fail = self.last_failing();
        let mut out = String::new();
        // Writing to a `String` never fails, hence the ignored results below.
        let _ = writeln!(out, "digraph \"{}\" {{", dot_escape(self.name));
        out.push_str("    rankdir=LR;\n");
        out.push_str(
            "    node [shape=box, fontname=\"Helvetica,Arial,sans-serif\", fontsize=12];\n",
        );
        out.push_str("    edge [fontname=\"Helvetica,Arial,sans-serif\", fontsize=10];\n");
        out.push_str("    start [label=\"start\", shape=circle];\n");
        for (i, step) in steps.iter().enumerate() {
            let label = dot_label(step.name(), &step_details(step));
            let attrs = match step.kind() {
                StepKind::Compensatable => "",
                StepKind::ReadOnly => ", style=dashed",
                StepKind::Pivot => ", shape=doubleoctagon, style=bold, penwidth=2",
                StepKind::Retriable => ", style=rounded",
            };
            let _ = writeln!(out, "    s{i} [label=\"{label}\"{attrs}];");
        }
        out.push_str("    done [label=\"done\", shape=doublecircle];\n");
        for (i, step) in steps.iter().enumerate() {
            if let Some(comp) = compensation_of(step) {
                let label = dot_label(comp, &compensation_details(step));
                let _ = writeln!(
                    out,
                    "    c{i} [label=\"{label}\", style=\"rounded,filled\", fillcolor=\"#eeeeee\"];"
                );
            }
        }
        if last_fail.is_some() {
            out.push_str("    undone [label=\"undone\", shape=doublecircle, style=dashed];\n");
        }

        for (k, range) in self.groups().iter().enumerate() {
            let _ = writeln!(
                out,
                "    subgraph cluster_g{k} {{ label=\"at once\"; style=dashed; {} }}",
                range
                    .clone()
                    .map(|i| format!("s{i};"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        for (from, to) in self.forward_edges() {
            let _ = writeln!(out, "    {from} -> {to};");
        }
        for (i, step) in steps.iter().enumerate() {
            if compensation_of(step).is_some() {
                let _ = writeln!(out, "    s{i} -> c{i} [style=dotted, arrowhead=none];");
            }
            if can_fail(step) {
                for target in self.failure_targets(i) {
                    let _ = writeln!(
                        out,
                        "    s{i} -> {target} [style=dashed, label=\"fails\", constraint=false];"
                    );
                }
            }
        }
        for j in self.reachable_compensations() {
            for target in self.undo_next(j) {
                let _ = writeln!(
                    out,
                    "    c{j} -> {target} [style=dashed, constraint=false];"
                );
            }
        }

        // Each compensation in its step's column, `undone` under `start`.
        for (i, step) in steps.iter().enumerate() {
            if compensation_of(step).is_some() {
                let _ = writeln!(out, "    {{ rank=same; s{i}; c{i}; }}");
            }
        }
        if last_fail.is_some() {
            out.push_str("    { rank=same; start; undone; }\n");
        }
        out.push_str("}\n");
        out
    }

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
        let steps = self.steps;
        let last_fail = self.last_failing();
        let has_lower = last_fail.is_some() || steps.iter().any(|s| compensation_of(s).is_some());

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
            cols.push(Column {
                x,
                w,
                step_h: box_height(details.len()),
                details,
                comp,
                comp_h: box_height(comp_details.len()),
                comp_details,
            });
            x += w + GAP;
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
            width = width.max(2.0 * MARGIN + text_width(LEGEND, SMALL_CHAR_W));
            legend_y + MARGIN
        } else if has_lower {
            y_c + row_c / 2.0 + MARGIN
        } else {
            y_f + row_f / 2.0 + MARGIN
        };
        let width = even_ceil(width);
        let height = even_ceil(height);

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
        let arrow = format!("marker-end=\"url(#{p}-arrow)\"");

        // The forward row, in source order.
        pill(&mut out, left_cx, y_f, start_w, "start", THIN);
        let mut prev_right = left_cx + start_w / 2.0;
        for (i, (step, col)) in steps.iter().zip(&cols).enumerate() {
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
                    line(&mut out, prev_right, y_f, col.x - 6.0, y_f, &arrow);
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
                None => line(&mut out, prev_right, y_f, col.x, y_f, &arrow),
            }
            let (rx, stroke) = match step.kind() {
                StepKind::Compensatable => (3.0, THIN),
                StepKind::ReadOnly => (3.0, "stroke-width=\"1.5\" stroke-dasharray=\"5 3\""),
                StepKind::Pivot => (3.0, "stroke-width=\"3\""),
                StepKind::Retriable => (12.0, THIN),
            };
            boxed(
                &mut out,
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
        line(&mut out, prev_right, y_f, done_x, y_f, &arrow);
        pill(
            &mut out,
            done_x + done_w / 2.0,
            y_f,
            done_w,
            "done",
            "stroke-width=\"2.5\"",
        );

        // The compensations, each under its step and joined to it by a dotted line.
        for col in &cols {
            if let Some(comp) = col.comp {
                let cx = col.x + col.w / 2.0;
                line(
                    &mut out,
                    cx,
                    y_f + col.step_h / 2.0,
                    cx,
                    y_c - col.comp_h / 2.0,
                    "stroke-dasharray=\"2 3\"",
                );
                boxed(
                    &mut out,
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

        // The failure paths: from each step that can fail, down into the lane just
        // left of its own column (its own compensation does not run), then back
        // through the compensations to its left, right to left, to `undone`.
        if let Some(last) = last_fail {
            let dashed = "stroke-dasharray=\"6 4\"";
            for (step, col) in steps.iter().zip(&cols) {
                if can_fail(step) {
                    line(
                        &mut out,
                        col.x + 8.0,
                        y_f + col.step_h / 2.0,
                        col.x - GAP / 2.0,
                        y_c,
                        dashed,
                    );
                }
            }
            let dashed_arrow = format!("{dashed} {arrow}");
            let mut from = cols[last].x - GAP / 2.0;
            for col in cols[..last].iter().rev() {
                if col.comp.is_some() {
                    line(&mut out, from, y_c, col.x + col.w, y_c, &dashed_arrow);
                    from = col.x;
                }
            }
            line(
                &mut out,
                from,
                y_c,
                left_cx + undone_w / 2.0,
                y_c,
                &dashed_arrow,
            );
            pill(
                &mut out,
                left_cx,
                y_c,
                undone_w,
                "undone",
                "stroke-width=\"1.5\" stroke-dasharray=\"6 4\"",
            );
            let _ = writeln!(
                out,
                "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"currentColor\">{}</text>",
                num(MARGIN),
                num(legend_y),
                xml_escape(LEGEND)
            );
        }
        out.push_str("</svg>");
        out
    }

    /// Whether a step's failure leads anywhere: the last step that can fail for good.
    fn last_failing(&self) -> Option<usize> {
        self.steps.iter().rposition(can_fail)
    }

    /// The compensations that some failure can reach, in source order: those of
    /// the compensatable steps before the last step that can fail.
    fn reachable_compensations(&self) -> impl Iterator<Item = usize> + '_ {
        // A failing member's siblings after it are undone too.
        let end = self
            .last_failing()
            .map_or(0, |i| self.group_of(i).map_or(i, |r| r.end));
        (0..end).filter(|&j| compensation_of(&self.steps[j]).is_some())
    }
}

/// One line per step, in order, with its kind and its policies, under a line
/// naming the saga:
///
/// ```text
/// saga travel
/// 1. book_flight (compensate: cancel_flight, retry 3)
/// 2. book_hotel (pivot: point of no return)
/// 3. email_itinerary (retriable)
/// ```
///
/// Meant for logs and error messages, where a picture does not fit.
impl fmt::Display for SagaGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "saga {}", self.name)?;
        if self.steps.is_empty() {
            f.write_str(" (no steps)")?;
        }
        for (i, step) in self.steps.iter().enumerate() {
            let mut parts = vec![match step.kind() {
                StepKind::Compensatable => {
                    format!("compensate: {}", step.compensation().unwrap_or("?"))
                }
                StepKind::ReadOnly => "read-only".to_owned(),
                StepKind::Pivot => "pivot: point of no return".to_owned(),
                StepKind::Retriable => "retriable".to_owned(),
            }];
            parts.extend(policy_parts(step));
            if let Some(g) = step.group() {
                parts.push(format!("at once in group {}", g + 1));
            }
            if compensation_of(step).is_some()
                && step.compensation_retry() != RetryPolicy::COMPENSATION_DEFAULT
            {
                let retry = retry_text(step.compensation_retry(), false)
                    .unwrap_or_else(|| "no retry".to_owned());
                parts.push(format!("compensation {retry}"));
            }
            if compensation_of(step).is_some()
                && let Some(timeout) = step.compensation_timeout()
            {
                parts.push(format!("compensation timeout {}", format_duration(timeout)));
            }
            write!(f, "\n{}. {} ({})", i + 1, step.name(), parts.join(", "))?;
        }
        Ok(())
    }
}

/// The compensation drawn for a step: only a compensatable step has one, whatever
/// a hand-built [`StepInfo`] says.
pub(crate) fn compensation_of(step: &StepInfo) -> Option<&'static str> {
    match step.kind() {
        StepKind::Compensatable => step.compensation(),
        _ => None,
    }
}

/// Whether a step can fail for good: it can unless it is retried until it succeeds.
fn can_fail(step: &StepInfo) -> bool {
    step.retry().max_retries().is_some()
}

/// The lines under a step's name: its kind, then its policies.
fn step_details(step: &StepInfo) -> Vec<String> {
    let mut lines = Vec::new();
    match step.kind() {
        StepKind::Compensatable => {}
        StepKind::ReadOnly => lines.push("read-only".to_owned()),
        StepKind::Pivot => lines.push("point of no return".to_owned()),
        StepKind::Retriable => lines.push("↻ retriable".to_owned()),
    }
    let policies = policy_parts(step);
    if !policies.is_empty() {
        lines.push(policies.join(" · "));
    }
    lines
}

/// The line under a compensation's name: its retry policy when not the default,
/// and its timeout if it has one.
fn compensation_details(step: &StepInfo) -> Vec<String> {
    let retry = step.compensation_retry();
    let mut parts = Vec::new();
    if retry != RetryPolicy::COMPENSATION_DEFAULT {
        parts.push(retry_text(retry, false).unwrap_or_else(|| "no retry".to_owned()));
    }
    if let Some(timeout) = step.compensation_timeout() {
        parts.push(format!("timeout {}", format_duration(timeout)));
    }
    if parts.is_empty() {
        Vec::new()
    } else {
        vec![parts.join(" · ")]
    }
}

/// A step's retry and timeout, compactly: `retry 3`, `timeout 2s`.
fn policy_parts(step: &StepInfo) -> Vec<String> {
    let mut parts = Vec::new();
    if let Some(retry) = retry_text(step.retry(), step.kind() == StepKind::Retriable) {
        parts.push(retry);
    }
    if let Some(timeout) = step.timeout() {
        parts.push(format!("timeout {}", format_duration(timeout)));
    }
    parts
}

/// `retry 3`, `retry 3 (backoff 10ms..5s)`, `retry ∞`; `None` when there is nothing
/// to say (no retry, or retrying forever is what the kind means anyway).
fn retry_text(policy: RetryPolicy, forever_implied: bool) -> Option<String> {
    let backoff = (policy.backoff() != RetryPolicy::DEFAULT_BACKOFF
        || policy.max_backoff() != RetryPolicy::DEFAULT_MAX_BACKOFF)
        .then(|| {
            format!(
                "backoff {}..{}",
                format_duration(policy.backoff()),
                format_duration(policy.max_backoff())
            )
        });
    let count = match policy.max_retries() {
        Some(0) => return None,
        Some(n) => format!("retry {n}"),
        None if forever_implied => return backoff,
        None => "retry ∞".to_owned(),
    };
    Some(match backoff {
        Some(backoff) => format!("{count} ({backoff})"),
        None => count,
    })
}

/// A duration the way `#[step]` takes it, exactly, largest units first: `2s`,
/// `1m30s`, `1ms500us`. Shared with the runtime, which words its timeouts the
/// same way.
#[doc(hidden)]
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    let secs = d.as_secs();
    let nanos = u64::from(d.subsec_nanos());
    let parts = [
        (secs / 3600, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
        (nanos / 1_000_000, "ms"),
        (nanos / 1_000 % 1_000, "us"),
        (nanos % 1_000, "ns"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n != 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect()
}

// --- Mermaid ---------------------------------------------------------------------

fn mermaid_label(title: &str, details: &[String]) -> String {
    let mut label = mermaid_escape(title);
    for line in details {
        label.push_str("<br/>");
        label.push_str(&mermaid_escape(line));
    }
    label
}

/// Text for a double-quoted Mermaid label. Mermaid has no backslash escapes; it
/// turns `#name;` and `#123;` into HTML entities. Anything that could close the
/// label, open a shape or an edge label, start markup or a Markdown string, or
/// end the line becomes such a code.
fn mermaid_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '#' | '[' | ']' | '(' | ')' | '{' | '}' | '|' | '`' | '%' | ';' | ':' | '\\' => {
                let _ = write!(out, "#{};", u32::from(ch));
            }
            '\n' => out.push_str("<br/>"),
            c if c.is_control() => {
                let _ = write!(out, "#{};", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

// --- DOT -------------------------------------------------------------------------

fn dot_label(title: &str, details: &[String]) -> String {
    let mut label = dot_escape(title);
    for line in details {
        label.push_str("\\n");
        label.push_str(&dot_escape(line));
    }
    label
}

/// Text for a double-quoted DOT string: backslash and quote escaped (so that a
/// name cannot use Graphviz's `\N`-style escapes either), line breaks as `\n`.
fn dot_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

// --- SVG -------------------------------------------------------------------------

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
const LEGEND: &str = "dashed: when a step fails, the compensations to its left run, right to left";

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

/// Text for XML content and attribute values. Line breaks become character
/// references, so that no user text can put a blank line into the picture; other
/// control characters, which XML 1.0 forbids even as references, become `U+FFFD`.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Only `[A-Za-z0-9_-]`: safe in an XML id, a CSS selector and a `url(#…)`.
fn sanitize_id(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An id prefix given by the caller, made safe, and starting with a letter as HTML
/// ids should.
fn svg_prefix(prefix: &str) -> String {
    let clean = sanitize_id(prefix);
    if clean.starts_with(|c: char| c.is_ascii_alphabetic()) {
        clean
    } else {
        format!("sagaflow-{clean}")
    }
}

/// `sagaflow-<name>`; when the name had to be changed to be safe, a hash of the
/// real name is added, so that `a b` and `a_b` still get different prefixes.
fn default_prefix(name: &str) -> String {
    let clean = sanitize_id(name);
    if !name.is_empty() && clean == name {
        format!("sagaflow-{clean}")
    } else {
        format!("sagaflow-{clean}-{:08x}", fnv1a(name))
    }
}

/// 32-bit FNV-1a: small, stable across Rust versions and platforms (unlike
/// `DefaultHasher`), which the snapshots of generated docs need.
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRAVEL: &[StepInfo] = &[
        StepInfo::new("debit_customer", StepKind::Compensatable)
            .with_compensation("refund_customer"),
        StepInfo::new("book_flight", StepKind::Compensatable)
            .with_compensation("cancel_flight")
            .with_retry(RetryPolicy::retries(3))
            .with_timeout(Duration::from_secs(2)),
        StepInfo::new("check_hotel", StepKind::ReadOnly),
        StepInfo::new("book_hotel", StepKind::Pivot),
        StepInfo::new("email_itinerary", StepKind::Retriable),
    ];
    const GRAPH: SagaGraph = SagaGraph::new("travel", TRAVEL);

    const HOSTILE: &[StepInfo] = &[
        StepInfo::new("end", StepKind::Compensatable)
            .with_compensation("un\"do<it> & #x|[y]{z}\nend"),
        StepInfo::new("subgraph", StepKind::Compensatable).with_compensation("style"),
        StepInfo::new("x\"]; click s0 call alert(1)", StepKind::ReadOnly),
    ];
    const HOSTILE_GRAPH: SagaGraph = SagaGraph::new("a \"b\" <c>", HOSTILE);

    fn all_outputs(graph: &SagaGraph) -> [String; 4] {
        [
            graph.to_mermaid(),
            graph.to_dot(),
            graph.to_svg(),
            graph.to_string(),
        ]
    }

    /// The values of every `attr="..."` in `text`.
    fn attr_values<'a>(text: &'a str, attr: &str) -> Vec<&'a str> {
        let needle = format!(" {attr}=\"");
        text.match_indices(&needle)
            .map(|(at, _)| {
                let rest = &text[at + needle.len()..];
                &rest[..rest.find('"').unwrap()]
            })
            .collect()
    }

    #[test]
    fn same_input_same_output() {
        assert_eq!(all_outputs(&GRAPH), all_outputs(&GRAPH));
        let copy = SagaGraph::new("travel", TRAVEL);
        assert_eq!(all_outputs(&GRAPH), all_outputs(&copy));
    }

    #[test]
    fn accessors_and_pivot() {
        assert_eq!(GRAPH.name(), "travel");
        assert_eq!(GRAPH.steps().len(), 5);
        assert_eq!(GRAPH.pivot(), Some(3));
        assert_eq!(HOSTILE_GRAPH.pivot(), None);
        const PIVOT: Option<usize> = GRAPH.pivot();
        assert_eq!(PIVOT, Some(3));
    }

    #[test]
    fn mermaid_shape() {
        let m = GRAPH.to_mermaid();
        assert!(m.starts_with("flowchart LR\n"), "{m}");
        assert!(m.contains("    s0[\"debit_customer\"]\n"), "{m}");
        assert!(
            m.contains("    s1[\"book_flight<br/>retry 3 · timeout 2s\"]\n"),
            "{m}"
        );
        assert!(
            m.contains("    s3{{\"book_hotel<br/>point of no return\"}}\n"),
            "{m}"
        );
        assert!(
            m.contains("    s4(\"email_itinerary<br/>↻ retriable\")\n"),
            "{m}"
        );
        assert!(m.contains("    c0([\"refund_customer\"])\n"), "{m}");
        assert!(m.contains("    c1([\"cancel_flight\"])\n"), "{m}");
        assert!(m.contains("class s3 pivot\n"), "{m}");
        assert!(m.contains("class s2 readOnly\n"), "{m}");
        // Forward chain.
        for edge in ["start --> s0", "s0 --> s1", "s3 --> s4", "s4 --> done"] {
            assert!(m.contains(&format!("    {edge}\n")), "{edge} in {m}");
        }
        // Failure paths, in reverse order down to `undone`.
        for edge in [
            "s0 -.->|fails| undone",
            "s1 -.->|fails| c0",
            "s2 -.->|fails| c1",
            "s3 -.->|fails| c1",
            "c1 -.-> c0",
            "c0 -.-> undone",
            "s0 -.- c0",
            "s1 -.- c1",
        ] {
            assert!(m.contains(&format!("    {edge}\n")), "{edge} in {m}");
        }
        // A step retried until it succeeds never fails for good.
        assert!(!m.contains("s4 -.->"), "{m}");
    }

    #[test]
    fn dot_shape() {
        let d = GRAPH.to_dot();
        assert!(
            d.starts_with("digraph \"travel\" {\n    rankdir=LR;\n"),
            "{d}"
        );
        assert!(d.ends_with("}\n"), "{d}");
        assert!(
            d.contains("s1 [label=\"book_flight\\nretry 3 · timeout 2s\"];"),
            "{d}"
        );
        assert!(
            d.contains("s3 [label=\"book_hotel\\npoint of no return\", shape=doubleoctagon"),
            "{d}"
        );
        assert!(
            d.contains("s2 [label=\"check_hotel\\nread-only\", style=dashed];"),
            "{d}"
        );
        assert!(
            d.contains("s4 [label=\"email_itinerary\\n↻ retriable\", style=rounded];"),
            "{d}"
        );
        assert!(
            d.contains("c1 -> c0 [style=dashed, constraint=false];"),
            "{d}"
        );
        assert!(
            d.contains("s2 -> c1 [style=dashed, label=\"fails\", constraint=false];"),
            "{d}"
        );
        assert!(d.contains("{ rank=same; s1; c1; }"), "{d}");
    }

    #[test]
    fn every_compensation_appears_and_only_those() {
        for output in all_outputs(&GRAPH) {
            assert!(output.contains("refund_customer"), "{output}");
            assert!(output.contains("cancel_flight"), "{output}");
        }
        let m = GRAPH.to_mermaid();
        let d = GRAPH.to_dot();
        for (i, step) in TRAVEL.iter().enumerate() {
            let has = step.kind() == StepKind::Compensatable;
            assert_eq!(m.contains(&format!("    c{i}([")), has, "c{i} in {m}");
            assert_eq!(d.contains(&format!("    c{i} [")), has, "c{i} in {d}");
        }
        // A read-only step that (wrongly) names a compensation still gets none.
        const ODD: &[StepInfo] =
            &[StepInfo::new("peek", StepKind::ReadOnly).with_compensation("unpeek")];
        for output in all_outputs(&SagaGraph::new("odd", ODD)) {
            assert!(!output.contains("unpeek"), "{output}");
        }
    }

    #[test]
    fn mermaid_escapes_labels_and_never_uses_names_as_ids() {
        let m = HOSTILE_GRAPH.to_mermaid();
        for line in m.lines().skip(1) {
            let line = line.trim_start();
            if line.starts_with("%%") {
                continue;
            }
            let id: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let known = ["start", "done", "undone", "classDef", "class"];
            let generated = (id.starts_with('s') || id.starts_with('c'))
                && id.len() > 1
                && id[1..].chars().all(|c| c.is_ascii_digit());
            assert!(
                generated || known.contains(&id.as_str()),
                "id {id:?} in {line}"
            );
            // Labels hold exactly two quotes: their delimiters.
            let quotes = line.matches('"').count();
            assert!(quotes == 0 || quotes == 2, "{line}");
            // The only markup is ours.
            assert_eq!(
                line.matches('<').count(),
                line.matches("<br/>").count(),
                "{line}"
            );
        }
        assert!(m.contains("s0[\"end\"]"), "{m}");
        assert!(
            m.contains(
                "c0([\"un#quot;do#lt;it#gt; #amp; #35;x#124;#91;y#93;#123;z#125;<br/>end\"])"
            ),
            "{m}"
        );
    }

    #[test]
    fn dot_escapes_labels() {
        let d = HOSTILE_GRAPH.to_dot();
        assert!(d.starts_with("digraph \"a \\\"b\\\" <c>\" {"), "{d}");
        assert!(
            d.contains("c0 [label=\"un\\\"do<it> & #x|[y]{z}\\nend\""),
            "{d}"
        );
        assert!(
            d.contains("s2 [label=\"x\\\"]; click s0 call alert(1)\\nread-only\""),
            "{d}"
        );
        let escaped = dot_escape("a\\N\"b\nc");
        assert_eq!(escaped, "a\\\\N\\\"b\\nc");
    }

    #[test]
    fn svg_is_self_contained_and_safe() {
        for graph in [GRAPH, HOSTILE_GRAPH, SagaGraph::new("empty", &[])] {
            let svg = graph.to_svg();
            assert!(!svg.contains("\n\n"), "{svg}");
            assert!(svg.lines().all(|l| !l.trim().is_empty()), "{svg}");
            assert!(
                svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" "),
                "{svg}"
            );
            assert!(svg.ends_with("</svg>"), "{svg}");
            assert_eq!(svg.matches("<svg").count(), 1, "{svg}");
            assert_eq!(svg.matches("</svg>").count(), 1, "{svg}");
            assert!(svg.contains("<title id="), "{svg}");
            let root = svg.lines().next().unwrap();
            for attr in ["width", "height", "viewBox"] {
                assert_eq!(attr_values(root, attr).len(), 1, "{attr} in {root}");
            }
            for banned in [
                "<script",
                "<style",
                "@import",
                "href",
                "font-face",
                "<foreignObject",
            ] {
                assert!(!svg.contains(banned), "{banned} in {svg}");
            }
            // Colours follow the page; nothing is painted in a fixed colour.
            for value in attr_values(&svg, "stroke")
                .into_iter()
                .chain(attr_values(&svg, "fill"))
            {
                assert!(value == "currentColor" || value == "none", "{value}");
            }
        }
        let svg = HOSTILE_GRAPH.to_svg();
        assert!(
            svg.contains("un&quot;do&lt;it&gt; &amp; #x|[y]{z}&#10;end"),
            "{svg}"
        );
        assert!(!svg.contains("<it>"), "{svg}");
        assert!(svg.contains("<title id=\"sagaflow-a__b___c_-"), "{svg}");
    }

    #[test]
    fn svg_elements_have_no_duplicate_attributes() {
        for graph in [GRAPH, HOSTILE_GRAPH] {
            let svg = graph.to_svg();
            for element in svg.split('<') {
                let tag = element.split('>').next().unwrap_or("");
                let mut names: Vec<&str> = tag
                    .match_indices("=\"")
                    .map(|(at, _)| {
                        let before = &tag[..at];
                        let start = before.rfind(' ').map_or(0, |i| i + 1);
                        &before[start..]
                    })
                    .collect();
                let count = names.len();
                names.sort_unstable();
                names.dedup();
                assert_eq!(names.len(), count, "duplicate attribute in <{tag}>");
            }
        }
    }

    #[test]
    fn svg_ids_are_prefixed() {
        let svg = GRAPH.to_svg();
        let ids = attr_values(&svg, "id");
        assert!(ids.contains(&"sagaflow-travel-arrow"), "{svg}");
        assert!(
            ids.iter().all(|id| id.starts_with("sagaflow-travel-")),
            "{ids:?}"
        );
        for (at, _) in svg.match_indices("url(#") {
            assert!(svg[at + 5..].starts_with("sagaflow-travel-"), "{svg}");
        }
        for id in attr_values(&svg, "aria-labelledby")[0].split(' ') {
            assert!(ids.contains(&id), "{id}");
        }

        let custom = GRAPH.to_svg_with_prefix("my page/graph 1");
        assert!(
            attr_values(&custom, "id")
                .iter()
                .all(|id| id.starts_with("my_page_graph_1-"))
        );
        let numeric = GRAPH.to_svg_with_prefix("1");
        assert!(
            attr_values(&numeric, "id")
                .iter()
                .all(|id| id.starts_with("sagaflow-1-"))
        );

        let hostile = HOSTILE_GRAPH.to_svg();
        for id in attr_values(&hostile, "id") {
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                "{id}"
            );
        }
        // Names that sanitize alike still get different prefixes.
        assert_ne!(default_prefix("a b"), default_prefix("a_b"));
        assert_ne!(default_prefix("a b"), default_prefix("a.b"));
        assert_eq!(default_prefix("book_trip"), "sagaflow-book_trip");
    }

    #[test]
    fn svg_marks_kinds() {
        let svg = GRAPH.to_svg();
        assert_eq!(svg.matches("stroke-width=\"3\"").count(), 1, "{svg}");
        assert!(svg.contains(">point of no return</text>"), "{svg}");
        assert!(svg.contains(">↻ retriable</text>"), "{svg}");
        assert!(svg.contains(">read-only</text>"), "{svg}");
        assert!(svg.contains("stroke-dasharray=\"5 3\""), "{svg}");
        assert!(svg.contains(">undone</text>"), "{svg}");
        // Only steps that can fail have a failure line: four of the five.
        let drops = svg
            .lines()
            .filter(|l| l.starts_with("<line") && l.ends_with("stroke-dasharray=\"6 4\"/>"));
        assert_eq!(drops.count(), 4, "{svg}");
        // And two dotted links, one per compensation.
        assert_eq!(svg.matches("stroke-dasharray=\"2 3\"").count(), 2, "{svg}");
    }

    #[test]
    fn nothing_fails_nothing_undone() {
        const STEPS: &[StepInfo] = &[StepInfo::new("notify", StepKind::Retriable)];
        let graph = SagaGraph::new("notify", STEPS);
        assert!(!graph.to_mermaid().contains("undone"));
        assert!(!graph.to_dot().contains("undone"));
        assert!(!graph.to_svg().contains("undone"));
        assert!(graph.to_mermaid().contains("    s0 --> done\n"));
    }

    #[test]
    fn display_lists_steps() {
        assert_eq!(
            GRAPH.to_string(),
            "saga travel\n\
             1. debit_customer (compensate: refund_customer)\n\
             2. book_flight (compensate: cancel_flight, retry 3, timeout 2s)\n\
             3. check_hotel (read-only)\n\
             4. book_hotel (pivot: point of no return)\n\
             5. email_itinerary (retriable)"
        );
        const TUNED: &[StepInfo] = &[StepInfo::new("pay", StepKind::Compensatable)
            .with_compensation("refund")
            .with_compensation_retry(RetryPolicy::retries(2))];
        assert_eq!(
            SagaGraph::new("t", TUNED).to_string(),
            "saga t\n1. pay (compensate: refund, compensation retry 2)"
        );
        const BOUNDED: &[StepInfo] = &[StepInfo::new("pay", StepKind::Compensatable)
            .with_compensation("refund")
            .with_compensation_retry(RetryPolicy::retries(2))
            .with_compensation_timeout(Duration::from_secs(5))];
        let bounded = SagaGraph::new("t", BOUNDED);
        assert_eq!(
            bounded.to_string(),
            "saga t\n1. pay (compensate: refund, compensation retry 2, compensation timeout 5s)"
        );
        // Under the compensation's name in the pictures, as the step's own
        // policies are under the step's.
        assert!(
            bounded.to_mermaid().contains("retry 2 · timeout 5s"),
            "{}",
            bounded.to_mermaid()
        );
        assert!(bounded.to_dot().contains("retry 2 · timeout 5s"));
        assert!(bounded.to_svg().contains("retry 2 · timeout 5s"));
        assert_eq!(SagaGraph::new("e", &[]).to_string(), "saga e (no steps)");
    }

    #[test]
    fn policies_are_compact() {
        assert_eq!(format_duration(Duration::from_secs(2)), "2s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_micros(1_500)), "1ms500us");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(retry_text(RetryPolicy::NONE, false), None);
        assert_eq!(retry_text(RetryPolicy::FOREVER, true), None);
        assert_eq!(
            retry_text(RetryPolicy::FOREVER, false).as_deref(),
            Some("retry ∞")
        );
        let tuned = RetryPolicy::retries(3)
            .with_backoff(Duration::from_millis(10))
            .with_max_backoff(Duration::from_secs(5));
        assert_eq!(
            retry_text(tuned, false).as_deref(),
            Some("retry 3 (backoff 10ms..5s)")
        );
    }
}
