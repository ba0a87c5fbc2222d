//! The SVG of a saga with branches: a fork per branch, the arms in parallel
//! rows, each with its own lane of compensations, and a join after it.

use crate::{ArmInfo, BranchInfo, SagaGraph, StepInfo, StepKind};

/// The guide's `ship_order`: an `if` whose arms have one and two steps, then
/// a `match` with two arms with steps and one without.
const SHIP: SagaGraph = SagaGraph::new(
    "ship",
    &[
        StepInfo::new("ship_express", StepKind::Compensatable).with_compensation("cancel_express"),
        StepInfo::new("quote_ground", StepKind::ReadOnly),
        StepInfo::new("ship_ground", StepKind::Compensatable).with_compensation("cancel_ground"),
        StepInfo::new("charge_vat", StepKind::Compensatable).with_compensation("refund_vat"),
        StepInfo::new("charge_sales_tax", StepKind::Compensatable)
            .with_compensation("refund_sales_tax"),
    ],
)
.with_branches(&[
    BranchInfo::new(
        "order.express",
        &[ArmInfo::new("true", 0, 1), ArmInfo::new("false", 1, 3)],
    ),
    BranchInfo::new(
        "match order.region",
        &[
            ArmInfo::new("Region::Eu", 3, 4),
            ArmInfo::new("Region::Us", 4, 5),
            ArmInfo::new("_", 5, 5),
        ],
    ),
]);

/// A nested branch: the outer `else` arm holds a `match` with an empty arm.
const NESTED: SagaGraph = SagaGraph::new(
    "nested",
    &[
        StepInfo::new("reserve", StepKind::Compensatable).with_compensation("release"),
        StepInfo::new("ship_express", StepKind::Compensatable).with_compensation("cancel_express"),
        StepInfo::new("quote", StepKind::ReadOnly),
        StepInfo::new("ship_ground", StepKind::Compensatable).with_compensation("cancel_ground"),
        StepInfo::new("charge", StepKind::Compensatable).with_compensation("refund"),
    ],
)
.with_branches(&[
    BranchInfo::new(
        "order.express",
        &[ArmInfo::new("true", 1, 2), ArmInfo::new("false", 2, 4)],
    ),
    BranchInfo::new(
        "match order.region",
        &[ArmInfo::new("Region::Eu", 2, 3), ArmInfo::new("_", 3, 3)],
    ),
]);

/// The value of attribute `name` on `line`.
fn attr(line: &str, name: &str) -> f64 {
    let key = format!(" {name}=\"");
    let start = line
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        + key.len();
    let end = start + line[start..].find('"').unwrap();
    line[start..end].parse().unwrap()
}

/// The box of the text `name`: `(x, y, width, height)` of the rect before it.
fn rect_of(svg: &str, name: &str) -> (f64, f64, f64, f64) {
    let lines: Vec<&str> = svg.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.ends_with(&format!(">{name}</text>")))
        .unwrap_or_else(|| panic!("no box {name}"));
    let rect = lines[..at]
        .iter()
        .rev()
        .find(|l| l.starts_with("<rect"))
        .unwrap();
    (
        attr(rect, "x"),
        attr(rect, "y"),
        attr(rect, "width"),
        attr(rect, "height"),
    )
}

/// The dashed lane's paths, each as its first and last point.
fn lane_paths(svg: &str) -> Vec<((f64, f64), (f64, f64))> {
    svg.lines()
        .filter(|l| l.starts_with("<path d=\"M") && l.contains("stroke-dasharray=\"6 4\""))
        .map(|l| {
            let d = &l[9..9 + l[9..].find('"').unwrap()];
            let mut cur = (0.0, 0.0);
            let mut first = None;
            let mut rest = d;
            while let Some(cmd) = rest.chars().next() {
                let end = rest[1..]
                    .find(|c: char| c.is_ascii_alphabetic())
                    .map_or(rest.len(), |e| e + 1);
                let arg = &rest[1..end];
                let pair = |a: &str| {
                    let (x, y) = a.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                };
                cur = match cmd {
                    'M' | 'L' => pair(arg),
                    'H' => (arg.parse().unwrap(), cur.1),
                    'V' => (cur.0, arg.parse().unwrap()),
                    other => panic!("unexpected {other} in {d}"),
                };
                first.get_or_insert(cur);
                rest = &rest[end..];
            }
            (first.unwrap(), cur)
        })
        .collect()
}

