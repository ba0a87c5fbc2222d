//! The Graphviz DOT renderer.

use std::fmt::Write as _;

use super::*;

impl SagaGraph {
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
        let mut out = String::new();
        self.dot_nodes(&mut out);
        self.dot_edges(&mut out);
        // Each compensation in its step's column, `undone` under `start`.
        for (i, step) in self.steps.iter().enumerate() {
            if compensation_of(step).is_some() {
                let _ = writeln!(out, "    {{ rank=same; s{i}; c{i}; }}");
            }
        }
        if self.last_failing().is_some() {
            out.push_str("    { rank=same; start; undone; }\n");
        }
        out.push_str("}\n");
        out
    }

    /// The graph's header and its nodes: steps, compensations, confirms, the
    /// groups' clusters and the branches' diamonds.
    fn dot_nodes(&self, out: &mut String) {
        let steps = self.steps;
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
                StepKind::Compensatable | StepKind::Tcc => "",
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
        for (i, step) in steps.iter().enumerate() {
            if let Some(confirm) = confirm_of(step) {
                let label = dot_label(confirm, &[]);
                let _ = writeln!(out, "    f{i} [label=\"{label}\", shape=parallelogram];");
            }
        }
        if self.last_failing().is_some() {
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
        for (k, b) in self.branches().iter().enumerate() {
            let _ = writeln!(
                out,
                "    b{k} [label=\"{}\", shape=diamond];",
                dot_escape(b.label())
            );
        }
    }

    /// Forward edges, each step's compensation, confirm and failure edges, and
    /// the undo edges from one compensation to the next.
    fn dot_edges(&self, out: &mut String) {
        for (from, to, label) in self.forward_edges() {
            match label {
                Some(label) => {
                    let _ = writeln!(out, "    {from} -> {to} [label=\"{}\"];", dot_escape(label));
                }
                None => {
                    let _ = writeln!(out, "    {from} -> {to};");
                }
            }
        }
        for (i, step) in self.steps.iter().enumerate() {
            if compensation_of(step).is_some() {
                if step.kind() == StepKind::Tcc {
                    let _ = writeln!(
                        out,
                        "    s{i} -> c{i} [style=dotted, arrowhead=none, label=\"cancel\"];"
                    );
                } else {
                    let _ = writeln!(out, "    s{i} -> c{i} [style=dotted, arrowhead=none];");
                }
            }
            if confirm_of(step).is_some() {
                let _ = writeln!(
                    out,
                    "    s{i} -> f{i} [style=bold, penwidth=2, label=\"confirm on commit\", constraint=false];"
                );
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
    }
}

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
pub(super) fn dot_escape(text: &str) -> String {
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
