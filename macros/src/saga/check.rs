//! Check: the rules about the body as a whole, at expansion time, and the checks
//! left to rustc on the generated code, spanned at the user's tokens.

use std::collections::HashSet;
use std::ops::Range;

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, ItemFn, Token};

use super::ast::{Node, StepCall};
use super::body::Body;
use crate::ctxt::Ctxt;

/// The final `Ok(..)`'s value, if the body was read without mistakes, has a step
/// and ends with `Ok(..)`; reports the missing one else.
pub(super) fn complete(cx: &Ctxt, func: &ItemFn, body: &mut Body) -> Option<Expr> {
    let has_step = has_step(&body.nodes);
    if !has_step && body.ok {
        cx.error_spanned_by(
            &func.sig.ident,
            "a saga needs at least one step: call a `#[step]` function as `let x = step(args).await?;`",
        );
        body.ok = false;
    }
    let Some(final_expr) = body.final_expr.take() else {
        if body.ok {
            let span = func
                .block
                .stmts
                .last()
                .map(|s| s.span())
                .unwrap_or_else(|| func.block.brace_token.span.close());
            cx.error_at(
                span,
                "a saga body ends with `Ok(value)`, the value the saga returns when every step succeeded",
            );
        }
        return None;
    };
    body.ok.then_some(final_expr)
}

/// Whether `nodes` call a step, in an arm too.
fn has_step(nodes: &[Node]) -> bool {
    nodes.iter().any(|n| match n {
        Node::Step(_) | Node::Group(_) => true,
        Node::Local(_) => false,
        Node::Branch(b) => b.arms.iter().any(|a| has_step(&a.nodes)),
    })
}

// A step's arguments, re-evaluable:
//     charge(airline, trip, order.customer, &order)
// becomes
//     charge(reuse(&airline), reuse(&trip), reuse(&order.customer), &order)
// so that moving an owned value (or a field of one) into a step says why it cannot
// be moved, at the argument, instead of rustc's "expected a closure that
// implements `FnMut`" inside the runtime.

