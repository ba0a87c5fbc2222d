//! The paths through a saga with branches, shared by the Mermaid and DOT
//! renderers: a diamond per branch, the arms out of it side by side, and
//! undo edges that follow each path back.
//!
//! ```text
//! s0 → b0 ─true→ s1 ─┐
//!         └false→ s2 → s3 → s4      s4 fails → c1 or c3 (the arm that ran)
//! ```
//! A step's predecessors are the steps that can run right before it, on any
//! path: after a branch, the last step of each arm (or what came before the
//! branch, for an arm without steps).

use crate::graph::{SagaGraph, compensation_of};

/// The flow of a saga with branches.
pub(crate) struct Flow {
    /// Forward edges, with the arm's label on the edge out of a diamond.
    pub(crate) edges: Vec<(String, String, Option<&'static str>)>,
    /// Per step, the nodes that can run right before it (`start`, steps).
    preds: Vec<Vec<Pred>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pred {
    Start,
    Step(usize),
}

struct Walk<'g> {
    graph: &'g SagaGraph,
    edges: Vec<(String, String, Option<&'static str>)>,
    preds: Vec<Vec<Pred>>,
    drawn: Vec<bool>,
}

/// A point the flow can come from: a node, and the label of the edge out of it.
type From = (String, Pred, Option<&'static str>);

impl Walk<'_> {
    fn edge(&mut self, from: &From, to: String) {
        if !self
            .edges
            .iter()
            .any(|(f, t, l)| f == &from.0 && t == &to && *l == from.2)
        {
            self.edges.push((from.0.clone(), to, from.2));
        }
    }

    /// The outermost branch not drawn yet whose steps start at `i` and lie in `lo..hi`.
    fn branch_at(&self, i: usize, hi: usize) -> Option<usize> {
        self.graph.branches().iter().enumerate().position(|(k, b)| {
            let r = b.steps();
            !self.drawn[k] && r.start as usize == i && r.end as usize <= hi
        })
    }

    fn seq(&mut self, lo: usize, hi: usize, mut from: Vec<From>) -> Vec<From> {
        let mut i = lo;
        loop {
            if let Some(k) = self.branch_at(i, hi) {
                self.drawn[k] = true;
                let b = self.graph.branches()[k];
                let diamond = format!("b{k}");
                for f in &from {
                    self.edge(f, diamond.clone());
                }
                let before: Vec<Pred> = from.iter().map(|f| f.1).collect();
                let mut out: Vec<From> = Vec::new();
                for arm in b.arms() {
                    let r = arm.steps();
                    // An arm without steps goes on from the diamond, but
                    // undoing goes on from what came before the branch.
                    let into: Vec<From> = before
                        .iter()
                        .map(|p| (diamond.clone(), *p, Some(arm.label())))
                        .collect();
                    for end in self.seq(r.start as usize, r.end as usize, into) {
                        if !out
                            .iter()
                            .any(|o| o.0 == end.0 && o.1 == end.1 && o.2 == end.2)
                        {
                            out.push(end);
                        }
                    }
                }
                from = out;
                i = b.steps().end as usize;
                continue;
            }
            if i >= hi {
                return from;
            }
            let range = self.graph.group_of(i).unwrap_or(i..i + 1);
            let mut next = Vec::new();
            for j in range.clone() {
                for f in &from {
                    self.edge(f, format!("s{j}"));
                }
                self.preds[j] = dedup(from.iter().map(|f| f.1));
                next.push((format!("s{j}"), Pred::Step(j), None));
            }
            from = next;
            i = range.end;
        }
    }
}

fn dedup(preds: impl Iterator<Item = Pred>) -> Vec<Pred> {
    let mut out = Vec::new();
    for p in preds {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

impl SagaGraph {
    /// The forward edges and each step's predecessors, through the branches.
    pub(crate) fn flow(&self) -> Flow {
        let n = self.steps().len();
        let mut walk = Walk {
            graph: self,
            edges: Vec::new(),
            preds: vec![Vec::new(); n],
            drawn: vec![false; self.branches().len()],
        };
        let start = vec![("start".to_owned(), Pred::Start, None)];
        for end in walk.seq(0, n, start) {
            walk.edge(&end, "done".to_owned());
        }
        Flow {
            edges: walk.edges,
            preds: walk.preds,
        }
    }

    /// Where undoing goes on from a point before step `index` (or its group):
    /// on each path into it, the nearest compensation (all of its group's at
    /// once), or `undone`.
    pub(crate) fn undo_along_paths(&self, index: usize) -> Vec<String> {
        let flow = self.flow();
        let start = self.group_of(index).map_or(index, |r| r.start);
        let mut out: Vec<String> = Vec::new();
        let mut todo: Vec<Pred> = flow.preds.get(start).cloned().unwrap_or_default();
        let mut seen: Vec<Pred> = Vec::new();
        while let Some(p) = todo.pop() {
            if seen.contains(&p) {
                continue;
            }
            seen.push(p);
            let found = match p {
                Pred::Start => vec!["undone".to_owned()],
                Pred::Step(j) => {
                    let range = self.group_of(j).unwrap_or(j..j + 1);
                    let comps: Vec<String> = range
                        .clone()
                        .filter(|&m| compensation_of(&self.steps()[m]).is_some())
                        .map(|m| format!("c{m}"))
                        .collect();
                    if comps.is_empty() {
                        todo.extend(flow.preds[range.start].iter().copied());
                        continue;
                    }
                    comps
                }
            };
            for f in found {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        out.sort_by_key(|t| {
            t.trim_start_matches('c')
                .parse::<usize>()
                .unwrap_or(usize::MAX)
        });
        out
    }
}
