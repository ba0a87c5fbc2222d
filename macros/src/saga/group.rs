//! Parse, groups: `sagaflow::join!`, steps that run at once.
//!
//! ```text
//! let (flight, _) = sagaflow::join!(book_flight(airline, &trip), book_hotel(hotels, &trip))?;
//! ```
//! becomes
//! ```text
//! Group [Step(flight = book_flight(airline, &trip)), Step(__sagaflow_output3 = book_hotel(hotels, &trip))]
//! ```
//! The group is checked here as it is read: 2 to 12 members, each a step call
//! without `.await` or `?`, none reading a sibling's output, one name (or `_`)
//! per member in the pattern. The pivot rules need the members' kinds, known
//! only to rustc: see [`member_checks`].

use std::collections::HashSet;

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote_spanned};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, Pat, Token};

use super::analyse::names_used;
use super::ast::{Group, StepCall};
use super::body::awaited_call;
use super::scope::Scope;
use crate::ctxt::Ctxt;

/// The most members a group takes: as many as a tuple that implements the
/// standard traits.
const MAX_MEMBERS: usize = 12;

const SHAPE: &str = "`let (a, b) = sagaflow::join!(step_a(..), step_b(..))?;`";

/// Whether `path` is `sagaflow::join` (or `::sagaflow::join`).
pub(super) fn is_join(path: &syn::Path) -> bool {
    let names: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    names == ["sagaflow", "join"]
}

/// The group an expression is, if it is a `sagaflow::join!` (`None` if it is
/// not one at all); `Some(None)` if it was reported. `index` is the number of
/// steps before it; `names` are the pattern's, one per member (`None` for `_`),
/// or `None` for a bare `sagaflow::join!(..)?;`.
pub(super) fn read(
    cx: &Ctxt,
    expr: &Expr,
    index: usize,
    names: Option<Vec<Option<Ident>>>,
    pat: Option<&Pat>,
    scope: &Scope,
) -> Option<Option<Group>> {
    let (mac, question) = match expr {
        Expr::Try(t) => match &*t.expr {
            Expr::Macro(m) if is_join(&m.mac.path) => (&m.mac, t.question_token),
            Expr::Await(a) if joins(&a.base) => {
                no_await(cx, a);
                return Some(None);
            }
            _ => return None,
        },
        Expr::Await(a) if joins(&a.base) => {
            no_await(cx, a);
            return Some(None);
        }
        Expr::Macro(m) if is_join(&m.mac.path) => {
            missing_question(cx, &m.mac);
            return Some(None);
        }
        _ => return None,
    };
    let members = match mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated) {
        Ok(members) => members,
        Err(e) => {
            cx.push(e);
            return Some(None);
        }
    };
    let count = members.len();
    if !(2..=MAX_MEMBERS).contains(&count) {
        cx.error_spanned_by(
            mac,
            format!(
                "`sagaflow::join!` runs 2 to {MAX_MEMBERS} steps at once, and this one has {count}: {}",
                if count < 2 {
                    "call a single step as `step(args).await?`"
                } else {
                    "split it into several groups, one after the other"
                }
            ),
        );
        return Some(None);
    }
    let names = match names {
        None => vec![None; count],
        Some(names) if names.len() == count => names,
        Some(names) => {
            cx.error_spanned_by(
                pat,
                format!(
                    "this pattern names {} output{}, but the group runs {count} steps: name each member's output, or `_` for one that is not read, as in {SHAPE}",
                    names.len(),
                    if names.len() == 1 { "" } else { "s" },
                ),
            );
            return Some(None);
        }
    };
    let mut ok = true;
    let mut group = Group {
        members: Vec::new(),
    };
    for (k, (member, name)) in members.iter().zip(names).enumerate() {
        match read_member(cx, member, question, scope) {
            Some(step) => group.members.push(StepCall {
                named_by_user: name.is_some(),
                binding: name.unwrap_or_else(|| format_ident!("__sagaflow_output{}", index + k)),
                binding_ty: None,
                ..step
            }),
            None => ok = false,
        }
    }
    if ok && !check_siblings(cx, &group) {
        ok = false;
    }
    Some(ok.then_some(group))
}

/// The names a `let` pattern gives a group's members: `(a, _, c)`, or
/// `Ok(None)` for `_`, none of them; `Err` if it is not one of these (reported).
pub(super) fn pattern_names(cx: &Ctxt, pat: &Pat) -> Result<Option<Vec<Option<Ident>>>, ()> {
    match pat {
        Pat::Wild(_) => Ok(None),
        Pat::Tuple(t) => {
            let mut names = Vec::new();
            for elem in &t.elems {
                match elem {
                    Pat::Wild(_) => names.push(None),
                    Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                        if let Some(m) = pi.mutability {
                            cx.error_spanned_by(
                                m,
                                "saga locals are immutable (compensations read them again later): remove `mut`",
                            );
                            return Err(());
                        }
                        names.push(Some(pi.ident.clone()));
                    }
                    other => {
                        cx.error_spanned_by(
                            other,
                            format!("name each member's output, or `_` for one that is not read, as in {SHAPE}"),
                        );
                        return Err(());
                    }
                }
            }
            Ok(Some(names))
        }
        Pat::Type(pt) => {
            cx.error_spanned_by(
                &pt.ty,
                format!(
                    "a group's outputs have the members' own types: drop the type, as in {SHAPE}"
                ),
            );
            Err(())
        }
        other => {
            cx.error_spanned_by(
                other,
                format!(
                    "a group's outputs are a tuple, one name (or `_`) per member, as in {SHAPE}"
                ),
            );
            Err(())
        }
    }
}

