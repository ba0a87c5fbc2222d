//! The pictures of the example sagas, checked three ways:
//!
//! - snapshots: `to_mermaid()`, `to_dot()` and `to_svg()` of each example saga
//!   are compared byte for byte with `tests/snapshots/`, and the committed
//!   pictures under the workspace's `docs/` (shown in the README) with `to_svg()`;
//! - well-formedness: the DOT is fed to Graphviz's `dot`, the SVG to a small XML
//!   checker, and the Mermaid to Mermaid's own parser (the `mermaid` npm package
//!   under Node.js, with jsdom for the DOM it needs: `tests/mermaid/check.mjs`)
//!   and to a small structural checker, stricter about the subset we write (the
//!   parser lets a raw `"` in a label through when it can);
//! - escaping: a hand-built saga whose names are made to break each format.
//!
//! After an intended change to the renderers, rewrite the files with
//!
//! ```text
//! SAGAFLOW_BLESS=1 cargo test -p sagaflow-examples --test graphs
//! ```
//!
//! and review the diff. The DOT check needs Graphviz (`apt-get install graphviz`);
//! `SAGAFLOW_SKIP_DOT=1` skips it where it cannot be installed. The Mermaid parse
//! check needs Node.js 20.19 or later and, once, `npm ci --prefix tests/mermaid
//! --no-audit --no-fund` at the workspace root; without them it says it was
//! skipped and passes, unless `SAGAFLOW_MERMAID_CHECK=1` (set by CI) requires it.

use std::collections::HashSet;
use std::fs;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sagaflow::{ArmInfo, BranchInfo, RetryPolicy, SagaGraph, StepInfo, StepKind};
use sagaflow_examples::checkout::CheckoutSaga;
use sagaflow_examples::provision::ProvisionSaga;
use sagaflow_examples::travel::BookTripSaga;

const BLESS: &str = "SAGAFLOW_BLESS=1 cargo test -p sagaflow-examples --test graphs";

/// The example sagas, under the names of their snapshot files.
fn examples() -> [(&'static str, SagaGraph); 3] {
    [
        ("travel", BookTripSaga::graph()),
        ("checkout", CheckoutSaga::graph()),
        ("provision", ProvisionSaga::graph()),
    ]
}

/// A saga whose names try to break every format: a Mermaid keyword, quotes,
/// markup, DOT syntax, Mermaid entity codes and shape brackets.
const HOSTILE_STEPS: &[StepInfo] = &[
    StepInfo::new("end", StepKind::Compensatable).with_compensation("undo \"end\""),
    StepInfo::new("say \"hi\"", StepKind::ReadOnly),
    StepInfo::new("<&>", StepKind::Compensatable)
        .with_compensation("</svg><script>alert(1)</script>")
        .with_retry(RetryPolicy::retries(2)),
    StepInfo::new("a -> b; } digraph {", StepKind::Pivot),
    StepInfo::new("subgraph [x] |y| #quot; %% z", StepKind::Retriable),
];
const HOSTILE: SagaGraph = SagaGraph::new("graph \"end\" <&>", HOSTILE_STEPS);

/// The graphs that the unit tests in `graph/src/graph.rs` draw (copied: this
/// crate cannot reach them), for the Mermaid parser: a retried step with a
/// timeout, more hostile names (a newline, `|`, braces, a `click` call), a
/// read-only step that names a compensation, a saga that cannot fail, a tuned
/// and a time-limited compensation, no steps, and the policy texts of
/// `policies_are_compact`.
const GRAPH_CRATE_GRAPHS: &[(&str, SagaGraph)] = &[
    (
        // Branches: diamonds, labelled arms (one without steps), a nested
        // branch, and conditions with the characters Mermaid reads.
        "unit-branches",
        SagaGraph::new(
            "ship",
            &[
                StepInfo::new("reserve", StepKind::Compensatable).with_compensation("release"),
                StepInfo::new("ship_express", StepKind::Compensatable)
                    .with_compensation("cancel_express"),
                StepInfo::new("quote", StepKind::ReadOnly),
                StepInfo::new("ship_ground", StepKind::Compensatable)
                    .with_compensation("cancel_ground"),
                StepInfo::new("charge", StepKind::Compensatable).with_compensation("refund"),
            ],
        )
        .with_branches(&[
            BranchInfo::new(
                "order.express && !order.big",
                &[ArmInfo::new("true", 1, 2), ArmInfo::new("false", 2, 4)],
            ),
            BranchInfo::new(
                "match (order.region, \"x|y\")",
                &[
                    ArmInfo::new("Region::Eu | {x}", 2, 3),
                    ArmInfo::new("_", 3, 3),
                ],
            ),
        ]),
    ),
    (
        "unit-travel",
        SagaGraph::new(
            "travel",
            &[
                StepInfo::new("Bank::debit_customer", StepKind::Compensatable)
                    .with_compensation("refund_customer"),
                StepInfo::new("Airline::book_flight", StepKind::Compensatable)
                    .with_compensation("cancel_flight")
                    .with_retry(RetryPolicy::retries(3))
                    .with_timeout(Duration::from_secs(2)),
                StepInfo::new("check_hotel", StepKind::ReadOnly),
                StepInfo::new("Hotels::book_hotel", StepKind::Pivot),
                StepInfo::new("email_itinerary", StepKind::Retriable),
            ],
        ),
    ),
    (
        "unit-hostile",
        SagaGraph::new(
            "a \"b\" <c>",
            &[
                StepInfo::new("end", StepKind::Compensatable)
                    .with_compensation("un\"do<it> & #x|[y]{z}\nend"),
                StepInfo::new("subgraph", StepKind::Compensatable).with_compensation("style"),
                StepInfo::new("x\"]; click s0 call alert(1)", StepKind::ReadOnly),
            ],
        ),
    ),
    (
        "unit-odd",
        SagaGraph::new(
            "odd",
            &[StepInfo::new("peek", StepKind::ReadOnly).with_compensation("unpeek")],
        ),
    ),
    (
        "unit-notify",
        SagaGraph::new("notify", &[StepInfo::new("notify", StepKind::Retriable)]),
    ),
    (
        "unit-tuned",
        SagaGraph::new(
            "t",
            &[StepInfo::new("pay", StepKind::Compensatable)
                .with_compensation("refund")
                .with_compensation_retry(RetryPolicy::retries(2))],
        ),
    ),
    (
        "unit-bounded",
        SagaGraph::new(
            "t",
            &[StepInfo::new("pay", StepKind::Compensatable)
                .with_compensation("refund")
                .with_compensation_retry(RetryPolicy::retries(2))
                .with_compensation_timeout(Duration::from_secs(5))],
        ),
    ),
    ("unit-empty", SagaGraph::new("e", &[])),
    (
        "unit-policies",
        SagaGraph::new(
            "policies",
            &[
                StepInfo::new("forever", StepKind::Compensatable)
                    .with_compensation("undo")
                    .with_retry(RetryPolicy::FOREVER),
                StepInfo::new("tuned", StepKind::Compensatable)
                    .with_compensation("undo")
                    .with_retry(
                        RetryPolicy::retries(3)
                            .with_backoff(Duration::from_millis(10))
                            .with_max_backoff(Duration::from_secs(5)),
                    )
                    .with_timeout(Duration::from_micros(1_500)),
            ],
        ),
    ),
];

// ---------------------------------------------------------------------------
// Snapshots and the committed pictures
// ---------------------------------------------------------------------------

fn blessing() -> bool {
    std::env::var_os("SAGAFLOW_BLESS").is_some_and(|v| v == "1")
}

fn snapshot_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(file)
}

