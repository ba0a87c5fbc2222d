//! Expand, try-confirm-cancel steps: the cancel of a try that failed, and the
//! confirms at the saga's decision to commit.
//!
//! `#[saga]` does not know which of its steps are TCC steps (only rustc reads
//! their `INFO`), so the code is written for every step that may be one (not an
//! inline step, not a group member: neither can be) under a condition on the
//! steps' kinds that rustc folds. A saga with branches may not hold one (a
//! compile error at the step), since its confirms would need the path taken.
//!
//! ```text
//! let hold = hold_seat(airline, &trip).await?;     // tcc
//! let paid = charge(bank, &trip).await?;           // pivot
//! ```
//! becomes, in the failure arm of each step that may be one,
//! ```text
//! if hold_seat is Tcc { run.cancel_tried(hold_seat, 0, || hold_seat::__sagaflow_cancel(reuse(&airline), &trip, None)).await; }
//! ```
//! and, after each step that may be the pivot (and at the end, for a saga
//! without one), when a step before it is a TCC step,
//! ```text
//! if charge is Pivot && (hold_seat is Tcc || ..) {
//!     confirming(async {
//!         run.decide().await;                         // durable before any confirm starts
//!         let (c0, ()) = Both::new(run.confirm(hold_seat, 0, || hold_seat::__sagaflow_confirm(.., &hold)), ready(())).await;
//!         run.confirmed(hold_seat, 0, c0);
//!     }).await;
//! }
//! ```
//! The confirms run at once on the saga's task; the whole is boxed, once per
//! saga that has TCC steps, so a saga without them carries a pointer for it.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::ast::StepCall;
use super::check::reusable_args;
use super::expand::Gen;
use crate::attr::Kind;

/// Which of a TCC step's functions a closure calls.
#[derive(Clone, Copy)]
enum Call {
    /// The confirm, with a reference to the try's output.
    Confirm,
    /// The cancel of a try that returned nothing.
    CancelTried,
}