/// Whether `expr` is a `sagaflow::join!`, with or without its `?` (and with a
/// wrong `.await`): what [`read`] reads or reports.
pub(super) fn is_group(expr: &Expr) -> bool {
    match expr {
        Expr::Try(t) => is_group(&t.expr),
        Expr::Await(a) => joins(&a.base),
        other => joins(other),
    }
}

/// Whether `expr` is a `sagaflow::join!` itself, as in `sagaflow::join!(..).await`.
fn joins(expr: &Expr) -> bool {
    matches!(expr, Expr::Macro(m) if is_join(&m.mac.path))
}

fn no_await(cx: &Ctxt, a: &syn::ExprAwait) {
    cx.error_spanned_by(
        a.await_token,
        format!("`sagaflow::join!` is not awaited: the saga runs its members and waits for all of them; write {SHAPE}"),
    );
}

/// `sagaflow::join!(..);` without `?`, as an expression or a statement.
pub(super) fn missing_question(cx: &Ctxt, mac: &syn::Macro) {
    cx.error_spanned_by(
        mac,
        format!("add `?` after `sagaflow::join!(..)`: a member's failure ends the saga and starts its compensation, as in {SHAPE}"),
    );
}

/// One member: a call to a step by its path, as `step(args)`.
fn read_member(cx: &Ctxt, member: &Expr, question: Token![?], scope: &Scope) -> Option<StepCall> {
    match member {
        Expr::Await(_) | Expr::Try(_) => {
            cx.error_spanned_by(
                member,
                format!("a member of `sagaflow::join!` is written without `.await` or `?`: the group awaits its members, and the `?` after the group takes their failures, as in {SHAPE}"),
            );
            None
        }
        Expr::Call(_) | Expr::MethodCall(_) => awaited_call(cx, member, question, scope),
        other => {
            cx.error_spanned_by(
                other,
                format!(
                    "a member of `sagaflow::join!` is a call to a `#[step]` function, as in {SHAPE}"
                ),
            );
            None
        }
    }
}

/// A member may not read another member's output: they run at once.
fn check_siblings(cx: &Ctxt, group: &Group) -> bool {
    let outputs: HashSet<String> = group
        .members
        .iter()
        .filter(|m| m.named_by_user)
        .map(|m| m.binding.to_string())
        .collect();
    let mut ok = true;
    for member in &group.members {
        let read = names_used(&member.call.args, &outputs);
        let Some(name) = read.into_iter().min() else {
            continue;
        };
        let Some(sibling) = group.members.iter().find(|m| m.binding == name) else {
            continue;
        };
        let (step, other) = (path_text(&member.path), path_text(&sibling.path));
        cx.error_spanned_by(
            &member.call,
            format!(
                "`{step}` reads `{name}`, the output of `{other}`, but both run at once in this `sagaflow::join!`: call `{step}` in a later statement, after the group"
            ),
        );
        ok = false;
    }
    ok
}

fn path_text(path: &syn::Path) -> String {
    path.to_token_stream().to_string().replace(' ', "")
}

// The pivot rules for a group's members, which need their kinds:
//     sagaflow::join!(reserve(..), pay(..))?;
// becomes, for each member,
//     const _: () = if pay is Pivot { panic!(no pivot in a group) }
//                   else if an earlier step is Pivot { if pay is not Retriable { panic!(after) } }
//                   else if pay is Retriable { panic!(before) };

/// Const checks that put a group member's pivot mistakes at the member.
/// `earlier` are the steps before the member's group.
pub(super) fn member_checks(earlier: &[&StepCall], members: &[&StepCall]) -> TokenStream {
    let mut out = TokenStream::new();
    for member in members {
        let path = &member.path;
        let span = path.span();
        let name = path_text(path);
        let kind = quote_spanned!(span=> <#path as ::sagaflow::Step>::INFO.kind());
        let after_pivot = earlier.iter().map(|s| {
            let p = &s.path;
            quote_spanned!(span=> ::core::matches!(<#p as ::sagaflow::Step>::INFO.kind(), ::sagaflow::StepKind::Pivot))
        });
        let pivot = format!(
            "`{name}` is a pivot, and a `sagaflow::join!` group may not hold the pivot: its siblings could fail after the point of no return; call `{name}` on its own, before or after the group"
        );
        let after = format!(
            "`{name}` runs in a group after the saga's pivot, so it could never be undone: make it `#[step(retriable)]`, or move the group before the pivot"
        );
        let before = format!(
            "`{name}` is retriable, and a group before the pivot is undone when a member fails, but a retriable step has no compensation: make it `compensate = <fn>` or `read_only`, or move it after the pivot"
        );
        let tcc = format!(
            "`{name}` is a try-confirm-cancel step, which a `sagaflow::join!` group cannot hold: call `{name}` on its own, before or after the group"
        );
        out.extend(quote_spanned! {span=>
            #[allow(clippy::nonminimal_bool, clippy::overly_complex_bool_expr)]
            const _: () = if ::core::matches!(#kind, ::sagaflow::StepKind::Pivot) {
                ::core::panic!(#pivot);
            } else if ::core::matches!(#kind, ::sagaflow::StepKind::Tcc) {
                ::core::panic!(#tcc);
            } else if false #(|| #after_pivot)* {
                if !::core::matches!(#kind, ::sagaflow::StepKind::Retriable) {
                    ::core::panic!(#after);
                }
            } else if ::core::matches!(#kind, ::sagaflow::StepKind::Retriable) {
                ::core::panic!(#before);
            };
        });
    }
    out
}