/// Compares `actual` with the file at `path` byte for byte, or writes the file
/// when blessing.
fn check_file(path: &Path, actual: &str) {
    if blessing() {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        fs::write(path, actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("blessed {}", path.display());
        return;
    }
    let expected = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => panic!(
            "{} cannot be read ({e}); write it with `{BLESS}`",
            path.display()
        ),
    };
    if expected == actual {
        return;
    }
    let (line, committed, rendered) = first_difference(&expected, actual);
    panic!(
        "{} is stale: it differs from what the renderer draws now, first at line {line}:\n\
         \x20 committed: {committed}\n\
         \x20 rendered:  {rendered}\n\
         If the change is intended, re-bless with `{BLESS}` and review the diff.",
        path.display()
    );
}

fn first_difference<'a>(expected: &'a str, actual: &'a str) -> (usize, &'a str, &'a str) {
    let mut expected_lines = expected.split('\n');
    let mut actual_lines = actual.split('\n');
    let mut n = 1;
    loop {
        match (expected_lines.next(), actual_lines.next()) {
            (Some(e), Some(a)) if e == a => n += 1,
            (e, a) => {
                return (
                    n,
                    e.unwrap_or("<end of file>"),
                    a.unwrap_or("<end of file>"),
                );
            }
        }
    }
}

#[test]
fn mermaid_snapshots() {
    for (name, graph) in examples() {
        check_file(&snapshot_path(&format!("{name}.mmd")), &graph.to_mermaid());
    }
}

#[test]
fn dot_snapshots() {
    for (name, graph) in examples() {
        check_file(&snapshot_path(&format!("{name}.dot")), &graph.to_dot());
    }
}

#[test]
fn svg_snapshots() {
    for (name, graph) in examples() {
        check_file(&snapshot_path(&format!("{name}.svg")), &graph.to_svg());
    }
}

/// The pictures the README shows are the ones the renderer draws today.
#[test]
fn committed_pictures_in_docs_are_up_to_date() {
    let docs = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs"));
    check_file(
        &docs.join("travel.svg"),
        &BookTripSaga::graph().to_svg_standalone(),
    );
    check_file(
        &docs.join("provision.svg"),
        &ProvisionSaga::graph().to_svg_standalone(),
    );
}