#[test]
fn the_arms_stand_in_parallel_rows_after_a_diamond() {
    let svg = SHIP.to_svg();
    let express = rect_of(&svg, "ship_express");
    let quote = rect_of(&svg, "quote_ground");
    let ground = rect_of(&svg, "ship_ground");
    // The arms start at the same x, the second arm's row under the first's
    // compensations, and its steps one after the other in that row.
    assert_eq!(express.0, quote.0);
    let cancel_express = rect_of(&svg, "cancel_express");
    assert!(quote.1 > cancel_express.1 + cancel_express.3);
    assert_eq!(quote.1 + quote.3 / 2.0, ground.1 + ground.3 / 2.0);
    assert!(ground.0 > quote.0 + quote.2);
    // One diamond and one join dot per branch, each labelled with its
    // condition, and every arm's label.
    let diamonds = svg
        .lines()
        .filter(|l| l.starts_with("<path d=\"M") && l.contains("z\" fill=\"none\""))
        .count();
    assert_eq!(diamonds, 2);
    assert_eq!(svg.matches("<circle ").count(), 2);
    for text in [
        "order.express",
        "match order.region",
        "true",
        "false",
        "Region::Eu",
        "Region::Us",
        "_",
    ] {
        assert!(svg.contains(&format!(">{text}</text>")), "{text}");
    }
    // The steps after the first branch come after both arms.
    let vat = rect_of(&svg, "charge_vat");
    assert!(vat.0 > ground.0 + ground.2);
    assert!(!svg.contains(">or</text>"));
}

#[test]
fn the_lane_of_the_second_arm_does_not_pass_through_the_first_arms_compensations() {
    let svg = SHIP.to_svg();
    let cancel_express = rect_of(&svg, "cancel_express");
    let cancel_ground = rect_of(&svg, "cancel_ground");
    let undone = rect_of(&svg, "undone");
    let ground_y = cancel_ground.1 + cancel_ground.3 / 2.0;
    let express_y = cancel_express.1 + cancel_express.3 / 2.0;
    let paths = lane_paths(&svg);
    // The path leaving cancel_ground to the left ends left of cancel_express,
    // on the lane of the compensations before the branch (here `undone`'s).
    let out_of_ground: Vec<_> = paths
        .iter()
        .filter(|(a, _)| *a == (cancel_ground.0, ground_y))
        .collect();
    assert_eq!(out_of_ground.len(), 1, "{paths:?}");
    let end = out_of_ground[0].1;
    assert!(end.0 < cancel_express.0, "{end:?}");
    assert_eq!(end.1, express_y);
    // From there, on to `undone`, not to the right into cancel_express.
    assert!(
        paths
            .iter()
            .any(|(a, b)| *a == end && *b == (undone.0 + undone.2, express_y))
    );
    // Nothing enters cancel_express from the second arm's lane.
    for (a, b) in &paths {
        if *b == (cancel_express.0 + cancel_express.2, express_y) {
            assert_eq!(a.1, express_y, "{a:?}");
        }
    }
}

#[test]
fn a_failure_after_a_branch_forks_at_the_join_into_every_arms_lane() {
    let svg = SHIP.to_svg();
    let cancel_express = rect_of(&svg, "cancel_express");
    let cancel_ground = rect_of(&svg, "cancel_ground");
    let paths = lane_paths(&svg);
    let express_in = (
        cancel_express.0 + cancel_express.2,
        cancel_express.1 + cancel_express.3 / 2.0,
    );
    let ground_in = (
        cancel_ground.0 + cancel_ground.2,
        cancel_ground.1 + cancel_ground.3 / 2.0,
    );
    let into_express: Vec<_> = paths.iter().filter(|p| p.1 == express_in).collect();
    let into_ground: Vec<_> = paths.iter().filter(|p| p.1 == ground_in).collect();
    assert_eq!((into_express.len(), into_ground.len()), (1, 1), "{paths:?}");
    // Both come from the same x, the join's, right of both arms.
    assert_eq!(into_express[0].0.0, into_ground[0].0.0);
    // And the way down to the second arm's lane starts on the first's.
    assert!(
        paths
            .iter()
            .any(|(a, b)| a.0 == b.0 && a.1 == express_in.1 && b.1 == ground_in.1)
    );
}

#[test]
fn a_nested_branch_gets_its_own_rows_inside_its_arm() {
    let svg = NESTED.to_svg();
    let express = rect_of(&svg, "ship_express");
    let quote = rect_of(&svg, "quote");
    let ground = rect_of(&svg, "ship_ground");
    let charge = rect_of(&svg, "charge");
    // quote is in the outer `false` arm's nested `Region::Eu` arm, ground after
    // the nested join, charge after the outer join, on the first row.
    assert!(quote.1 > express.1);
    assert!(ground.0 > quote.0 + quote.2);
    assert_eq!(charge.1, express.1);
    assert!(charge.0 > ground.0 + ground.2);
    assert_eq!(svg.matches("<circle ").count(), 2);
}

#[test]
fn the_picture_of_branches_is_deterministic_and_pastable() {
    for graph in [SHIP, NESTED] {
        let svg = graph.to_svg_with_prefix("pfx");
        assert_eq!(svg, graph.to_svg_with_prefix("pfx"));
        assert!(!svg.contains("\n\n"));
        assert!(!svg.contains("<script") && !svg.contains("href"));
        for (i, _) in svg.match_indices(" id=\"") {
            assert!(svg[i + 5..].starts_with("pfx-"), "{}", &svg[i..i + 20]);
        }
        assert!(!svg.contains("fill=\"#") && !svg.contains("stroke=\"#"));
        assert!(svg.ends_with("</svg>"));
    }
}
