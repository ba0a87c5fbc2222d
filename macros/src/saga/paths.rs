//! Analyse, paths: where a failure turns back to, through the arms taken.
//!
//! ```text
//! let a = one(..).await?;                       // step 0
//! let x = if c { two(..).await? }               // step 1, arm 0
//!         else { three(..).await?; four(..).await? };  // steps 2, 3, arm 1
//! five(&x).await?;                              // step 4
//! ```
//! becomes
//! ```text
//! step 0 fails: Fail      step 1 fails: B1 (undo 0)   step 2 fails: B1
//! step 3 fails: B3 (undo 2, then B1)                   step 4 fails: Dispatch(0)
//! Dispatch(0): match arms0 { A0 => B2 (undo 1, then B1), A1 => B4 (undo 3, then B3) }
//! ```
//! Steps are numbered depth first, so the steps of an arm have indices of their
//! own; the first step of an arm turns back to what came before the branch, never
//! to another arm. After a branch, the way back depends on the arm taken: the
//! saga carries a value of the branch's own enum (`__SagaflowArms<k>`), one
//! variant per arm, holding what undoing that arm reads of the names bound
//! inside it; the names bound outside stay in the states beside it.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use quote::format_ident;
use syn::Ident;

use super::analyse::names_used;
use super::ast::{Branch, Node, Saga, StepCall};

/// Where the saga turns back to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) enum Cont {
    /// Nothing left to undo: the saga fails.
    Fail,
    /// Backward state `B<i>`: undo step `i - 1` (or the group ending there).
    State(usize),
    /// Undo the arm branch `k` took.
    Dispatch(usize),
}

/// What one branch needs on the way back.
pub(super) struct BranchPaths {
    /// Per arm, where undoing it starts: its last step, or what came before
    /// the branch for an arm without steps.
    pub(super) last: Vec<Cont>,
    /// Per arm, the names bound inside it that undoing it reads.
    pub(super) data: Vec<Vec<Ident>>,
    /// The name of the value that says which arm ran: `__sagaflow_arms<k>`.
    pub(super) ident: Ident,
    /// Per arm, the positions of its steps (nested arms' included).
    pub(super) arm_steps: Vec<Range<usize>>,
}

enum Ending {
    None,
    Step(usize),
    Group(usize, Range<usize>),
}

pub(super) struct Paths {
    /// Per step, where its failure turns back to (unused for group members).
    pub(super) step_pred: Vec<Cont>,
    /// Per group, where undoing it goes on to.
    pub(super) group_pred: Vec<Cont>,
    /// Where a failure after the last step (the messages) turns back to.
    pub(super) end: Cont,
    pub(super) branches: Vec<BranchPaths>,
    /// Fields of backward state `i`, for `i` in `0..=steps`.
    pub(super) backward: Vec<Vec<Ident>>,
    /// Whether backward state `i` is ever built.
    pub(super) reachable: Vec<bool>,
}

struct Builder<'a> {
    steps: &'a [&'a StepCall],
    known: &'a HashSet<String>,
    next_step: usize,
    next_group: usize,
    step_pred: Vec<Cont>,
    group_pred: Vec<Cont>,
    ending: Vec<Ending>,
    /// Every name by its first binding, in source order.
    rank: HashMap<String, usize>,
    /// Per arm being walked, the names bound inside it.
    inside: Vec<HashSet<String>>,
    /// The names of the branches being walked, which their arms' last steps bind.
    pending: Vec<String>,
    last: Vec<Vec<Cont>>,
    insides: Vec<Vec<HashSet<String>>>,
    arm_steps: Vec<Vec<Range<usize>>>,
    memo: HashMap<Cont, Vec<Ident>>,
    names: HashMap<String, Ident>,
}

impl Paths {
    pub(super) fn new(
        saga: &Saga,
        steps: &[&StepCall],
        branches: &[&Branch],
        known: &HashSet<String>,
    ) -> Paths {
        let n = steps.len();
        let mut b = Builder {
            steps,
            known,
            next_step: 0,
            next_group: 0,
            step_pred: vec![Cont::Fail; n],
            group_pred: Vec::new(),
            ending: (0..=n).map(|_| Ending::None).collect(),
            rank: HashMap::new(),
            inside: Vec::new(),
            pending: Vec::new(),
            last: vec![Vec::new(); branches.len()],
            insides: vec![Vec::new(); branches.len()],
            arm_steps: vec![Vec::new(); branches.len()],
            memo: HashMap::new(),
            names: HashMap::new(),
        };
        for p in &saga.params {
            b.bind(&p.name);
        }
        let mut next_branch = 0;
        let end = b.seq(&saga.body, Cont::Fail, &mut next_branch);
        let backward = (0..=n).map(|i| b.fields(Cont::State(i))).collect();
        let mut out = Paths {
            step_pred: b.step_pred.clone(),
            group_pred: b.group_pred.clone(),
            end,
            branches: Vec::new(),
            backward,
            reachable: vec![false; n + 1],
        };
        for k in 0..branches.len() {
            let data = (0..b.last[k].len())
                .map(|a| {
                    let fields = b.fields(b.last[k][a]);
                    fields
                        .into_iter()
                        .filter(|f| b.insides[k][a].contains(&f.to_string()))
                        .collect()
                })
                .collect();
            out.branches.push(BranchPaths {
                last: b.last[k].clone(),
                data,
                ident: arms_ident(k),
                arm_steps: b.arm_steps[k].clone(),
            });
        }
        out.mark_reachable(&b, !saga.sends.is_empty());
        out
    }

