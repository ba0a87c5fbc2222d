//! Analyse: the names each point of the saga reads, and what it still holds there.
//!
//! ```text
//! [Step(a = one(r, &t)), Local(k: u32 = a.n + 1), Step(b = two(k)), Step(c = three(&b))]
//! ```
//! becomes
//! ```text
//! steps: [one, two, three]   locals: [[], [k], [], []]
//! forward:  F0 [r, t]  F1 [r, t, a, k]  F2 [r, t, a, k, b]  F3 [r, t, a, k, b, c]
//! backward: B1 [r, t, a]  B2 [r, t, a, k, b]     (what compensating 0..i reads)
//! ```

use std::collections::HashSet;
use std::ops::Range;

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::Ident;

use super::ast::{Branch, Local, Node, Saga, StepCall};

/// The body as the generated code walks it.
pub(super) struct Analysis<'a> {
    /// The step calls, in order; a group's members one after the other.
    pub(super) steps: Vec<&'a StepCall>,
    /// The positions in `steps` of each group's members.
    pub(super) groups: Vec<Range<usize>>,
    /// `locals[i]` are evaluated on the way into forward state `i` (in a saga
    /// without branches; with branches, only every local is in some slot).
    pub(super) locals: Vec<Vec<&'a Local>>,
    /// The branches, depth first.
    pub(super) branches: Vec<&'a Branch>,
    /// Where each failure turns back to, through the arms taken.
    pub(super) paths: super::paths::Paths,
    /// Every name the saga binds: inputs, outputs and locals.
    pub(super) known: HashSet<String>,
    pub(super) layout: Layout,
}

/// What the saga holds at each point.
pub(super) struct Layout {
    /// Fields of forward state `i`, for `i` in `0..=steps`.
    pub(super) forward: Vec<Vec<Ident>>,
    /// Fields of backward state `i`, for `i` in `1..=steps` (index 0 unused;
    /// `steps` only for a group that ends the body, or a saga that sends,
    /// whose messages may fail after its last step).
    pub(super) backward: Vec<Vec<Ident>>,
}

pub(super) fn analyse(saga: &Saga) -> Analysis<'_> {
    let mut walk = Walk {
        steps: Vec::new(),
        groups: Vec::new(),
        locals: vec![Vec::new()],
        branches: Vec::new(),
    };
    walk.nodes(&saga.body);
    let Walk {
        steps,
        groups,
        locals,
        branches,
    } = walk;
    let mut known: HashSet<String> = saga.params.iter().map(|p| p.name.to_string()).collect();
    known.extend(locals.iter().flatten().map(|l| l.name.to_string()));
    known.extend(steps.iter().map(|s| s.binding.to_string()));
    known.extend(
        branches
            .iter()
            .filter_map(|b| b.binding.as_ref())
            .map(|b| b.to_string()),
    );
    let mut layout = layout(saga, &steps, &locals);
    let paths = super::paths::Paths::new(saga, &steps, &branches, &known);
    layout.backward = paths.backward.clone();
    Analysis {
        steps,
        groups,
        locals,
        branches,
        known,
        layout,
        paths,
    }
}

/// The body's nodes, depth first: a branch's arms' steps one arm after the other.
struct Walk<'a> {
    steps: Vec<&'a StepCall>,
    groups: Vec<Range<usize>>,
    locals: Vec<Vec<&'a Local>>,
    branches: Vec<&'a Branch>,
}

impl<'a> Walk<'a> {
    fn nodes(&mut self, nodes: &'a [Node]) {
        for node in nodes {
            match node {
                // No locals between members: each gets its empty slot, so that
                // positions stay those of a flat list of steps.
                Node::Group(group) => {
                    let start = self.steps.len();
                    self.groups.push(start..start + group.members.len());
                    for member in &group.members {
                        self.steps.push(member);
                        self.locals.push(Vec::new());
                    }
                }
                Node::Step(step) => {
                    self.steps.push(step);
                    self.locals.push(Vec::new());
                }
                Node::Local(local) => {
                    if let Some(slot) = self.locals.last_mut() {
                        slot.push(local);
                    }
                }
                Node::Branch(branch) => {
                    self.branches.push(branch);
                    for arm in &branch.arms {
                        self.nodes(&arm.nodes);
                    }
                }
            }
        }
    }
}

