//! The edges of a saga with `sagaflow::join!` groups, shared by the Mermaid and
//! DOT renderers: a fork into a group's members and a join out of them, and
//! failure and undo edges that fan out to the compensations of a group, which
//! run concurrently.
//!
//! ```text
//! s0 → [s1 | s2] → s3      forward: s0 → s1, s0 → s2, s1 → s3, s2 → s3
//! s2 fails → c1            a member's failure: its siblings' compensations
//! s3 fails → c1, c2        a later failure: the whole group's, at once
//! c1 → c0, c2 → c0         then on to the steps before the group
//! ```

use core::ops::Range;

use crate::graph::{SagaGraph, compensation_of};

impl SagaGraph {
    /// The positions of the members of the group that step `index` is in.
    pub(crate) fn group_of(&self, index: usize) -> Option<Range<usize>> {
        let group = self.steps()[index].group()?;
        let start = (0..=index)
            .rev()
            .take_while(|&i| self.steps()[i].group() == Some(group))
            .last()?;
        let end = (index..self.steps().len())
            .take_while(|&i| self.steps()[i].group() == Some(group))
            .last()?
            + 1;
        Some(start..end)
    }

    /// The groups, in order.
    pub(crate) fn groups(&self) -> Vec<Range<usize>> {
        let mut groups: Vec<Range<usize>> = Vec::new();
        for i in 0..self.steps().len() {
            if let Some(range) = self.group_of(i)
                && groups.last() != Some(&range)
            {
                groups.push(range);
            }
        }
        groups
    }

    /// The forward edges, `start` to `done`: into every member of a group from
    /// what is before it, and out of every member to what is after it.
    pub(crate) fn forward_edges(&self) -> Vec<(String, String, Option<&'static str>)> {
        if !self.branches().is_empty() {
            return self.flow().edges;
        }
        let mut edges = Vec::new();
        let mut from = vec!["start".to_owned()];
        let mut i = 0;
        let n = self.steps().len();
        while i < n {
            let range = self.group_of(i).unwrap_or(i..i + 1);
            let to: Vec<String> = range.clone().map(|j| format!("s{j}")).collect();
            for f in &from {
                for t in &to {
                    edges.push((f.clone(), t.clone(), None));
                }
            }
            from = to;
            i = range.end;
        }
        for f in from {
            edges.push((f, "done".to_owned(), None));
        }
        edges
    }

    /// Where undoing goes on from a point before step `index`: the nearest
    /// compensation before it, or all of its group's at once, or `undone`.
    pub(crate) fn undo_targets_before(&self, index: usize) -> Vec<String> {
        if !self.branches().is_empty() {
            return self.undo_along_paths(index);
        }
        let Some(j) = self.steps()[..index]
            .iter()
            .rposition(|s| compensation_of(s).is_some())
        else {
            return vec!["undone".to_owned()];
        };
        match self.group_of(j) {
            Some(range) => self.compensations_in(range.start..j + 1, None),
            None => vec![format!("c{j}")],
        }
    }

    /// Where step `index`'s failure leads: to its group's other compensations,
    /// run at once, else to what is before it (or its group).
    pub(crate) fn failure_targets(&self, index: usize) -> Vec<String> {
        match self.group_of(index) {
            Some(range) => {
                let siblings = self.compensations_in(range.clone(), Some(index));
                if siblings.is_empty() {
                    self.undo_targets_before(range.start)
                } else {
                    siblings
                }
            }
            // A TCC step's try that failed is cancelled first.
            None if compensation_of(&self.steps()[index]).is_some()
                && self.steps()[index].kind() == crate::StepKind::Tcc =>
            {
                vec![format!("c{index}")]
            }
            None => self.undo_targets_before(index),
        }
    }

    /// Where undoing goes on after compensation `index`: past its group, if in one.
    pub(crate) fn undo_next(&self, index: usize) -> Vec<String> {
        let start = self.group_of(index).map_or(index, |r| r.start);
        self.undo_targets_before(start)
    }

