//! The saga's picture in its rustdoc, drawn at expansion time.
//!
//! `#[saga]` sees only the call paths of its steps, not their `#[step]`
//! attributes, yet the picture needs each step's kind, compensation and policies.
//! They travel through a per-step `macro_rules!` callback: `#[step]` defines a
//! `#[macro_export]`ed macro under a unique name and re-exports it under the step's
//! own name, in the macro namespace beside the function (value) and the hidden
//! type (type namespace), so it goes wherever the function goes, through `use`
//! and across crates. `#[saga]` writes
//!
//! ```text
//! #[doc = book_flight!(@sagaflow_graph [{book_hotel} {charge}] ["book_trip"])]
//! ```
//!
//! and each step's macro appends its declaration and calls the next one, the last
//! calling [`saga_graph_doc!`](crate::saga_graph_doc), which renders the section
//! with the same renderer as `BookTripSaga::graph().to_svg()`. Trait metadata
//! could not do this: rustdoc needs a literal, and consts are not evaluated into docs.

use std::time::Duration;

use proc_macro2::{Literal, TokenStream, TokenTree};
use quote::quote;
use sagaflow_graph::{ArmInfo, BranchInfo, RetryPolicy, SagaGraph, StepInfo, StepKind};

/// The fields of a step's declaration, in the order the callback carries them.
pub(crate) fn encode(info: &StepInfo) -> TokenStream {
    let retry = info.retry();
    let comp = info.compensation_retry();
    let fields = [
        info.name().to_string(),
        info.kind().keyword().to_string(),
        info.compensation().unwrap_or_default().to_string(),
        encode_max(retry.max_retries()),
        retry.backoff().as_nanos().to_string(),
        retry.max_backoff().as_nanos().to_string(),
        info.timeout()
            .map(|t| t.as_nanos().to_string())
            .unwrap_or_default(),
        encode_max(comp.max_retries()),
        comp.backoff().as_nanos().to_string(),
        comp.max_backoff().as_nanos().to_string(),
        info.compensation_timeout()
            .map(|t| t.as_nanos().to_string())
            .unwrap_or_default(),
        info.confirm().unwrap_or_default().to_string(),
        info.confirm_retry().backoff().as_nanos().to_string(),
        info.confirm_retry().max_backoff().as_nanos().to_string(),
        info.confirm_timeout()
            .map(|t| t.as_nanos().to_string())
            .unwrap_or_default(),
    ];
    let literals = fields.iter().map(|f| Literal::string(f));
    quote!({ #(#literals)* })
}

fn encode_max(max: Option<u32>) -> String {
    max.map(|m| m.to_string())
        .unwrap_or_else(|| "forever".to_string())
}

pub(crate) fn leak(s: String) -> &'static str {
    // A proc macro lives for one compilation; the few bytes of a step's name are
    // cheaper leaked than threading lifetimes through the graph types.
    Box::leak(s.into_boxed_str())
}

fn string_of(tt: &TokenTree) -> Option<String> {
    let TokenTree::Literal(lit) = tt else {
        return None;
    };
    match syn::parse_str::<syn::LitStr>(&lit.to_string()) {
        Ok(s) => Some(s.value()),
        Err(_) => None,
    }
}

fn decode_step(group: TokenStream) -> Option<StepInfo> {
    let fields: Vec<String> = group
        .into_iter()
        .map(|tt| string_of(&tt))
        .collect::<Option<_>>()?;
    let [
        name,
        kind,
        compensation,
        max,
        backoff,
        max_backoff,
        timeout,
        cmax,
        cbackoff,
        cmax_backoff,
        ctimeout,
        confirm,
        fbackoff,
        fmax_backoff,
        ftimeout,
    ] = <[String; 15]>::try_from(fields).ok()?;
    let kind = match kind.as_str() {
        "compensate" => StepKind::Compensatable,
        "read_only" => StepKind::ReadOnly,
        "pivot" => StepKind::Pivot,
        "retriable" => StepKind::Retriable,
        "tcc" => StepKind::Tcc,
        _ => return None,
    };
    let nanos = |s: &str| s.parse::<u64>().ok().map(Duration::from_nanos);
    let policy = |max: &str, backoff: &str, max_backoff: &str| -> Option<RetryPolicy> {
        let base = match max {
            "forever" => RetryPolicy::FOREVER,
            n => RetryPolicy::retries(n.parse().ok()?),
        };
        Some(
            base.with_backoff(nanos(backoff)?)
                .with_max_backoff(nanos(max_backoff)?),
        )
    };
    let mut info = StepInfo::new(leak(name), kind)
        .with_retry(policy(&max, &backoff, &max_backoff)?)
        .with_compensation_retry(policy(&cmax, &cbackoff, &cmax_backoff)?);
    if !compensation.is_empty() {
        info = info.with_compensation(leak(compensation));
    }
    if !timeout.is_empty() {
        info = info.with_timeout(nanos(&timeout)?);
    }
    if !ctimeout.is_empty() {
        info = info.with_compensation_timeout(nanos(&ctimeout)?);
    }
    if !confirm.is_empty() {
        info = info.with_confirm(leak(confirm)).with_confirm_retry(policy(
            "forever",
            &fbackoff,
            &fmax_backoff,
        )?);
    }
    if !ftimeout.is_empty() {
        info = info.with_confirm_timeout(nanos(&ftimeout)?);
    }
    Some(info)
}

/// `saga_graph_doc!("book_trip" {step..} {step..} ..)` → the rustdoc section, as a string literal.
pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let mut tokens = input.into_iter().peekable();
    let name = tokens.next().as_ref().and_then(string_of);
    // `"1..3"`: the positions of a group's members; `"?.."`: a branch.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut branches: Vec<BranchInfo> = Vec::new();
    while let Some(TokenTree::Literal(_)) = tokens.peek() {
        let text = tokens.next().as_ref().and_then(string_of);
        if let Some(branch) = text.as_deref().and_then(|t| t.strip_prefix('?')) {
            match decode_branch(branch) {
                Some(b) => branches.push(b),
                None => {
                    return quote!(::core::compile_error!(
                        "sagaflow: a malformed saga graph branch"
                    ));
                }
            }
            continue;
        }
        let range = text.and_then(|r| {
            let (start, end) = r.split_once("..")?;
            Some((start.parse().ok()?, end.parse().ok()?))
        });
        match range {
            Some(range) => groups.push(range),
            None => {
                return quote!(::core::compile_error!(
                    "sagaflow: a malformed saga graph group"
                ));
            }
        }
    }
    let steps: Option<Vec<StepInfo>> = tokens
        .enumerate()
        .map(|(i, tt)| match tt {
            TokenTree::Group(g) => decode_step(g.stream()).map(|info| {
                match groups
                    .iter()
                    .position(|&(start, end)| (start..end).contains(&i))
                {
                    Some(k) => info.in_group(k as u32),
                    None => info,
                }
            }),
            _ => None,
        })
        .collect();
    let (Some(name), Some(steps)) = (name, steps) else {
        // Only reachable if a step macro from another sagaflow version fed us.
        return quote!(::core::compile_error!(
            "sagaflow: a step was declared by a different version of `#[step]`; build the saga and its steps with the same sagaflow"
        ));
    };
    let graph = SagaGraph::new(leak(name), Vec::leak(steps)).with_branches(Vec::leak(branches));
    let section = section(&graph);
    let lit = Literal::string(&section);
    quote!(#lit)
}

/// A branch as `arms::branch_literals` wrote it, after its `?`.
fn decode_branch(text: &str) -> Option<BranchInfo> {
    let mut parts = text.split('\u{1f}');
    let label = leak(parts.next()?.to_owned());
    let arms: Option<Vec<ArmInfo>> = parts
        .map(|arm| {
            let (label, steps) = arm.split_once('\u{1e}')?;
            let (start, end) = steps.split_once("..")?;
            Some(ArmInfo::new(
                leak(label.to_owned()),
                start.parse().ok()?,
                end.parse().ok()?,
            ))
        })
        .collect();
    Some(BranchInfo::new(label, Vec::leak(arms?)))
}

fn section(graph: &SagaGraph) -> String {
    format!(
        "\n\n# Saga graph\n\n{svg}\n\nSteps run left to right. A solid box is undone by the compensation \
         drawn under it; a dashed box is read-only; the thick box is the pivot, the point of no \
         return; a retriable step is retried until it succeeds. When a step fails, the \
         compensations to its left run right to left.{branches}\n\n\
         As text:\n\n```text\n{text}\n```\n",
        svg = graph.to_svg(),
        text = graph,
        branches = if graph.branches().is_empty() {
            ""
        } else {
            " A diamond is a branch (`if` or `match`), labelled with its condition; its arms, \
             each labelled, run in parallel rows and meet again at a dot: one of them runs, the one \
             recorded. Each arm has its own lane of compensations, which leads back to those \
             before the branch, so a failure undoes only the steps of the path taken."
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_survives_the_trip_through_the_callback() {
        let info = StepInfo::new("book_flight", StepKind::Compensatable)
            .with_compensation("cancel_flight")
            .with_retry(RetryPolicy::retries(3).with_backoff(Duration::from_millis(10)))
            .with_timeout(Duration::from_secs(2))
            .with_compensation_timeout(Duration::from_millis(1500));
        let TokenTree::Group(g) = encode(&info).into_iter().next().unwrap() else {
            panic!("a group")
        };
        assert_eq!(decode_step(g.stream()), Some(info));
        let forever = StepInfo::new("notify", StepKind::Retriable);
        let TokenTree::Group(g) = encode(&forever).into_iter().next().unwrap() else {
            panic!("a group")
        };
        assert_eq!(decode_step(g.stream()), Some(forever));
        let tcc = StepInfo::new("hold_seat", StepKind::Tcc)
            .with_compensation("release_seat")
            .with_confirm("confirm_seat")
            .with_confirm_retry(RetryPolicy::FOREVER.with_backoff(Duration::from_millis(50)))
            .with_confirm_timeout(Duration::from_secs(1));
        let TokenTree::Group(g) = encode(&tcc).into_iter().next().unwrap() else {
            panic!("a group")
        };
        assert_eq!(decode_step(g.stream()), Some(tcc));
    }

    #[test]
    fn groups_travel_after_the_name() {
        let step = |name: &str| quote!({ #name "compensate" "undo" "0" "1" "2" "" "5" "1" "2" "" "" "0" "0" "" });
        let (a, b, c) = (step("a"), step("b"), step("c"));
        let out = expand(quote!("trip" "1..3" #a #b #c));
        let text: String = syn::parse2::<syn::LitStr>(out).unwrap().value();
        assert!(
            text.contains("2. b (compensate: undo, at once in group 1,"),
            "{text}"
        );
        assert!(
            text.contains("3. c (compensate: undo, at once in group 1,"),
            "{text}"
        );
        assert!(
            text.contains("1. a (compensate: undo, compensation"),
            "{text}"
        );
    }

    #[test]
    fn branches_travel_after_the_groups() {
        let step = |name: &str| quote!({ #name "compensate" "undo" "0" "1" "2" "" "5" "1" "2" "" "" "0" "0" "" });
        let (a, b, c) = (step("a"), step("b"), step("c"));
        let branch = "?order.express\u{1f}true\u{1e}1..2\u{1f}false\u{1e}2..3";
        let out = expand(quote!("trip" #branch #a #b #c));
        let text: String = syn::parse2::<syn::LitStr>(out).unwrap().value();
        assert!(
            text.contains("branch on order.express: true → 2, false → 3"),
            "{text}"
        );
        assert!(text.contains("A diamond is a branch"), "{text}");
        assert!(text.contains(">order.express</text>"), "{text}");
        // The branch is drawn as a fork: its arms' labels, and a join dot.
        assert!(text.contains(">false</text>"), "{text}");
        assert!(text.contains("<circle "), "{text}");
    }

    #[test]
    fn the_section_holds_the_svg_without_blank_lines_inside() {
        let out = expand(
            quote!("trip" { "a" "compensate" "undo_a" "0" "1" "2" "" "5" "1" "2" "" "" "0" "0" "" }),
        );
        let text: String = syn::parse2::<syn::LitStr>(out).unwrap().value();
        let start = text.find("<svg").unwrap();
        let end = text.find("</svg>").unwrap();
        assert!(!text[start..end].contains("\n\n"));
        assert!(text.contains("undo_a"));
    }
}
