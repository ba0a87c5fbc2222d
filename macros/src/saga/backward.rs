//! Expand, backward: one state per compensation still to run.
//!
//! ```text
//! let a = one(r, &t).await?; let b = two(k).await?; let c = three(&b).await?;
//! ```
//! becomes
//! ```text
//! enum __SagaflowState { B1 { r, t, a, failure }, B2 { r, t, a, k, b, failure } }
//! B2 { .. } => { run.compensate(two, 1, || two::__sagaflow_compensate(reuse(&k), &b)).await;
//!                B1 { r, t, a, failure } }
//! B1 { .. } => { run.compensate(one, 0, || ..).await; return Err(run.failed(failure).await); }
//! ```
//! A backward state `B<i>` holds only what compensating steps `i-1 .. 0` read:
//! their arguments, evaluated again, and their outputs.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::check::reusable_args;
use super::expand::Gen;

/// The variants of the state enum, and the marker variant that uses its lifetimes.
pub(super) fn state_variants(g: &Gen<'_>) -> (Vec<TokenStream>, TokenStream) {
    let error_ty = &g.saga.error_ty;
    let mut variants = Vec::new();
    for (i, (v, fields)) in g
        .backward_variants
        .iter()
        .zip(&g.an.layout.backward)
        .enumerate()
        .skip(1)
    {
        if !g.an.paths.reachable[i] {
            continue;
        }
        let decls = g.field_decls(fields);
        variants.push(
            quote!(#v { #(#decls,)* __sagaflow_failure: ::sagaflow::StepFailure<#error_ty> }),
        );
    }
    variants.extend(super::join::state_variants(g));
    let marker_ty = &g.marker_ty;
    let marker_variant =
        g.if_lifetimes(quote!(__SagaflowMarker(::core::convert::Infallible, #marker_ty),));
    (variants, marker_variant)
}

/// The arms of the backward loop: each compensates one step and names the next
/// state; the last returns the saga's error.
pub(super) fn arms(g: &Gen<'_>) -> Vec<TokenStream> {
    let mut arms = Vec::new();
    let layout = &g.an.layout;
    for (i, v) in g.backward_variants.iter().enumerate().skip(1) {
        if !g.an.paths.reachable[i] {
            continue;
        }
        if let Some(arm) = super::join::arm_after(g, i) {
            arms.push(arm);
            continue;
        }
        let fields = &layout.backward[i];
        let undo = g.an.steps[i - 1];
        let path = &undo.path;
        let args = reusable_args(&undo.call.args, &g.an.known);
        let output = &undo.binding;
        let index = (i - 1) as u32;
        let span = undo.call.span();
        let comp_call = quote_spanned! {span=>
            || <#path>::__sagaflow_compensate(#args, &#output)
        };
        let comp_call = match (&undo.inline, &undo.method) {
            (Some(inline), _) => super::inline::compensate_closure(inline, output),
            (None, Some(method)) => super::method::compensate_call(undo, method, &g.an.known),
            (None, None) if args.is_empty() => {
                quote_spanned!(span=> || <#path>::__sagaflow_compensate(&#output))
            }
            (None, None) => comp_call,
        };
        let then = super::arms::goto(g, g.an.paths.step_pred[i - 1]);
        arms.push(quote! {
            __SagaflowState::#v { #(#fields,)* __sagaflow_failure } => {
                __sagaflow_run.compensate(<#path as ::sagaflow::Step>::__SAGAFLOW_MARKER, #index, #comp_call).await;
                #then
            }
        });
    }
    arms.extend(super::join::arms(g));
    let marker_arm =
        g.if_lifetimes(quote!(__SagaflowState::__SagaflowMarker(never, _) => match never {},));
    arms.push(marker_arm);
    arms
}
