//! The renderers' tests.

use super::*;
use dot::dot_escape;
use svg::default_prefix;

mod svg_branches;

const TRAVEL: &[StepInfo] = &[
    StepInfo::new("debit_customer", StepKind::Compensatable).with_compensation("refund_customer"),
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
    StepInfo::new("end", StepKind::Compensatable).with_compensation("un\"do<it> & #x|[y]{z}\nend"),
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
        m.contains("c0([\"un#quot;do#lt;it#gt; #amp; #35;x#124;#91;y#93;#123;z#125;<br/>end\"])"),
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

const TCC: &[StepInfo] = &[
    StepInfo::new("hold_seat", StepKind::Tcc)
        .with_compensation("release_seat")
        .with_confirm("confirm_seat"),
    StepInfo::new("charge", StepKind::Pivot),
    StepInfo::new("email", StepKind::Retriable),
];

#[test]
fn a_tcc_step_draws_its_confirm_and_its_cancel_apart_from_compensations() {
    let g = SagaGraph::new("fly", TCC);
    let mermaid = g.to_mermaid();
    assert!(mermaid.contains("s0 -.-|cancel| c0"), "{mermaid}");
    assert!(mermaid.contains("f0[/\"confirm_seat\"/]"), "{mermaid}");
    assert!(
        mermaid.contains("s0 ==>|confirm on commit| f0"),
        "{mermaid}"
    );
    // A failed try is cancelled first, and so is the pivot's failure.
    assert!(mermaid.contains("s0 -.->|fails| c0"), "{mermaid}");
    assert!(mermaid.contains("s1 -.->|fails| c0"), "{mermaid}");
    assert!(mermaid.contains("c0 -.-> undone"), "{mermaid}");
    let dot = g.to_dot();
    assert!(
        dot.contains("s0 -> c0 [style=dotted, arrowhead=none, label=\"cancel\"];"),
        "{dot}"
    );
    assert!(dot.contains("f0 [label=\"confirm_seat\", shape=parallelogram];"));
    assert!(dot.contains("s0 -> f0 [style=bold, penwidth=2, label=\"confirm on commit\""));
    let svg = g.to_svg();
    assert!(svg.contains("✓ confirm_seat on commit"), "{svg}");
    assert!(svg.contains("release_seat"));
    assert_eq!(
        g.to_string(),
        "saga fly\n1. hold_seat (tcc: confirm confirm_seat, cancel release_seat)\n2. charge (pivot: point of no return)\n3. email (retriable)"
    );
}