#[test]
fn a_stale_file_is_reported_with_the_way_to_fix_it() {
    if blessing() {
        return;
    }
    let path = std::env::temp_dir().join(format!("sagaflow-stale-{}.txt", std::process::id()));
    fs::write(&path, "one\ntwo\n").unwrap();
    let message = std::panic::catch_unwind(|| check_file(&path, "one\nthree\n"))
        .expect_err("a stale file must fail");
    let _ = fs::remove_file(&path);
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("first at line 2"), "{message}");
    assert!(message.contains("committed: two"), "{message}");
    assert!(message.contains("rendered:  three"), "{message}");
    assert!(message.contains(BLESS), "{message}");
}

// ---------------------------------------------------------------------------
// DOT: parsed by Graphviz
// ---------------------------------------------------------------------------

/// Runs `dot -Tsvg` on `dot_text` and returns its SVG, or `None` when Graphviz
/// is missing and `SAGAFLOW_SKIP_DOT=1` says that is fine.
fn render_with_graphviz(name: &str, dot_text: &str) -> Option<String> {
    let child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if std::env::var_os("SAGAFLOW_SKIP_DOT").is_some_and(|v| v == "1") {
                eprintln!(
                    "`dot` not found; SAGAFLOW_SKIP_DOT=1, so the DOT of {name} is not parsed"
                );
                return None;
            }
            panic!(
                "Graphviz's `dot` is not installed, so the DOT output cannot be checked: \
                 install it (`apt-get install graphviz`), or set SAGAFLOW_SKIP_DOT=1 to skip this check"
            );
        }
        Err(e) => panic!("cannot run `dot`: {e}"),
    };
    // `dot` reads all of its input before it writes, so writing first cannot deadlock.
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(dot_text.as_bytes()).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "`dot -Tsvg` rejected the DOT of {name} ({}):\n{stderr}\n{dot_text}",
        output.status
    );
    assert!(
        !stderr.contains("Error") && !stderr.contains("syntax"),
        "`dot -Tsvg` complained about the DOT of {name}:\n{stderr}\n{dot_text}"
    );
    assert!(
        stdout.contains("<svg") && stdout.contains("</svg>"),
        "`dot -Tsvg` drew nothing for {name}:\n{stdout}"
    );
    Some(stdout)
}

/// The node and edge statements of our DOT (one per line, as the renderer writes
/// them: `id [label=..];` and `id -> id;` or `id -> id [..];`).
fn dot_statement_counts(dot_text: &str) -> (usize, usize) {
    let mut nodes = 0;
    let mut edges = 0;
    for line in dot_text.lines().map(str::trim) {
        let Some((id, rest)) = line.split_once(' ') else {
            continue;
        };
        if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || ["node", "edge", "graph"].contains(&id)
        {
            continue;
        }
        if rest.starts_with("[label=") {
            nodes += 1;
        } else if rest.starts_with("-> ") {
            edges += 1;
        }
    }
    (nodes, edges)
}

/// `dot` parses the text, and draws exactly the nodes and edges it declares: a
/// label that broke out of its quotes would add nodes or edges, or fail.
fn assert_dot_parses(name: &str, dot_text: &str) {
    let Some(svg) = render_with_graphviz(name, dot_text) else {
        return;
    };
    let (nodes, edges) = dot_statement_counts(dot_text);
    assert!(nodes > 0 && edges > 0, "{dot_text}");
    assert_eq!(
        svg.matches("class=\"node\"").count(),
        nodes,
        "nodes drawn by `dot` for {name}:\n{svg}"
    );
    assert_eq!(
        svg.matches("class=\"edge\"").count(),
        edges,
        "edges drawn by `dot` for {name}:\n{svg}"
    );
}

#[test]
fn the_dot_of_the_examples_parses_with_graphviz() {
    for (name, graph) in examples() {
        assert_dot_parses(name, &graph.to_dot());
    }
}

// ---------------------------------------------------------------------------
// Mermaid: a structural checker
// ---------------------------------------------------------------------------

/// Words that Mermaid's flowchart grammar reads as keywords, so that they cannot
/// be node ids (`end` closes a subgraph).
const MERMAID_KEYWORDS: &[&str] = &[
    "end",
    "subgraph",
    "graph",
    "flowchart",
    "direction",
    "click",
    "call",
    "href",
    "style",
    "linkStyle",
    "classDef",
    "class",
    "default",
];

/// Shapes, longest opening first so that `((` is not read as `(`.
const MERMAID_SHAPES: &[(&str, &str)] = &[
    ("(((", ")))"),
    ("((", "))"),
    ("([", "])"),
    ("[[", "]]"),
    ("[(", ")]"),
    ("{{", "}}"),
    // A TCC step's confirm: a parallelogram.
    ("[/", "/]"),
    ("[", "]"),
    ("(", ")"),
    ("{", "}"),
];

const MERMAID_ARROWS: &[&str] = &["-->", "---", "-.->", "-.-", "==>", "==="];

fn is_mermaid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !MERMAID_KEYWORDS.contains(&id)
}

