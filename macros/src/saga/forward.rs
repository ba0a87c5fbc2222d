//! Expand, forward: the straight-line code that runs the steps in order.
//!
//! ```text
//! let flight = book_flight(airline, &trip).await?;
//! let total: u64 = flight.price + 10;
//! let payment = charge(airline, total).await?;
//! Ok(Itinerary { flight, payment })
//! ```
//! becomes
//! ```text
//! let flight = match run.step(book_flight, 0, &mut || book_flight(reuse(&airline), &trip)).await {
//!     Ok(flight) => flight,
//!     Err(failure) => return Err(run.failed(failure).await),
//! };
//! let (total,) = { let total: u64 = flight.price + 10; (total,) };
//! let payment = match run.step(charge, 1, &mut || charge(reuse(&airline), reuse(&total))).await {
//!     Ok(payment) => payment,
//!     Err(failure) => break 'forward State::B1 { airline, trip, flight, failure },
//! };
//! release(airline); release(trip); release(total);
//! let output: Itinerary = Itinerary { flight, payment };
//! run.committed(..); return Ok(output);
//! ```
//! Each value stays where it was first put, and rustc's own state machine keeps,
//! at each step's resume point, the values that are live there. An explicit
//! forward state, rebuilt at every step, made each step move every value the saga
//! held (and read them back wide right after writing them narrow: a
//! store-forwarding stall per step).

use std::collections::HashSet;

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Ident;
use syn::spanned::Spanned;

use super::analyse::names_used;
use super::ast::{Local, StepCall};
use super::check::reusable_call;
use super::expand::Gen;

/// The forward code, inside the `'__sagaflow_forward` block: slot 0's code, then
/// each step with the slot after it, then the end.
pub(super) fn code(g: &Gen<'_>) -> Vec<TokenStream> {
    if !g.an.branches.is_empty() {
        let mut code = vec![sending_allowed(g)];
        code.push(super::arms::forward(g, &g.saga.body, &mut 0, &mut 0));
        code.push(end_code(g));
        return code;
    }
    let inputs: Vec<Ident> = g.saga.params.iter().map(|p| p.name.clone()).collect();
    let mut forward_code = vec![sending_allowed(g), slot_code(g, 0, &inputs)];
    let mut i = 0;
    while i < g.an.steps.len() {
        if let Some(range) = g.an.groups.iter().find(|r| r.start == i) {
            let mut alive = g.an.layout.forward[i].clone();
            alive.extend(g.an.steps[range.clone()].iter().map(|m| m.binding.clone()));
            forward_code.push(super::join::forward(g, range));
            forward_code.push(slot_code(g, range.end, &alive));
            i = range.end;
        } else {
            let step = g.an.steps[i];
            let mut alive = g.an.layout.forward[i].clone();
            alive.push(step.binding.clone());
            forward_code.push(step_code(g, i, step));
            forward_code.push(slot_code(g, i + 1, &alive));
            i += 1;
        }
    }
    forward_code.push(end_code(g));
    forward_code
}

/// The end: the messages, the output, the commit.
fn end_code(g: &Gen<'_>) -> TokenStream {
    let sends = messages_code(g);
    let decision = super::tcc::decision_at_end(g);
    let output_ty = &g.saga.output_ty;
    let final_expr = &g.saga.final_expr;
    quote! {
        #sends
        #decision
        let __sagaflow_output: #output_ty = #final_expr;
        // In memory the end is a plain call: an await here, never taken,
        // still costs the state machine a resume point per saga.
        if <__SagaflowJournal as ::sagaflow::__private::Journal>::DURABLE {
            __sagaflow_run.committed(&__sagaflow_output).await;
        } else {
            __sagaflow_run.committed_in_memory();
        }
        return ::core::result::Result::Ok(__sagaflow_output);
    }
}

/// A saga whose body sends, in memory on a runner without a sink, fails
/// before its first step: its messages would have nowhere to go.
fn sending_allowed(g: &Gen<'_>) -> TokenStream {
    if g.saga.sends.is_empty() {
        return TokenStream::new();
    }
    quote! {
        // Nested, not a `let` chain: the user's crate may be on an older edition.
        if !<__SagaflowJournal as ::sagaflow::__private::Journal>::DURABLE {
            if let ::core::result::Result::Err(__sagaflow_failure) = __sagaflow_run.sending_allowed() {
                return ::core::result::Result::Err(__sagaflow_run.failed(__sagaflow_failure).await);
            }
        }
    }
}

/// The body's messages, handed to the run once every step has succeeded; if
/// they cannot be sent, every step is compensated.
fn messages_code(g: &Gen<'_>) -> TokenStream {
    if g.saga.sends.is_empty() {
        return TokenStream::new();
    }
    let sends = super::send::sends_code(&g.saga.sends);
    let on_failure = super::arms::turn_back(g, g.an.paths.end);
    quote! {
        #sends
        if let ::core::result::Result::Err(__sagaflow_failure) = __sagaflow_run.messages_ready().await {
            #on_failure
        }
    }
}