    fn mark_reachable(&mut self, b: &Builder<'_>, sends: bool) {
        let mut todo: Vec<Cont> = Vec::new();
        let in_group = |i: usize| {
            b.ending
                .iter()
                .any(|e| matches!(e, Ending::Group(_, r) if r.contains(&i)))
        };
        for (i, c) in self.step_pred.iter().enumerate() {
            if !in_group(i) {
                todo.push(*c);
            }
        }
        todo.extend(self.group_pred.iter().copied());
        if sends {
            todo.push(self.end);
        }
        let mut seen: HashSet<Cont> = HashSet::new();
        while let Some(c) = todo.pop() {
            if !seen.insert(c) {
                continue;
            }
            match c {
                Cont::Fail => {}
                Cont::State(i) => {
                    self.reachable[i] = true;
                    match &b.ending[i] {
                        Ending::Step(j) => todo.push(self.step_pred[*j]),
                        Ending::Group(k, _) => todo.push(self.group_pred[*k]),
                        Ending::None => {}
                    }
                }
                Cont::Dispatch(k) => todo.extend(self.branches[k].last.iter().copied()),
            }
        }
    }
}

/// The name of branch `k`'s arms value.
pub(super) fn arms_ident(k: usize) -> Ident {
    format_ident!("__sagaflow_arms{}", k)
}

impl Builder<'_> {
    fn bind(&mut self, name: &Ident) {
        let s = name.to_string();
        let next = self.rank.len();
        self.rank.entry(s.clone()).or_insert(next);
        self.names.entry(s.clone()).or_insert_with(|| name.clone());
        if self.pending.contains(&s) {
            return;
        }
        for set in &mut self.inside {
            set.insert(s.clone());
        }
    }

    fn seq(&mut self, nodes: &[Node], mut cur: Cont, next_branch: &mut usize) -> Cont {
        for node in nodes {
            match node {
                Node::Step(s) => {
                    let i = self.next_step;
                    self.step_pred[i] = cur;
                    self.ending[i + 1] = Ending::Step(i);
                    self.bind(&s.binding);
                    self.next_step += 1;
                    cur = Cont::State(i + 1);
                }
                Node::Group(g) => {
                    let (k, start) = (self.next_group, self.next_step);
                    self.next_group += 1;
                    self.group_pred.push(cur);
                    for m in &g.members {
                        self.bind(&m.binding);
                    }
                    self.next_step += g.members.len();
                    self.ending[self.next_step] = Ending::Group(k, start..self.next_step);
                    cur = Cont::State(self.next_step);
                }
                Node::Local(l) => self.bind(&l.name),
                Node::Branch(branch) => cur = self.branch(branch, cur, next_branch),
            }
        }
        cur
    }

    fn branch(&mut self, branch: &Branch, before: Cont, next_branch: &mut usize) -> Cont {
        let k = *next_branch;
        *next_branch += 1;
        if let Some(x) = &branch.binding {
            self.pending.push(x.to_string());
        }
        for arm in &branch.arms {
            let start = self.next_step;
            self.inside.push(HashSet::new());
            let last = self.seq(&arm.nodes, before, next_branch);
            let inside = self.inside.pop().unwrap_or_default();
            self.last[k].push(last);
            self.insides[k].push(inside);
            self.arm_steps[k].push(start..self.next_step);
        }
        if branch.binding.is_some() {
            self.pending.pop();
        }
        self.bind(&arms_ident(k));
        if let Some(x) = &branch.binding {
            self.bind(x);
        }
        if self.last[k].iter().all(|l| *l == before) {
            before
        } else {
            Cont::Dispatch(k)
        }
    }

    /// What undoing a step reads: its arguments' saga names and its output.
    fn need(&self, i: usize) -> Vec<String> {
        let step = self.steps[i];
        let mut out: Vec<String> = names_used(&step.call.args, self.known)
            .into_iter()
            .collect();
        out.push(step.binding.to_string());
        out
    }

    /// The fields of the state `cont` names, in source order.
    fn fields(&mut self, cont: Cont) -> Vec<Ident> {
        if let Some(found) = self.memo.get(&cont) {
            return found.clone();
        }
        let mut set: HashSet<String> = HashSet::new();
        match cont {
            Cont::Fail => {}
            Cont::State(i) => match &self.ending[i] {
                Ending::None => {}
                Ending::Step(j) => {
                    let j = *j;
                    set.extend(self.need(j));
                    let pred = self.step_pred[j];
                    set.extend(self.fields(pred).iter().map(|f| f.to_string()));
                }
                Ending::Group(k, range) => {
                    let (k, range) = (*k, range.clone());
                    for j in range {
                        set.extend(self.need(j));
                    }
                    let pred = self.group_pred[k];
                    set.extend(self.fields(pred).iter().map(|f| f.to_string()));
                }
            },
            Cont::Dispatch(k) => {
                set.insert(arms_ident(k).to_string());
                for a in 0..self.last[k].len() {
                    let last = self.last[k][a];
                    for f in self.fields(last) {
                        let f = f.to_string();
                        if !self.insides[k][a].contains(&f) {
                            set.insert(f);
                        }
                    }
                }
            }
        }
        let mut fields: Vec<Ident> = set
            .into_iter()
            .filter_map(|s| self.names.get(&s).cloned())
            .collect();
        fields.sort_by_key(|f| self.rank.get(&f.to_string()).copied().unwrap_or(usize::MAX));
        self.memo.insert(cont, fields.clone());
        fields
    }
}
