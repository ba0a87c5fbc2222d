//! The Mermaid renderer: a `flowchart LR` for Markdown renderers that draw Mermaid.

use std::fmt::Write as _;

use super::*;

impl SagaGraph {
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
        let mut out = String::from("flowchart LR\n");
        self.mermaid_nodes(&mut out);
        self.mermaid_edges(&mut out);
        self.mermaid_classes(&mut out);
        out
    }

    /// The steps, branches, compensations, confirms and `undone`, and each
    /// group as a subgraph.
    fn mermaid_nodes(&self, out: &mut String) {
        let steps = self.steps;
        // Writing to a `String` never fails, hence the ignored results below.
        out.push_str("    %% steps, in the order they run\n");
        out.push_str("    start((\"start\"))\n");
        for (i, step) in steps.iter().enumerate() {
            let label = mermaid_label(step.name(), &step_details(step));
            let (open, close) = match step.kind() {
                StepKind::Compensatable | StepKind::ReadOnly | StepKind::Tcc => ("[", "]"),
                StepKind::Pivot => ("{{", "}}"),
                StepKind::Retriable => ("(", ")"),
            };
            let _ = writeln!(out, "    s{i}{open}\"{label}\"{close}");
        }
        for (k, b) in self.branches().iter().enumerate() {
            let _ = writeln!(out, "    b{k}{{\"{}\"}}", mermaid_escape(b.label()));
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
        for (i, step) in steps.iter().enumerate() {
            if let Some(confirm) = confirm_of(step) {
                let label = mermaid_label(confirm, &[]);
                let _ = writeln!(out, "    f{i}[/\"{label}\"/]");
            }
        }
        if self.last_failing().is_some() {
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
    }

    /// Forward edges; on failure, each step's compensation and failure edges
    /// and the undo edges; on commit, the confirms.
    fn mermaid_edges(&self, out: &mut String) {
        let steps = self.steps;
        out.push_str("    %% forward\n");
        for (from, to, label) in self.forward_edges() {
            match label {
                Some(label) => {
                    let label = mermaid_escape(label);
                    let _ = writeln!(out, "    {from} -->|\"{label}\"| {to}");
                }
                None => {
                    let _ = writeln!(out, "    {from} --> {to}");
                }
            }
        }

        if self.last_failing().is_some() {
            out.push_str("    %% on failure\n");
        }
        for (i, step) in steps.iter().enumerate() {
            if compensation_of(step).is_some() {
                if step.kind() == StepKind::Tcc {
                    let _ = writeln!(out, "    s{i} -.-|cancel| c{i}");
                } else {
                    let _ = writeln!(out, "    s{i} -.- c{i}");
                }
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
        if steps.iter().any(|s| confirm_of(s).is_some()) {
            out.push_str("    %% on commit, at once\n");
        }
        for (i, step) in steps.iter().enumerate() {
            if confirm_of(step).is_some() {
                let _ = writeln!(out, "    s{i} ==>|confirm on commit| f{i}");
            }
        }
    }

    /// The pivot's and the read-only steps' styles.
    fn mermaid_classes(&self, out: &mut String) {
        let steps = self.steps;
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
    }
}

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