/// Brackets balance on the line, outside double-quoted labels, which are closed.
fn check_brackets(line: &str) -> Result<(), String> {
    let mut stack = Vec::new();
    let mut in_quotes = false;
    for ch in line.chars() {
        if ch == '"' {
            in_quotes = !in_quotes;
            continue;
        }
        if in_quotes {
            continue;
        }
        match ch {
            '(' | '[' | '{' => stack.push(ch),
            ')' | ']' | '}' => {
                let open = stack.pop();
                let expected = match ch {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if open != Some(expected) {
                    return Err(format!("unbalanced `{ch}`"));
                }
            }
            _ => {}
        }
    }
    if in_quotes {
        return Err("a label's double quote is not closed".to_owned());
    }
    if let Some(open) = stack.pop() {
        return Err(format!("`{open}` is not closed"));
    }
    Ok(())
}

/// The text of a double-quoted label: no raw quote (the caller finds the closing
/// one), markup only as `<br/>`, and `#...;` entity codes complete.
fn check_label(label: &str) -> Result<(), String> {
    if label.chars().any(char::is_control) {
        return Err(format!("control character in label {label:?}"));
    }
    let text = label.replace("<br/>", "\n");
    if text.contains('<') || text.contains('>') {
        return Err(format!("raw markup in label {label:?}"));
    }
    let mut rest = text.as_str();
    while let Some(at) = rest.find('#') {
        let after = &rest[at + 1..];
        let end = after
            .find(';')
            .ok_or_else(|| format!("unterminated entity code in label {label:?}"))?;
        let code = &after[..end];
        let named = !code.is_empty() && code.chars().all(|c| c.is_ascii_alphabetic());
        let numbered = !code.is_empty() && code.chars().all(|c| c.is_ascii_digit());
        if !named && !numbered {
            return Err(format!("bad entity code `#{code};` in label {label:?}"));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

/// `id<open>"label"<close>` → the id.
fn parse_node(line: &str) -> Result<&str, String> {
    let id_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .ok_or_else(|| format!("not a node, edge or class line: `{line}`"))?;
    let (id, rest) = line.split_at(id_end);
    if !is_mermaid_id(id) {
        return Err(format!("bad node id `{id}`"));
    }
    let (open, close) = MERMAID_SHAPES
        .iter()
        .find(|(open, _)| rest.starts_with(open))
        .ok_or_else(|| format!("unknown shape after `{id}`: `{rest}`"))?;
    let quoted = &rest[open.len()..];
    let label = quoted
        .strip_prefix('"')
        .ok_or_else(|| format!("the label of `{id}` is not double-quoted"))?;
    let end = label
        .find('"')
        .ok_or_else(|| format!("the label of `{id}` is not closed"))?;
    check_label(&label[..end])?;
    if &label[end + 1..] != *close {
        return Err(format!(
            "the label of `{id}` must be followed by `{close}` and nothing else, not `{}`",
            &label[end + 1..]
        ));
    }
    Ok(id)
}

/// `a --> b`, `a -.->|label| b` → the two ids; `None` if the line is no edge.
fn parse_edge(line: &str) -> Option<Result<(&str, &str), String>> {
    let (from, rest) = line.split_once(' ')?;
    let (link, to) = rest.rsplit_once(' ')?;
    let (arrow, label) = match link.split_once('|') {
        Some((arrow, label)) => (arrow, Some(label)),
        None => (link, None),
    };
    if !MERMAID_ARROWS.contains(&arrow) {
        return None;
    }
    Some(check_edge(line, from, label, to).map(|()| (from, to)))
}

/// The ids at both ends of an edge, and its label (`label|`, after the first `|`).
fn check_edge(line: &str, from: &str, label: Option<&str>, to: &str) -> Result<(), String> {
    if let Some(label) = label {
        let text = label
            .strip_suffix('|')
            .ok_or_else(|| format!("edge label not closed by `|`: `{line}`"))?;
        match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(quoted) => check_label(quoted)?,
            None => {
                let plain = text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '-'));
                if text.is_empty() || !plain {
                    return Err(format!(
                        "unquoted edge label with special characters: `{line}`"
                    ));
                }
            }
        }
    }
    for id in [from, to] {
        if !is_mermaid_id(id) {
            return Err(format!("bad node id `{id}` in edge `{line}`"));
        }
    }
    Ok(())
}

/// Whether `text` is a well-formed `flowchart LR`, as far as the renderer's
/// subset of Mermaid goes.
fn check_mermaid(text: &str) -> Result<(), String> {
    let mut lines = text.lines();
    if lines.next() != Some("flowchart LR") {
        return Err("the first line must be `flowchart LR`".to_owned());
    }
    let mut nodes = HashSet::new();
    let mut class_defs = HashSet::new();
    let mut references: Vec<(usize, String)> = Vec::new();
    let mut class_uses: Vec<(usize, String)> = Vec::new();
    let mut open_subgraph: Option<usize> = None;
    for (n, raw) in lines.enumerate() {
        let line_no = n + 2;
        let line = raw.trim();
        let at = |e: String| format!("line {line_no}: {e}: `{raw}`");
        if line.is_empty() || line.starts_with("%%") {
            continue;
        }
        check_brackets(line).map_err(at)?;
        // A `sagaflow::join!` group: `subgraph g0 ["label"]`, its members'
        // ids one a line, then `end`.
        if let Some(rest) = line.strip_prefix("subgraph ") {
            let (id, label) = rest.split_once(' ').unwrap_or((rest, ""));
            let label_ok = label.is_empty()
                || (label.starts_with("[\"") && label.ends_with("\"]") && label.len() >= 4);
            if !is_mermaid_id(id) || !label_ok || open_subgraph.is_some() {
                return Err(at("bad subgraph".to_owned()));
            }
            open_subgraph = Some(line_no);
            continue;
        }
        if line == "end" {
            if open_subgraph.take().is_none() {
                return Err(at("`end` outside a subgraph".to_owned()));
            }
            continue;
        }
        if open_subgraph.is_some() && is_mermaid_id(line) {
            references.push((line_no, line.to_owned()));
            continue;
        }
        if let Some(rest) = line.strip_prefix("classDef ") {
            let (class, style) = rest
                .split_once(' ')
                .ok_or_else(|| at("classDef without a style".to_owned()))?;
            if !is_mermaid_id(class) || style.trim().is_empty() || style.contains(';') {
                return Err(at("bad classDef".to_owned()));
            }
            class_defs.insert(class.to_owned());
        } else if let Some(rest) = line.strip_prefix("class ") {
            let (ids, class) = rest
                .split_once(' ')
                .ok_or_else(|| at("class without a class name".to_owned()))?;
            for id in ids.split(',') {
                if !is_mermaid_id(id) {
                    return Err(at(format!("bad node id `{id}`")));
                }
                references.push((line_no, id.to_owned()));
            }
            class_uses.push((line_no, class.to_owned()));
        } else if let Some(edge) = parse_edge(line) {
            let (from, to) = edge.map_err(at)?;
            references.push((line_no, from.to_owned()));
            references.push((line_no, to.to_owned()));
        } else {
            let id = parse_node(line).map_err(at)?;
            if !nodes.insert(id.to_owned()) {
                return Err(at(format!("node `{id}` declared twice")));
            }
        }
    }
    if let Some(line_no) = open_subgraph {
        return Err(format!("line {line_no}: the subgraph is never closed"));
    }
    for (line_no, id) in references {
        if !nodes.contains(&id) {
            return Err(format!("line {line_no}: `{id}` is not a declared node"));
        }
    }
    for (line_no, class) in class_uses {
        if !class_defs.contains(&class) {
            return Err(format!("line {line_no}: class `{class}` is not defined"));
        }
    }
    Ok(())
}

#[test]
fn the_mermaid_of_the_examples_is_well_formed() {
    for (name, graph) in examples() {
        let mermaid = graph.to_mermaid();
        if let Err(e) = check_mermaid(&mermaid) {
            panic!("the Mermaid of {name} is broken: {e}\n{mermaid}");
        }
    }
}

#[test]
fn the_mermaid_checker_rejects_broken_charts() {
    let good = "flowchart LR\n    %% a comment\n    start((\"start\"))\n    s0[\"a<br/>retry 3\"]\n    c0([\"undo #quot;a#quot;\"])\n    subgraph g0 [\"at once\"]\n        s0\n    end\n    start --> s0\n    s0 -.->|fails| c0\n    s0 -.- c0\n    classDef pivot stroke-width:3px\n    class s0 pivot\n";
    assert_eq!(check_mermaid(good), Ok(()));
    let broken = [
        ("no header", good.replacen("flowchart LR", "graph TD", 1)),
        (
            "undeclared endpoint",
            good.replace("s0 -.- c0", "s0 -.- c9"),
        ),
        (
            "raw quote in a label",
            good.replace("\"a<br/>retry 3\"", "\"a \"b\" c\""),
        ),
        ("unclosed label", good.replace("\"a<br/>retry 3\"", "\"a")),
        (
            "unbalanced bracket",
            good.replace("s0[\"a<br/>retry 3\"]", "s0[\"a\""),
        ),
        ("wrong closing bracket", good.replace("c0([\"", "c0[[\"")),
        ("raw markup", good.replace("<br/>", "<b>")),
        ("bad entity", good.replace("#quot;a", "#quot a")),
        ("id is a keyword", good.replace("s0", "end")),
        ("id starts with a digit", good.replace("s0", "0s")),
        (
            "duplicate node",
            good.replace("start --> s0", "s0[\"again\"]"),
        ),
        ("unknown line", good.replace("start --> s0", "start ~~> s0")),
        (
            "undefined class",
            good.replace("class s0 pivot", "class s0 nope"),
        ),
        ("special edge label", good.replace("|fails|", "|fa\"ils|")),
        ("unclosed subgraph", good.replace("    end\n", "")),
        (
            "undeclared group member",
            good.replace("        s0\n", "        s9\n"),
        ),
        (
            "bad subgraph label",
            good.replace("[\"at once\"]", "[at once]"),
        ),
    ];
    for (what, chart) in broken {
        assert_ne!(chart, good, "{what}: the sample did not change");
        assert!(
            check_mermaid(&chart).is_err(),
            "{what}: the checker accepted\n{chart}"
        );
    }
}

// ---------------------------------------------------------------------------
// Mermaid: parsed by Mermaid itself
// ---------------------------------------------------------------------------

/// Set to `1` (as CI does), a missing Node.js or checker install fails the test
/// instead of skipping the check.
const MERMAID_REQUIRED: &str = "SAGAFLOW_MERMAID_CHECK";
const MERMAID_INSTALL: &str = "npm ci --prefix tests/mermaid --no-audit --no-fund";

/// Every Mermaid text the tests draw, under a file name: the example sagas, the
/// hostile one and the graph crate's.
fn every_mermaid_chart() -> Vec<(&'static str, String)> {
    let mut charts: Vec<_> = examples()
        .into_iter()
        .map(|(name, graph)| (name, graph.to_mermaid()))
        .collect();
    charts.push(("hostile", HOSTILE.to_mermaid()));
    charts.extend(
        GRAPH_CRATE_GRAPHS
            .iter()
            .map(|(name, graph)| (*name, graph.to_mermaid())),
    );
    charts
}

/// Writes each chart to `dir` as `<name>.mmd`.
fn write_charts(dir: &Path, charts: &[(&str, String)]) -> Vec<PathBuf> {
    charts
        .iter()
        .map(|(name, text)| {
            let path = dir.join(format!("{name}.mmd"));
            fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            path
        })
        .collect()
}

/// Runs `node tests/mermaid/check.mjs` (the `mermaid` npm package, with jsdom
/// for the DOM it needs) on `files`, and returns its exit code and its output.
/// `None` when Node or the checker's packages are missing and
/// `SAGAFLOW_MERMAID_CHECK=1` does not require them: then it says so and why.
fn run_mermaid_parser(files: &[PathBuf]) -> Option<(Option<i32>, String)> {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/mermaid"));
    let script = dir.join("check.mjs");
    assert!(script.is_file(), "{} is missing", script.display());
    let installed = ["mermaid", "jsdom"].iter().all(|package| {
        dir.join("node_modules")
            .join(package)
            .join("package.json")
            .is_file()
    });
    let missing = if installed {
        match Command::new("node").arg(&script).args(files).output() {
            Ok(output) => {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
                return Some((output.status.code(), text));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => "Node.js (`node`) is not on the PATH",
            Err(e) => panic!("cannot run `node {}`: {e}", script.display()),
        }
    } else {
        "its npm packages (mermaid, jsdom) are not installed in tests/mermaid/node_modules"
    };
    let install = format!(
        "install Node.js (20.19 or later) and run `{MERMAID_INSTALL}` at the workspace root"
    );
    if std::env::var_os(MERMAID_REQUIRED).is_some_and(|v| v == "1") {
        panic!(
            "{missing}, so the Mermaid output cannot be parsed, and {MERMAID_REQUIRED}=1 \
             requires it: {install}"
        );
    }
    // Straight to stderr, past the test harness's capture, so that a passing
    // `cargo test` still shows that this check did not run.
    let _ = writeln!(
        std::io::stderr(),
        "mermaid parse check SKIPPED: {missing}; to run it, {install} \
         (CI sets {MERMAID_REQUIRED}=1, which turns this into a failure)"
    );
    None
}

/// The checker's verdict on `file`: `Some(true)` for `ok: FILE (...)`,
/// `Some(false)` for `FAIL: FILE`, `None` if it did not mention the file.
fn mermaid_verdict(output: &str, file: &Path) -> Option<bool> {
    let ok = format!("ok: {} (", file.display());
    let fail = format!("FAIL: {}", file.display());
    output.lines().find_map(|line| {
        if line.starts_with(&ok) {
            Some(true)
        } else if line == fail {
            Some(false)
        } else {
            None
        }
    })
}

#[test]
fn mermaid_itself_parses_every_chart_we_draw() {
    let dir = tempfile::tempdir().unwrap();
    let charts = every_mermaid_chart();
    let files = write_charts(dir.path(), &charts);
    let Some((code, output)) = run_mermaid_parser(&files) else {
        return;
    };
    eprintln!("{output}");
    let rejected: Vec<String> = charts
        .iter()
        .zip(&files)
        .filter(|(_, file)| mermaid_verdict(&output, file) != Some(true))
        .map(|((name, text), _)| format!("--- {name}:\n{text}"))
        .collect();
    assert!(
        code == Some(0) && rejected.is_empty(),
        "Mermaid's parser did not accept every chart (exit code {code:?}):\n{output}\n\
         The charts it did not accept:\n{}",
        rejected.join("\n")
    );
}

/// The check above cannot pass by accepting anything: renderer bugs that the
/// escaping prevents today are parse errors, each reported on its own file.
#[test]
fn mermaid_itself_rejects_broken_charts() {
    let good = "flowchart LR\n    start((\"start\"))\n    s0[\"a<br/>retry 3\"]\n    s1{{\"b\"}}\n    done((\"done\"))\n    c0([\"undo #quot;a#quot;\"])\n    undone((\"undone\"))\n    start --> s0\n    s0 --> s1\n    s1 --> done\n    s0 -.- c0\n    s0 -.->|fails| undone\n    s1 -.->|fails| c0\n    c0 -.-> undone\n    classDef pivot stroke-width:3px\n    class s1 pivot\n";
    let mut charts = vec![
        ("keyword-id", good.replace("s0", "end")),
        ("raw-quote", good.replace("\"a<br/>", "\"say \"hi\" <br/>")),
        ("raw-pipe", good.replace("|fails|", "|fa|ils|")),
        (
            "raw-bracket",
            good.replace("\"a<br/>retry 3\"]", "\"a]\"]]"),
        ),
        ("unclosed-shape", good.replace("s1{{\"b\"}}", "s1{{\"b\"")),
        ("bad-header", good.replace("flowchart LR", "flowchart-LR")),
    ];
    for (what, chart) in &charts {
        assert_ne!(chart, good, "{what}: the sample did not change");
    }
    charts.push(("good", good.to_owned()));
    let dir = tempfile::tempdir().unwrap();
    let files = write_charts(dir.path(), &charts);
    let Some((code, output)) = run_mermaid_parser(&files) else {
        return;
    };
    assert_eq!(code, Some(1), "{output}");
    for ((what, chart), file) in charts.iter().zip(&files) {
        let expected = *what == "good";
        assert_eq!(
            mermaid_verdict(&output, file),
            Some(expected),
            "{what}: expected {}:\n{chart}\nchecker output:\n{output}",
            if expected { "ok" } else { "FAIL" }
        );
    }
    assert!(
        output.contains(&format!(
            "{} of {} file(s) did not parse",
            charts.len() - 1,
            charts.len()
        )),
        "{output}"
    );
}

// ---------------------------------------------------------------------------
// SVG: a small XML checker
// ---------------------------------------------------------------------------

/// Whether `svg` is one well-formed `<svg>` element: tags nest, attributes are
/// quoted and unique, text and attribute values use only complete entities.
fn check_xml(svg: &str) -> Result<(), String> {
    fn check_text(text: &str) -> Result<(), String> {
        if text.contains('<') || text.contains('>') {
            return Err(format!("raw markup character in {text:?}"));
        }
        let mut rest = text;
        while let Some(at) = rest.find('&') {
            let after = &rest[at + 1..];
            let end = after
                .find(';')
                .ok_or_else(|| format!("unterminated entity in {text:?}"))?;
            let entity = &after[..end];
            let ok = ["amp", "lt", "gt", "quot", "apos"].contains(&entity)
                || entity
                    .strip_prefix('#')
                    .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
            if !ok {
                return Err(format!("bad entity `&{entity};` in {text:?}"));
            }
            rest = &after[end + 1..];
        }
        Ok(())
    }

    let mut stack: Vec<&str> = Vec::new();
    let mut rest = svg;
    let mut roots = 0;
    while !rest.is_empty() {
        let Some(open) = rest.find('<') else {
            check_text(rest)?;
            if !rest.trim().is_empty() && stack.is_empty() {
                return Err(format!("text outside the root: {rest:?}"));
            }
            break;
        };
        check_text(&rest[..open])?;
        if !rest[..open].trim().is_empty() && stack.is_empty() {
            return Err(format!("text outside the root: {:?}", &rest[..open]));
        }
        let after = &rest[open + 1..];
        let close = after.find('>').ok_or_else(|| "unclosed tag".to_owned())?;
        let tag = &after[..close];
        rest = &after[close + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open_name) if open_name == name => {}
                other => return Err(format!("`</{name}>` closes {other:?}")),
            }
            continue;
        }
        let (tag, self_closing) = match tag.strip_suffix('/') {
            Some(tag) => (tag, true),
            None => (tag, false),
        };
        let name_end = tag.find(' ').unwrap_or(tag.len());
        let name = &tag[..name_end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(format!("bad element name in `<{tag}>`"));
        }
        if stack.is_empty() {
            roots += 1;
        }
        let mut attrs = tag[name_end..].trim_start();
        let mut seen = HashSet::new();
        while !attrs.is_empty() {
            let (attr, value_and_rest) = attrs
                .split_once("=\"")
                .ok_or_else(|| format!("unquoted attribute in `<{tag}>`"))?;
            if attr.is_empty()
                || !attr
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ':')
            {
                return Err(format!("bad attribute name `{attr}` in `<{tag}>`"));
            }
            if !seen.insert(attr) {
                return Err(format!("attribute `{attr}` twice in `<{tag}>`"));
            }
            let (value, after_value) = value_and_rest
                .split_once('"')
                .ok_or_else(|| format!("unclosed attribute in `<{tag}>`"))?;
            check_text(value)?;
            if !after_value.is_empty() && !after_value.starts_with(' ') {
                return Err(format!("no space after an attribute in `<{tag}>`"));
            }
            attrs = after_value.trim_start();
        }
        if !self_closing {
            stack.push(name);
        }
    }
    if let Some(open) = stack.pop() {
        return Err(format!("`<{open}>` is not closed"));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(())
}