/// A step argument that is a saga name, or a field of one, is read through
/// `reuse`, which copies it and so accepts only `Copy` values.
pub(super) fn reusable_args(
    args: &syn::punctuated::Punctuated<Expr, Token![,]>,
    known: &HashSet<String>,
) -> TokenStream {
    let args = args.iter().map(|arg| {
        if names_a_saga_value(arg, known) {
            let span = arg.span();
            quote_spanned!(span=> ::sagaflow::__private::reuse(&#arg))
        } else {
            quote!(#arg)
        }
    });
    quote!(#(#args),*)
}

/// Whether `expr` is a saga name (`trip`) or a field path rooted at one
/// (`order.customer`, `flight.price`), which a call would move out of the saga.
fn names_a_saga_value(expr: &Expr, known: &HashSet<String>) -> bool {
    match expr {
        Expr::Path(p) => {
            p.qself.is_none()
                && p.path
                    .get_ident()
                    .is_some_and(|i| known.contains(&i.to_string()))
        }
        Expr::Field(f) => names_a_saga_value(&f.base, known),
        _ => false,
    }
}

/// The whole call, with [`reusable_args`].
pub(super) fn reusable_call(call: &syn::ExprCall, known: &HashSet<String>) -> TokenStream {
    let func = &call.func;
    let args = reusable_args(&call.args, known);
    // The user's own parentheses, so that rustc's help for a wrong argument count
    // edits the call as written.
    let mut tokens = func.to_token_stream();
    call.paren_token
        .surround(&mut tokens, |inner| inner.extend(args));
    tokens
}

// The pivot rules, which need the steps' kinds (known only to rustc):
//     let a = reserve(..).await?;  let b = pay(..).await?;
// becomes, for every step after the first,
//     const _: () = if <reserve>::INFO.kind() is Pivot {
//         if pay is Pivot { panic!(second) }  if pay is not Retriable { panic!(after) } };
// An unnamed const, so that rustc's "evaluation of `_` failed here" shows no
// generated name.

/// Const checks that put a saga awaited as a step (see `expand::stand_in_step`)
/// at its call.
pub(super) fn step_checks(steps: &[&StepCall]) -> TokenStream {
    let mut out = TokenStream::new();
    for step in steps {
        let path = &step.path;
        let name = step.shown();
        let message = format!(
            "`{name}` is a `#[saga]`, not a `#[step]`: a saga cannot await another saga; call the steps of `{name}` in this saga instead, or move the shared work into a `#[step]` that both sagas call"
        );
        out.extend(quote_spanned! {path.span()=>
            const _: () = if <#path as ::sagaflow::Step>::__SAGAFLOW_SAGA {
                ::core::panic!(#message)
            };
        });
    }
    out
}

/// Const checks that put "after the pivot" mistakes at the offending call.
/// A group's members have checks of their own (`group::member_checks`).
pub(super) fn pivot_checks(steps: &[&StepCall], groups: &[Range<usize>]) -> TokenStream {
    let mut out = TokenStream::new();
    for range in groups {
        out.extend(super::group::member_checks(
            &steps[..range.start],
            &steps[range.clone()],
        ));
    }
    for (i, step) in steps.iter().enumerate().skip(1) {
        if groups.iter().any(|r| r.contains(&i)) {
            continue;
        }
        let path = &step.path;
        let span = path.span();
        let name = step.shown();
        let earlier = steps[..i].iter().map(|s| {
            let p = &s.path;
            quote_spanned!(span=> ::core::matches!(<#p as ::sagaflow::Step>::INFO.kind(), ::sagaflow::StepKind::Pivot))
        });
        let second = format!(
            "`{name}` is a second pivot, but a saga has at most one point of no return: make one of them `compensate = <fn>` or `retriable`"
        );
        let retriable = if step.inline.is_some() {
            "mark it `retriable`"
        } else {
            "make it `#[step(retriable)]`"
        };
        let after = format!(
            "`{name}` runs after the saga's pivot, so it could never be undone: {retriable}, or move it before the pivot"
        );
        let tcc_after = format!(
            "`{name}` is a try-confirm-cancel step after the saga's pivot: the saga decides to commit at the pivot, where every try is confirmed, so a later try could never be cancelled; move `{name}` before the pivot"
        );
        out.extend(quote_spanned! {span=>
            #[allow(clippy::nonminimal_bool)]
            const _: () = if #(#earlier)||* {
                if ::core::matches!(<#path as ::sagaflow::Step>::INFO.kind(), ::sagaflow::StepKind::Pivot) {
                    ::core::panic!(#second);
                }
                if ::core::matches!(<#path as ::sagaflow::Step>::INFO.kind(), ::sagaflow::StepKind::Tcc) {
                    ::core::panic!(#tcc_after);
                }
                if !::core::matches!(<#path as ::sagaflow::Step>::INFO.kind(), ::sagaflow::StepKind::Retriable) {
                    ::core::panic!(#after);
                }
            };
        });
    }
    out
}

/// Const checks, in a saga with `if`/`match` branches, that no step is a TCC
/// step: its confirms at the decision would have to know the path taken,
/// which is not built yet (the error says so at the step's call).
pub(super) fn branched_tcc_checks(steps: &[&StepCall]) -> TokenStream {
    let mut out = TokenStream::new();
    for step in steps.iter().filter(|s| s.inline.is_none()) {
        let path = &step.path;
        let span = step.call.span();
        let name = step.shown();
        let message = format!(
            "`{name}` is a try-confirm-cancel step in a saga with `if`/`match` branches, which is not supported yet: use TCC steps in a saga without branches, or make `{name}` `compensate = <fn>`"
        );
        out.extend(quote_spanned! {span=>
            const _: () = if ::core::matches!(<#path as ::sagaflow::Step>::INFO.kind(), ::sagaflow::StepKind::Tcc) {
                ::core::panic!(#message);
            };
        });
    }
    out
}

/// Const checks that put a pivot inside a branch's arm at its call: the point
/// of no return must lie on every path, so the pivot stands outside branches.
pub(super) fn arm_pivot_checks(
    steps: &[&StepCall],
    arms: impl Iterator<Item = Range<usize>>,
) -> TokenStream {
    let mut out = TokenStream::new();
    let mut inside: Vec<usize> = arms.flatten().collect();
    inside.sort_unstable();
    inside.dedup();
    for i in inside {
        let step = steps[i];
        let path = &step.path;
        let name = step.shown();
        let message = format!(
            "`{name}` is a pivot inside a branch's arm, but the point of no return must lie on every path the saga can take: move the pivot before or after the `if`/`match`, or make `{name}` `compensate = <fn>` or `retriable`"
        );
        out.extend(quote_spanned! {path.span()=>
            const _: () = if ::core::matches!(<#path as ::sagaflow::Step>::INFO.kind(), ::sagaflow::StepKind::Pivot) {
                ::core::panic!(#message)
            };
        });
    }
    out
}