fn layout(saga: &Saga, steps: &[&StepCall], locals: &[Vec<&Local>]) -> Layout {
    let n = steps.len();
    // Every name with its position: the forward state where it is first held.
    let mut order: Vec<(Ident, usize, bool)> = Vec::new();
    for p in &saga.params {
        order.push((p.name.clone(), 0, false));
    }
    for (i, slot) in locals.iter().enumerate() {
        for local in slot {
            order.push((local.name.clone(), i, false));
        }
        if i < n {
            order.push((steps[i].binding.clone(), i + 1, true));
        }
    }
    // `order` interleaves locals and outputs in source order except for the
    // output of step `i`, which comes before the locals of slot `i + 1`.
    order.sort_by_key(|(_, pos, is_output)| (*pos, !*is_output));
    let known: HashSet<String> = order.iter().map(|(i, _, _)| i.to_string()).collect();
    let step_uses: Vec<HashSet<String>> = steps
        .iter()
        .map(|s| names_used(&s.call.args, &known))
        .collect();
    let any_step_use: HashSet<String> = step_uses.iter().flatten().cloned().collect();
    // local_uses[j]: names read by the locals evaluated on the way into state j;
    // index n + 1 stands for the final `Ok(..)`.
    let mut local_uses: Vec<HashSet<String>> = locals
        .iter()
        .map(|slot| {
            let mut set = HashSet::new();
            for l in slot {
                set.extend(names_used(&l.expr, &known));
            }
            set
        })
        .collect();
    let mut final_uses = names_used(&saga.final_expr, &known);
    for send in &saga.sends {
        final_uses.extend(names_used(&send.destination, &known));
        final_uses.extend(send.key.iter().flat_map(|k| names_used(k, &known)));
        final_uses.extend(names_used(&send.message, &known));
    }
    local_uses.push(final_uses);

    let forward = (0..=n)
        .map(|i| {
            order
                .iter()
                .filter(|(name, pos, is_output)| {
                    let s = name.to_string();
                    *pos <= i
                        && (*is_output
                            || any_step_use.contains(&s)
                            || local_uses.iter().skip(i + 1).any(|u| u.contains(&s)))
                })
                .map(|(name, _, _)| name.clone())
                .collect()
        })
        .collect();
    // Up to `n`: a group that ends the body reads state `n`'s fields.
    let backward = (0..=n)
        .map(|i| {
            order
                .iter()
                .filter(|(name, pos, is_output)| {
                    let s = name.to_string();
                    *pos <= i && (*is_output || step_uses.iter().take(i).any(|u| u.contains(&s)))
                })
                .map(|(name, _, _)| name.clone())
                .collect()
        })
        .collect();
    Layout { forward, backward }
}

/// The saga names an expression reads.
pub(super) fn names_used(tokens: &impl ToTokens, known: &HashSet<String>) -> HashSet<String> {
    // Walking tokens instead of the syntax tree also sees names inside macro calls
    // such as `format!("{}", trip.id)`, and the names a format string captures
    // (`format!("{trip}")`) are read out of string literals. Keeping a name that
    // only looks used costs a field; missing one would fail to compile, so
    // over-approximation is the safe side.
    fn walk(stream: TokenStream, known: &HashSet<String>, out: &mut HashSet<String>) {
        // How many dots stand right before this token: one is a field access
        // (`x.trip` does not read `trip`), two or three are a range (`..trip`).
        let mut dots = 0;
        for tt in stream {
            match &tt {
                TokenTree::Group(g) => walk(g.stream(), known, out),
                TokenTree::Ident(i) => {
                    let s = i.to_string();
                    if dots != 1 && known.contains(&s) {
                        out.insert(s);
                    }
                }
                TokenTree::Literal(lit) => {
                    if let Ok(text) = syn::parse_str::<syn::LitStr>(&lit.to_string()) {
                        captured_in_format(&text.value(), known, out);
                    }
                }
                TokenTree::Punct(_) => {}
            }
            dots = match &tt {
                TokenTree::Punct(p) if p.as_char() == '.' => dots + 1,
                _ => 0,
            };
        }
    }
    let mut out = HashSet::new();
    walk(tokens.to_token_stream(), known, &mut out);
    out
}

/// The saga names a format string captures: `{trip}`, `{trip:?}`, `{0:>width$}`.
fn captured_in_format(text: &str, known: &HashSet<String>, out: &mut HashSet<String>) {
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if let Some(escaped) = rest.strip_prefix('{') {
            rest = escaped;
            continue;
        }
        let end = rest.find('}').unwrap_or(rest.len());
        // The argument and a `width$` or `precision$` may each name a value.
        for word in rest[..end].split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if known.contains(word) {
                out.insert(word.to_owned());
            }
        }
        rest = &rest[end..];
    }
}