    /// The compensations of the steps in `range`, but `except`.
    fn compensations_in(&self, range: Range<usize>, except: Option<usize>) -> Vec<String> {
        range
            .filter(|&j| Some(j) != except && compensation_of(&self.steps()[j]).is_some())
            .map(|j| format!("c{j}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::{SagaGraph, StepInfo, StepKind};

    const STEPS: &[StepInfo] = &[
        StepInfo::new("debit", StepKind::Compensatable).with_compensation("refund"),
        StepInfo::new("fly", StepKind::Compensatable)
            .with_compensation("unfly")
            .in_group(0),
        StepInfo::new("check", StepKind::ReadOnly).in_group(0),
        StepInfo::new("sleep", StepKind::Compensatable)
            .with_compensation("unsleep")
            .in_group(0),
        StepInfo::new("pay", StepKind::Pivot),
    ];
    const GRAPH: SagaGraph = SagaGraph::new("trip", STEPS);

    #[test]
    fn a_group_forks_and_joins() {
        assert_eq!(GRAPH.groups().len(), 1);
        assert_eq!(GRAPH.groups()[0], 1..4);
        let mermaid = GRAPH.to_mermaid();
        assert!(
            mermaid.contains(
                "    subgraph g0 [\"at once\"]\n        s1\n        s2\n        s3\n    end\n"
            ),
            "{mermaid}"
        );
        for edge in [
            "s0 --> s1",
            "s0 --> s2",
            "s0 --> s3",
            "s1 --> s4",
            "s3 --> s4",
            "s4 --> done",
        ] {
            assert!(mermaid.contains(edge), "{edge}: {mermaid}");
        }
        assert!(!mermaid.contains("s1 --> s2"), "{mermaid}");
        let dot = GRAPH.to_dot();
        assert!(
            dot.contains("subgraph cluster_g0 { label=\"at once\"; style=dashed; s1; s2; s3; }"),
            "{dot}"
        );
        assert!(dot.contains("s0 -> s2;"), "{dot}");
        // In the picture, members in a dashed frame, `‖` between them; their
        // compensations too.
        let svg = GRAPH.to_svg();
        assert_eq!(svg.matches("stroke-dasharray=\"2 4\"").count(), 2, "{svg}");
        assert_eq!(svg.matches(">‖</text>").count(), 4, "{svg}");
        let sequential = SagaGraph::new("trip", &STEPS[..1]).to_svg();
        assert!(!sequential.contains("‖"), "{sequential}");
    }

    #[test]
    fn a_groups_compensations_are_drawn_concurrent() {
        let mermaid = GRAPH.to_mermaid();
        // A member's failure: its siblings' compensations, at once.
        assert!(mermaid.contains("s2 -.->|fails| c1"), "{mermaid}");
        assert!(mermaid.contains("s2 -.->|fails| c3"), "{mermaid}");
        assert!(mermaid.contains("s1 -.->|fails| c3"), "{mermaid}");
        assert!(!mermaid.contains("s1 -.->|fails| c1"), "{mermaid}");
        // A later failure: the whole group's, then on to the step before.
        assert!(mermaid.contains("s4 -.->|fails| c1"), "{mermaid}");
        assert!(mermaid.contains("s4 -.->|fails| c3"), "{mermaid}");
        assert!(mermaid.contains("c1 -.-> c0"), "{mermaid}");
        assert!(mermaid.contains("c3 -.-> c0"), "{mermaid}");
        assert!(!mermaid.contains("c3 -.-> c1"), "{mermaid}");
        let dot = GRAPH.to_dot();
        assert!(
            dot.contains("s4 -> c3 [style=dashed, label=\"fails\", constraint=false];"),
            "{dot}"
        );
        assert!(
            dot.contains("c3 -> c0 [style=dashed, constraint=false];"),
            "{dot}"
        );
    }

    #[test]
    fn the_pictures_compensations_of_a_group_run_at_once() {
        let svg = GRAPH.to_svg();
        let lane = |x1: &str, x2: &str| {
            format!(
                "<line x1=\"{x1}\" y1=\"118\" x2=\"{x2}\" y2=\"118\" stroke=\"currentColor\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\" marker-end="
            )
        };
        // The compensations' frame, under the members' frame.
        assert!(
            svg.contains(
                "<rect x=\"222\" y=\"96\" width=\"318\" height=\"44\" rx=\"6\" fill=\"none\""
            ),
            "{svg}"
        );
        // The pivot's failure enters the frame at its right edge, and the lane
        // leaves it from its left edge to `refund`: no arrow from `unsleep`
        // to `unfly`, which run at once.
        assert!(svg.contains(&lane("554", "540")), "{svg}");
        assert!(svg.contains(&lane("222", "188")), "{svg}");
        assert!(!svg.contains("x2=\"292\" y2=\"118\""), "{svg}");
        // Each member's failure leads into the frame, with an arrow: its
        // siblings are undone at once.
        let into_frame = svg
            .lines()
            .filter(|l| {
                l.contains("y2=\"96\"") && l.contains("stroke-dasharray=\"6 4\" marker-end")
            })
            .count();
        assert_eq!(into_frame, 3, "{svg}");
        // The legend says what the frame means; without a group it does not.
        assert!(svg.contains("those in a frame at once"), "{svg}");
        let sequential = SagaGraph::new("trip", &STEPS[..1]).to_svg();
        assert!(!sequential.contains("in a frame"), "{sequential}");
    }
}