/// Step `i` and its failure.
pub(super) fn step_code(g: &Gen<'_>, i: usize, step: &StepCall) -> TokenStream {
    let StepCall {
        binding,
        binding_ty,
        named_by_user: _,
        path,
        call,
        question,
        method: _,
        inline,
    } = step;
    let error_ty = &g.saga.error_ty;
    let index = i as u32;
    let typed = binding_ty
        .as_ref()
        .map(|ty| quote!(let #binding: #ty = #binding;));
    let call_span = call.span();
    let closure = match inline {
        Some(inline) => super::inline::forward_closure(inline),
        None => {
            let call = reusable_call(call, &g.an.known);
            quote_spanned!(call_span=> || #call)
        }
    };
    let q = question.span;
    let convert = quote_spanned! {q=>
        let __sagaflow_failure: ::sagaflow::StepFailure<#error_ty> =
            ::sagaflow::__private::step_error_converts_into_saga_error(__sagaflow_failure);
    };
    let on_failure = super::arms::turn_back(g, g.an.paths.step_pred[i]);
    let cancel_tried = super::tcc::cancel_tried(g, i);
    let decision = super::tcc::decision_after(g, i);
    // The closure goes by `&mut`: it stays where it was built, in the saga's
    // future, instead of being copied into the step's future. That copy, read
    // back wide right after it was written narrow, cost about 3 ns per step.
    // The failure is taken out of the outcome before anything awaits: a
    // temporary of a `match`'s scrutinee (the closure, the outcome) lives to
    // the end of the `match`, so awaits in its failure arm would keep both in
    // the saga's future, in a place of their own for every step (about 480
    // bytes in a ten-step saga). The failure arm diverges.
    quote! {
        let #binding = '__sagaflow_step: {
            let __sagaflow_failure = match __sagaflow_run.step(<#path as ::sagaflow::Step>::__SAGAFLOW_MARKER, #index, &mut #closure).await {
                ::core::result::Result::Ok(#binding) => break '__sagaflow_step #binding,
                ::core::result::Result::Err(__sagaflow_failure) => __sagaflow_failure,
            };
            #convert
            #cancel_tried
            #on_failure
        };
        #typed
        #decision
    }
}

// The code between two steps (`slot` 0 is before the first): its locals, then
// the end of every value that the forward layout stops holding there.
//     (alive: trip, flight; kept after: flight)  let code: u32 = trip.code;
// becomes
//     let (code,) = { let trip = trip; let code: u32 = trip.code; (code,) };
// `alive` are the names held on the way in. A local's expression may move a
// name that dies here, so such a name is first moved into a block of its own,
// with the slot's locals: the block's end drops what is left of them. The
// locals that are still needed leave the block, once, as a tuple; the others,
// even when they were borrowed, are gone before the next step, so the saga's
// future holds them across no step. A name that dies here and that no local
// reads is released, which drops it.
fn slot_code(g: &Gen<'_>, slot: usize, alive: &[Ident]) -> TokenStream {
    let keep = &g.an.layout.forward[slot];
    let declared: &[&Local] = &g.an.locals[slot];
    let mut read_by_locals: HashSet<String> = HashSet::new();
    for l in declared {
        read_by_locals.extend(names_used(&l.expr, &g.an.known));
    }
    let dying: Vec<&Ident> = alive.iter().filter(|n| !keep.contains(n)).collect();
    let moved_in: Vec<&Ident> = dying
        .iter()
        .copied()
        .filter(|n| read_by_locals.contains(&n.to_string()))
        .collect();
    // Latest first, as a scope drops its locals.
    let released: Vec<&Ident> = dying
        .iter()
        .rev()
        .copied()
        .filter(|n| !read_by_locals.contains(&n.to_string()))
        .collect();
    let release = quote!(#(::sagaflow::__private::release(#released);)*);
    if declared.is_empty() {
        return release;
    }
    let kept: Vec<&Ident> = declared
        .iter()
        .map(|l| &l.name)
        .filter(|n| keep.contains(n))
        .collect();
    let lets = declared
        .iter()
        .map(|Local { name, ty, expr }| quote!(let #name: #ty = #expr;));
    let moved_in = quote!(#(#[allow(unused_variables)] let #moved_in = #moved_in;)*);
    if kept.is_empty() {
        return quote! {
            {
                #moved_in
                #(#lets)*
            }
            #release
        };
    }
    quote! {
        let (#(#kept,)*) = {
            #moved_in
            #(#lets)*
            (#(#kept,)*)
        };
        #release
    }
}
