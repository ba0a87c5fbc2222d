//! Parse, branches: `if` and `match` over saga data, whose arms are bodies of
//! their own.
//!
//! ```text
//! let shipment = if order.express {
//!     ship_express(carrier, &order).await?
//! } else {
//!     let quote = quote_ground(carrier, &order).await?;
//!     ship_ground(carrier, &order, &quote).await?
//! };
//! ```
//! becomes
//! ```text
//! Branch { binding: shipment, choice: If [order.express],
//!          arms: [[Step(shipment = ship_express(..))],
//!                 [Step(quote = quote_ground(..)), Step(shipment = ship_ground(..))]] }
//! ```
//! An arm that ends with a step call (or a nested branch) binds the branch's
//! name itself, so that the output its compensation reads is the value the
//! saga goes on with, never a copy. The conditions are checked as they are
//! read: they read only saga data, since recovery takes the recorded arm
//! without evaluating them again.

use proc_macro2::Span;
use quote::{ToTokens, format_ident};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Expr, Ident, Pat, Stmt};

use super::ast::{Arm, Branch, Choice, Node, StepCall};
use super::body::{Place, read_stmts, step_call};
use super::condition::{binds_nothing, check_condition};
use super::exprs::{check_plain_expr, contains_await};
use super::scope::Scope;
use super::signature::name_elided;
use crate::ctxt::Ctxt;

/// A branch as read, with what its arms' locals need of the generated types.
pub(super) struct Read {
    pub(super) branch: Branch,
    pub(super) needs_elided: bool,
}

/// `stmt` read as a branch: `None` if it is not one, `Some(None)` if it was
/// reported. `steps` counts the steps before it and goes on counting.
pub(super) fn read_stmt(
    cx: &Ctxt,
    stmt: &Stmt,
    scope: &mut Scope,
    steps: &mut usize,
) -> Option<Option<Read>> {
    match stmt {
        Stmt::Expr(expr @ (Expr::If(_) | Expr::Match(_)), _) => {
            Some(read(cx, expr, None, None, scope, steps, true))
        }
        // A `let` whose arms call no step is a typed local like any other.
        Stmt::Local(local) => {
            let init = local.init.as_ref()?;
            let expr @ (Expr::If(_) | Expr::Match(_)) = &*init.expr else {
                return None;
            };
            if !has_steps(expr) || init.diverge.is_some() {
                return None;
            }
            let (name, ty) = match let_pattern(cx, &local.pat) {
                Ok(found) => found,
                Err(()) => return Some(None),
            };
            Some(read(cx, expr, name, ty, scope, steps, true))
        }
        _ => None,
    }
}

/// The name and type a branch's `let` binds: `let x`, `let x: T`, `let _`.
fn let_pattern(cx: &Ctxt, pat: &Pat) -> Result<(Option<Ident>, Option<syn::Type>), ()> {
    let (pat, ty) = match pat {
        Pat::Type(pt) => (&*pt.pat, Some((*pt.ty).clone())),
        other => (other, None),
    };
    match pat {
        Pat::Ident(pi) if pi.by_ref.is_none() && pi.mutability.is_none() && pi.subpat.is_none() => {
            Ok((Some(pi.ident.clone()), ty))
        }
        Pat::Wild(_) => Ok((None, None)),
        other => {
            cx.error_spanned_by(
                other,
                "bind a branch's value to one name, as in `let shipment = if .. { .. } else { .. };`: saga values are immutable and read whole",
            );
            Err(())
        }
    }
}

/// Whether an `if`'s or a `match`'s arms call a step: only then is it a branch
/// of the saga rather than a local's plain value.
fn has_steps(expr: &Expr) -> bool {
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_expr_await(&mut self, _: &'ast syn::ExprAwait) {
            self.0 = true;
        }
        fn visit_macro(&mut self, m: &'ast syn::Macro) {
            self.0 |= m
                .path
                .segments
                .first()
                .is_some_and(|s| s.ident == "sagaflow");
        }
        fn visit_expr_async(&mut self, _: &'ast syn::ExprAsync) {}
        fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
    }
    let mut f = Finder(false);
    match expr {
        Expr::If(i) => {
            f.visit_block(&i.then_branch);
            if let Some((_, e)) = &i.else_branch {
                f.visit_expr(e);
            }
        }
        Expr::Match(m) => m.arms.iter().for_each(|a| f.visit_expr(&a.body)),
        _ => {}
    }
    f.0
}

/// One arm before it is read: its statements and the expression it ends with.
struct Source<'a> {
    stmts: &'a [Stmt],
    tail: Option<&'a Expr>,
    label: String,
}