#[test]
fn the_svg_of_the_examples_is_well_formed_xml() {
    for (name, graph) in examples() {
        let svg = graph.to_svg();
        if let Err(e) = check_xml(&svg) {
            panic!("the SVG of {name} is not well-formed: {e}\n{svg}");
        }
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" "));
        assert!(!svg.contains("<script"), "{svg}");
    }
}

#[test]
fn the_xml_checker_rejects_broken_svg() {
    let good = "<svg a=\"1\">\n<text x=\"1\">a &amp; b</text>\n<line x1=\"0\"/>\n</svg>";
    assert_eq!(check_xml(good), Ok(()));
    for broken in [
        good.replace("&amp;", "&"),
        good.replace("</text>", ""),
        good.replace("x=\"1\"", "x=1"),
        good.replace("a &amp; b", "a < b"),
        good.replace("<line x1=\"0\"/>", "<line x1=\"0\" x1=\"1\"/>"),
        format!("{good}<svg></svg>"),
    ] {
        assert!(check_xml(&broken).is_err(), "accepted {broken}");
    }
}

// ---------------------------------------------------------------------------
// Names made to break the formats
// ---------------------------------------------------------------------------

#[test]
fn hostile_names_do_not_break_the_dot() {
    let dot = HOSTILE.to_dot();
    assert!(
        dot.starts_with("digraph \"graph \\\"end\\\" <&>\" {\n"),
        "{dot}"
    );
    assert!(dot.contains("s0 [label=\"end\"];"), "{dot}");
    assert!(dot.contains("c0 [label=\"undo \\\"end\\\"\""), "{dot}");
    assert!(dot.contains("s2 [label=\"<&>\\nretry 2\"];"), "{dot}");
    assert_dot_parses("the hostile saga", &dot);
    if let Some(svg) = render_with_graphviz("the hostile saga", &dot) {
        // Graphviz read each name whole, as one label.
        for text in [
            ">end</text>",
            ">undo &quot;end&quot;</text>",
            ">say &quot;hi&quot;</text>",
            ">&lt;&amp;&gt;</text>",
            ">a &#45;&gt; b; } digraph {</text>",
        ] {
            assert!(svg.contains(text), "{text} not in\n{svg}");
        }
    }
}