/// The closure that calls step `step`'s confirm or cancel, evaluating its
/// arguments again.
fn closure(g: &Gen<'_>, index: usize, call: Call) -> TokenStream {
    let step = g.an.steps[index];
    let span = step.call.span();
    let last = match call {
        // A reference taken before the confirms' block (see `confirm_code`).
        Call::Confirm => {
            let reference = format_ident!("__sagaflow_ref{}", index);
            quote!(#reference)
        }
        Call::CancelTried => quote!(::core::option::Option::None),
    };
    // At the call's span, as the compensation's call is: a mistake in the
    // call is then reported once, at the user's tokens.
    let function = match call {
        Call::Confirm => quote_spanned!(span=> __sagaflow_confirm),
        Call::CancelTried => quote_spanned!(span=> __sagaflow_cancel),
    };
    let known = &g.an.known;
    match &step.method {
        Some(method) => {
            let (receiver_ty, hash) = (&method.receiver_ty, method.hash);
            let mut args = step.call.args.iter().cloned();
            let receiver: syn::punctuated::Punctuated<syn::Expr, syn::Token![,]> =
                args.next().into_iter().collect();
            let rest: syn::punctuated::Punctuated<syn::Expr, syn::Token![,]> = args.collect();
            let receiver = reusable_args(&receiver, known);
            let rest = reusable_args(&rest, known);
            let tuple = if rest.is_empty() {
                quote!(())
            } else {
                quote!((#rest,))
            };
            quote_spanned! {span=>
                || <#receiver_ty as ::sagaflow::__private::StepMethod<#hash>>::#function(#receiver, #tuple, #last)
            }
        }
        None => {
            let path = &step.path;
            let args = reusable_args(&step.call.args, known);
            if args.is_empty() {
                quote_spanned!(span=> || <#path>::#function((), #last))
            } else {
                quote_spanned!(span=> || <#path>::#function((#args,), #last))
            }
        }
    }
}

/// Whether step `i` may be a TCC step: an inline step or a group's member
/// cannot (`check` and `group` say so at compile time).
fn may_be_tcc(g: &Gen<'_>, i: usize) -> bool {
    // Nor a step of a saga with branches (`check::branched_tcc_checks`).
    g.an.paths.branches.is_empty()
        && g.an.steps[i].inline.is_none()
        && !g.an.groups.iter().any(|r| r.contains(&i))
}

/// `<path as Step>::INFO.kind()` is `kind`.
fn is(step: &StepCall, kind: TokenStream) -> TokenStream {
    let path = &step.path;
    quote_spanned!(path.span()=> ::core::matches!(<#path as ::sagaflow::Step>::INFO.kind(), ::sagaflow::StepKind::#kind))
}

/// Step `step` is a TCC step: the constant that `#[step]` writes, which
/// rustc folds before it generates any code.
fn is_tcc(step: &StepCall) -> TokenStream {
    let path = &step.path;
    quote_spanned!(path.span()=> <#path as ::sagaflow::Step>::__SAGAFLOW_TCC)
}

/// In the failure arm of step `i`: a TCC step's try that failed for good,
/// timed out or panicked is cancelled with `None`, since its effect may have
/// landed all the same.
pub(super) fn cancel_tried(g: &Gen<'_>, i: usize) -> TokenStream {
    if !may_be_tcc(g, i) {
        return TokenStream::new();
    }
    let step = g.an.steps[i];
    let path = &step.path;
    let index = i as u32;
    let condition = is_tcc(step);
    let call = closure(g, i, Call::CancelTried);
    quote! {
        if #condition {
            __sagaflow_run.cancel_tried(<#path as ::sagaflow::Step>::__SAGAFLOW_MARKER, #index, #call).await;
        }
    }
}

/// After step `i`, if it is the pivot: the decision to commit, and the
/// confirms of the TCC steps before it.
pub(super) fn decision_after(g: &Gen<'_>, i: usize) -> TokenStream {
    let step = g.an.steps[i];
    if let Some(inline) = &step.inline
        && !matches!(inline.attr.kind, Some((Kind::Pivot, _)))
    {
        return TokenStream::new();
    }
    let tried: Vec<usize> = (0..i).filter(|&j| may_be_tcc(g, j)).collect();
    if tried.is_empty() {
        return TokenStream::new();
    }
    let pivot = is(step, quote!(Pivot));
    confirm_code(g, &tried, pivot)
}

/// After the last step (and the body's messages) of a saga without a pivot:
/// the decision to commit, and the confirms of its TCC steps.
pub(super) fn decision_at_end(g: &Gen<'_>) -> TokenStream {
    let tried: Vec<usize> = (0..g.an.steps.len())
        .filter(|&j| may_be_tcc(g, j))
        .collect();
    if tried.is_empty() {
        return TokenStream::new();
    }
    let pivots = g.an.steps.iter().map(|s| is(s, quote!(Pivot)));
    confirm_code(g, &tried, quote!(!(false #(|| #pivots)*)))
}

fn confirm_code(g: &Gen<'_>, tried: &[usize], decides: TokenStream) -> TokenStream {
    let steps: Vec<&StepCall> = tried.iter().map(|&j| g.an.steps[j]).collect();
    let any_tcc = steps.iter().map(|s| is_tcc(s));
    let names: Vec<_> = tried
        .iter()
        .map(|j| format_ident!("__sagaflow_confirmed{}", j))
        .collect();
    let mut joined = quote!(::core::future::ready(()));
    let mut pattern = quote!(());
    for ((&j, step), name) in tried.iter().zip(&steps).zip(&names).rev() {
        let path = &step.path;
        let index = j as u32;
        let call = closure(g, j, Call::Confirm);
        joined = quote! {
            ::sagaflow::__private::Both::new(
                __sagaflow_shared.confirm(<#path as ::sagaflow::Step>::__SAGAFLOW_MARKER, #index, #call),
                #joined,
            )
        };
        pattern = quote!((#name, #pattern));
    }
    let records = tried.iter().zip(&steps).zip(&names).map(|((&j, step), name)| {
        let path = &step.path;
        let index = j as u32;
        quote!(__sagaflow_run.confirmed(<#path as ::sagaflow::Step>::__SAGAFLOW_MARKER, #index, #name);)
    });
    // Each output is borrowed here, at its name, rather than inside the async
    // block: a mistake such as a local that moved out of it is then reported
    // at the user's tokens.
    let references = tried.iter().zip(&steps).map(|(&j, step)| {
        let output = &step.binding;
        let reference = format_ident!("__sagaflow_ref{}", j);
        quote_spanned!(output.span()=> let #reference = &#output;)
    });
    quote! {
        #[allow(clippy::nonminimal_bool, clippy::overly_complex_bool_expr)]
        let __sagaflow_decides = #decides && (false #(|| #any_tcc)*);
        if __sagaflow_decides {
            #(#references)*
            ::sagaflow::__private::confirming(async {
                __sagaflow_run.decide().await;
                let #pattern = {
                    let __sagaflow_shared = &*__sagaflow_run;
                    #joined.await
                };
                #(#records)*
            })
            .await;
        }
    }
}