fn block_source(block: &syn::Block, label: String) -> Source<'_> {
    match block.stmts.split_last() {
        Some((Stmt::Expr(tail, None), rest)) => Source {
            stmts: rest,
            tail: Some(tail),
            label,
        },
        _ => Source {
            stmts: &block.stmts,
            tail: None,
            label,
        },
    }
}

fn text(tokens: &impl ToTokens) -> String {
    let text = tokens.to_token_stream().to_string();
    // `order . express` as written: `order.express`.
    text.replace(" . ", ".")
        .replace(" ,", ",")
        .replace(":: ", "::")
        .replace(" ::", "::")
        .replace("& ", "&")
        .replace("! ", "!")
}

/// The branch `expr` is; `name` is what its `let` binds, if anything, and
/// `outermost` whether this branch binds it (a nested one that ends an arm
/// binds the same name for the branch around it).
fn read(
    cx: &Ctxt,
    expr: &Expr,
    name: Option<Ident>,
    ty: Option<syn::Type>,
    scope: &mut Scope,
    steps: &mut usize,
    outermost: bool,
) -> Option<Read> {
    let (choice, sources, label, span) = match expr {
        Expr::If(i) => read_if(cx, i, scope)?,
        Expr::Match(m) => read_match(cx, m, scope)?,
        _ => return None,
    };
    let mut needs_elided = false;
    let mut arms = Vec::new();
    let mut ok = true;
    for source in sources {
        let mut body = read_stmts(cx, source.stmts, scope, steps, Place::Arm);
        ok &= body.ok;
        needs_elided |= body.needs_elided;
        let value = match source.tail {
            None => None,
            Some(tail) => match read_tail(cx, tail, name.as_ref(), ty.as_ref(), scope, steps)? {
                Tail::Node(node, n) => {
                    needs_elided |= n;
                    body.nodes.push(node);
                    None
                }
                Tail::Value(value) => Some(value),
            },
        };
        arms.push(Arm {
            nodes: std::mem::take(&mut body.nodes),
            value,
            label: source.label,
        });
    }
    if let Some(name) = &name {
        for arm in &arms {
            if arm.value.is_none() && !binds(arm, name) {
                cx.error_at(
                    span,
                    format!(
                        "an arm of this branch (`{}`) gives `{name}` no value: end each arm with a step call (`step(args).await?`, no `;`) or with the value itself",
                        arm.label
                    ),
                );
                ok = false;
            }
        }
    }
    let binding_ty = match (&name, ty) {
        (None, _) => None,
        (Some(_), Some(mut ty)) => {
            needs_elided |= name_elided(&mut ty, &scope.elided);
            Some(ty.to_token_stream())
        }
        (Some(name), None) => match arms.iter().find_map(tail_step_path) {
            Some(path) => {
                Some(quote::quote_spanned!(path.span()=> <#path as ::sagaflow::Step>::Output))
            }
            None => {
                cx.error_spanned_by(
                    name,
                    format!(
                        "write the type of `{name}`, as in `let {name}: u64 = if .. {{ .. }} else {{ .. }};`: it becomes part of the saga's state, and no arm ends with a step call whose output type it could take"
                    ),
                );
                return None;
            }
        },
    };
    if let (Some(name), true) = (&name, outermost) {
        scope.bind(cx, name);
        scope.hold(name);
    }
    ok.then_some(Read {
        branch: Branch {
            binding: name,
            binding_ty,
            choice,
            arms,
            label,
        },
        needs_elided,
    })
}

/// Whether `arm` ends with a step or a nested branch that binds `name`.
fn binds(arm: &Arm, name: &Ident) -> bool {
    match arm.nodes.last() {
        Some(Node::Step(s)) => &s.binding == name,
        Some(Node::Branch(b)) => b.binding.as_ref() == Some(name),
        _ => false,
    }
}

/// The path of the step an arm ends with (in a nested branch too), whose
/// output is the branch's value.
fn tail_step_path(arm: &Arm) -> Option<syn::Path> {
    if arm.value.is_some() {
        return None;
    }
    match arm.nodes.last()? {
        Node::Step(s) if s.inline.is_none() => Some(s.path.clone()),
        Node::Branch(b) if b.binding.is_some() => b.arms.iter().find_map(tail_step_path),
        _ => None,
    }
}

type Parts<'a> = (Choice, Vec<Source<'a>>, String, Span);

fn read_if<'a>(cx: &Ctxt, mut i: &'a syn::ExprIf, scope: &Scope) -> Option<Parts<'a>> {
    let span = i.if_token.span;
    let mut conds = Vec::new();
    let mut sources = Vec::new();
    let mut ok = true;
    loop {
        ok &= check_condition(cx, &i.cond, scope);
        conds.push((*i.cond).clone());
        sources.push(block_source(&i.then_branch, text(&i.cond)));
        match i.else_branch.as_ref().map(|(_, e)| &**e) {
            Some(Expr::If(next)) => i = next,
            Some(Expr::Block(b)) => {
                sources.push(block_source(&b.block, "else".to_owned()));
                break;
            }
            Some(other) => {
                cx.error_spanned_by(other, "an `else` takes a block");
                return None;
            }
            None => {
                sources.push(Source {
                    stmts: &[],
                    tail: None,
                    label: "else".to_owned(),
                });
                break;
            }
        }
    }
    let label = if conds.len() == 1 {
        sources[0].label = "true".to_owned();
        sources[1].label = "false".to_owned();
        text(&conds[0])
    } else {
        "if".to_owned()
    };
    ok.then_some((Choice::If(conds), sources, label, span))
}