#[test]
fn hostile_names_do_not_break_the_mermaid() {
    let mermaid = HOSTILE.to_mermaid();
    if let Err(e) = check_mermaid(&mermaid) {
        panic!("the Mermaid of the hostile saga is broken: {e}\n{mermaid}");
    }
    assert!(mermaid.contains("    s0[\"end\"]\n"), "{mermaid}");
    assert!(
        mermaid.contains("    c0([\"undo #quot;end#quot;\"])\n"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("    s2[\"#lt;#amp;#gt;<br/>retry 2\"]\n"),
        "{mermaid}"
    );
    assert!(!mermaid.contains("<script"), "{mermaid}");
    // No name became a line of its own: the comment and `subgraph` stay in labels.
    for line in mermaid.lines().skip(1) {
        let line = line.trim();
        assert!(
            !line.starts_with("subgraph") && !line.starts_with("end"),
            "{line}"
        );
    }
}

#[test]
fn hostile_names_are_escaped_in_the_svg() {
    let svg = HOSTILE.to_svg();
    if let Err(e) = check_xml(&svg) {
        panic!("the SVG of the hostile saga is not well-formed: {e}\n{svg}");
    }
    assert!(svg.contains(">end</text>"), "{svg}");
    assert!(svg.contains(">undo &quot;end&quot;</text>"), "{svg}");
    assert!(svg.contains(">say &quot;hi&quot;</text>"), "{svg}");
    assert!(svg.contains(">&lt;&amp;&gt;</text>"), "{svg}");
    assert!(
        svg.contains(">&lt;/svg&gt;&lt;script&gt;alert(1)&lt;/script&gt;</text>"),
        "{svg}"
    );
    assert!(!svg.contains("<&>"), "{svg}");
    assert!(!svg.contains("<script"), "{svg}");
    assert_eq!(svg.matches("<svg").count(), 1, "{svg}");
    assert_eq!(svg.matches("</svg>").count(), 1, "{svg}");
    assert!(!svg.contains("\n\n"), "{svg}");
    for id in svg.split(" id=\"").skip(1) {
        let id = &id[..id.find('"').unwrap()];
        assert!(id.starts_with("sagaflow-graph"), "{id}");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{id}"
        );
    }
}