fn read_match<'a>(cx: &Ctxt, m: &'a syn::ExprMatch, scope: &Scope) -> Option<Parts<'a>> {
    let mut ok = check_condition(cx, &m.expr, scope);
    let mut arms = Vec::new();
    let mut sources = Vec::new();
    for arm in &m.arms {
        ok &= binds_nothing(cx, &arm.pat);
        let guard = arm.guard.as_ref().map(|(_, g)| (**g).clone());
        if let Some(g) = &guard {
            ok &= check_condition(cx, g, scope);
        }
        let label = match &guard {
            Some(g) => format!("{} if {}", text(&arm.pat), text(g)),
            None => text(&arm.pat),
        };
        sources.push(match &*arm.body {
            Expr::Block(b) if b.label.is_none() => block_source(&b.block, label),
            body => Source {
                stmts: &[],
                tail: Some(body),
                label,
            },
        });
        arms.push((arm.pat.clone(), guard));
    }
    if arms.is_empty() {
        cx.error_spanned_by(m, "a saga's `match` needs at least one arm");
        return None;
    }
    let label = format!("match {}", text(&m.expr));
    let choice = Choice::Match {
        scrutinee: (*m.expr).clone(),
        arms,
    };
    ok.then_some((choice, sources, label, m.match_token.span))
}

/// What an arm ends with.
// Lives for one arm's last expression, moved once into the arm: boxing would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Tail {
    /// A step or a nested branch, and whether its locals need the elided lifetime.
    Node(Node, bool),
    Value(Expr),
}

/// The expression an arm ends with: a step call or a nested branch that binds
/// the branch's name, or a plain value.
fn read_tail(
    cx: &Ctxt,
    tail: &Expr,
    name: Option<&Ident>,
    ty: Option<&syn::Type>,
    scope: &mut Scope,
    steps: &mut usize,
) -> Option<Tail> {
    if let Expr::If(_) | Expr::Match(_) = tail {
        let nested = read(cx, tail, name.cloned(), ty.cloned(), scope, steps, false)?;
        return Some(Tail::Node(Node::Branch(nested.branch), nested.needs_elided));
    }
    match step_call(cx, tail, scope, ty) {
        Some(Some(step)) => {
            let binding = match name {
                Some(name) => name.clone(),
                None => format_ident!("__sagaflow_output{}", *steps),
            };
            scope.hold(&binding);
            let step = StepCall {
                named_by_user: false,
                binding_ty: if step.inline.is_some() {
                    None
                } else {
                    ty.cloned()
                },
                binding,
                ..step
            };
            *steps += 1;
            Some(Tail::Node(Node::Step(step), false))
        }
        Some(None) => None,
        None => {
            if let Some(span) = contains_await(tail) {
                cx.error_at(
                    span,
                    "a step call is a whole statement or an arm's last expression, as in `book_flight(args).await?`: read its output's fields in a later typed local",
                );
                return None;
            }
            if !check_plain_expr(cx, tail) {
                return None;
            }
            if name.is_none() && !matches!(tail, Expr::Tuple(t) if t.elems.is_empty()) {
                cx.error_spanned_by(
                    tail,
                    "this arm's value goes nowhere: give the branch a `let` (`let x: T = if .. { .. } else { .. };`), or end the arm with `;`",
                );
                return None;
            }
            Some(Tail::Value(tail.clone()))
        }
    }
}
