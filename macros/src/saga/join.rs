//! Expand, groups: the members of a `sagaflow::join!` polled together, and
//! undone together.
//!
//! ```text
//! let (flight, hotel) = sagaflow::join!(book_flight(airline, &trip), book_hotel(hotels, &trip))?;
//! ```
//! becomes, forward,
//! ```text
//! if DURABLE { run.group_started(&[1, 2]).await; }
//! let (m1, m2) = { let group = Group::new(); let shared = &*run;
//!                  JoinAll((shared.member(book_flight, 1, &group, &mut || ..),
//!                           shared.member(book_hotel, 2, &group, &mut || ..))).await };
//! let (flight, hotel) = match (m1, m2) {
//!     (Member::Plain(flight), Member::Plain(hotel)) => { run.plain_succeeded(2); (flight, hotel) }
//!     (m1, m2) => {
//!         let flight: Option<_> = match run.settle(1, m1) { Ok(v) => Some(v), Err((rank, f)) => { first_failure(..); None } };
//!         let hotel: Option<_> = ..;
//!         match (flight, hotel) {
//!             (Some(flight), Some(hotel)) => (flight, hotel),
//!             (flight, hotel) => break 'forward State::G0 { airline, trip, flight, hotel, failure: group_failure(first) },
//!         }
//!     }
//! };
//! ```
//! and backward, where `G0` holds the members' outputs as options and the
//! state after the group (`B3`, a later step failed) holds them all:
//! ```text
//! B3 { .., flight, hotel, failure } => G0 { .., flight: Some(flight), hotel: Some(hotel), failure },
//! G0 { .., flight, hotel, failure } => { poll undo(book_flight) if Some and undo(book_hotel) if Some
//!                                        together; record both; B1 { .., failure } }
//! ```
//! Every member is polled at every wake of the saga's task: a member that fails
//! for good wakes the task, so that a sibling in its backoff sees it at once.

use std::ops::Range;

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;
use syn::spanned::Spanned;

use super::ast::StepCall;
use super::check::{reusable_args, reusable_call};
use super::expand::Gen;

/// The name of group `k`'s backward state.
fn variant(k: usize) -> Ident {
    format_ident!("G{}", k)
}

/// The group of `g.an.groups` that `range` is, by its position.
fn group_index(g: &Gen<'_>, range: &Range<usize>) -> usize {
    g.an.groups
        .iter()
        .position(|r| r == range)
        .unwrap_or_default()
}

/// `marker` and `idx` of each member: the runtime's handles on it.
fn markers(members: &[&StepCall]) -> Vec<TokenStream> {
    members
        .iter()
        .map(|m| {
            let path = &m.path;
            quote_spanned!(path.span()=> <#path as ::sagaflow::Step>::__SAGAFLOW_MARKER)
        })
        .collect()
}

/// Polls the member futures `members` together until every one has finished,
/// then takes their outputs as a tuple.
fn poll_together(members: &[TokenStream]) -> TokenStream {
    quote! {
        ::sagaflow::__private::JoinAll((#(#members,)*)).await
    }
}

/// The group at `range` of the steps, forward: its members run together, and
/// their outputs are bound, or the saga turns back.
pub(super) fn forward(g: &Gen<'_>, range: &Range<usize>) -> TokenStream {
    let members: &[&StepCall] = &g.an.steps[range.clone()];
    let error_ty = &g.saga.error_ty;
    let indexes: Vec<u32> = range.clone().map(|i| i as u32).collect();
    let markers = markers(members);
    let bindings: Vec<&Ident> = members.iter().map(|m| &m.binding).collect();
    let calls: Vec<Ident> = (0..members.len())
        .map(|k| format_ident!("__sagaflow_call{}", k))
        .collect();
    let closures = members.iter().map(|m| {
        let span = m.call.span();
        let call = reusable_call(&m.call, &g.an.known);
        quote_spanned!(span=> || #call)
    });
    let starts: Vec<TokenStream> = markers
        .iter()
        .zip(&indexes)
        .zip(&calls)
        .map(|((marker, index), call)| {
            quote!(__sagaflow_shared.member(#marker, #index, &__sagaflow_group, &mut #call))
        })
        .collect();
    let join = poll_together(&starts);
    let outcomes: Vec<Ident> = (0..members.len())
        .map(|k| format_ident!("__sagaflow_member{}", k))
        .collect();
    let settles = members.iter().zip(&indexes).zip(&outcomes).map(|((m, index), outcome)| {
        let (path, binding) = (&m.path, &m.binding);
        let q = m.question.span;
        let convert = quote_spanned! {q=>
            let __sagaflow_failure: ::sagaflow::StepFailure<#error_ty> =
                ::sagaflow::__private::step_error_converts_into_saga_error(__sagaflow_failure);
        };
        quote! {
            let #binding = match __sagaflow_run.settle::<#path>(#index, #outcome) {
                ::core::result::Result::Ok(#binding) => ::core::option::Option::Some(#binding),
                ::core::result::Result::Err((__sagaflow_rank, __sagaflow_failure)) => {
                    #convert
                    ::sagaflow::__private::first_failure(&mut __sagaflow_first, __sagaflow_rank, __sagaflow_failure);
                    ::core::option::Option::None
                }
            };
        }
    });
    let state = variant(group_index(g, range));
    let fields = &g.an.layout.backward[range.end];
    let count = members.len() as u32;
    quote! {
        if <__SagaflowJournal as ::sagaflow::__private::Journal>::DURABLE {
            __sagaflow_run.group_started(&[#(#indexes),*]).await;
        }
        let (#(#outcomes,)*) = {
            let __sagaflow_group = ::sagaflow::__private::Group::new();
            let __sagaflow_shared = &*__sagaflow_run;
            #(let mut #calls = #closures;)*
            #join
        };
        // The default path, every member plain (one attempt, untimed, nothing
        // to report), in one test of the members; the rest settles each one.
        let (#(#bindings,)*) = match (#(#outcomes,)*) {
            (#(::sagaflow::__private::Member::Plain(#bindings),)*) => {
                __sagaflow_run.plain_succeeded(#count);
                (#(#bindings,)*)
            }
            (#(#outcomes,)*) => {
                let mut __sagaflow_first: ::core::option::Option<::sagaflow::StepFailure<#error_ty>> =
                    ::core::option::Option::None;
                #(#settles)*
                // Every member's output is there only if none failed: `first`
                // is read only to turn back.
                match (#(#bindings,)*) {
                    (#(::core::option::Option::Some(#bindings),)*) => (#(#bindings,)*),
                    (#(#bindings,)*) => {
                        let __sagaflow_failure = ::sagaflow::__private::group_failure(__sagaflow_first);
                        break '__sagaflow_forward __SagaflowState::#state { #(#fields,)* __sagaflow_failure };
                    }
                }
            }
        };
    }
}

/// The group whose last member is step `i - 1`: backward state `i` undoes it.
fn ending_before<'g>(g: &'g Gen<'_>, i: usize) -> Option<(usize, &'g Range<usize>)> {
    g.an.groups.iter().enumerate().find(|(_, r)| r.end == i)
}

/// The variants of the groups' backward states: what compensating the group
/// and the steps before it reads, with the members' outputs as options.
pub(super) fn state_variants(g: &Gen<'_>) -> Vec<TokenStream> {
    let error_ty = &g.saga.error_ty;
    g.an.groups
        .iter()
        .enumerate()
        .map(|(k, range)| {
            let v = variant(k);
            let members = &g.an.steps[range.clone()];
            let decls = g.an.layout.backward[range.end].iter().map(|f| {
                let decl = g.field_decls(std::slice::from_ref(f)).remove(0);
                match members.iter().find(|m| &m.binding == f) {
                    Some(m) => {
                        let path = &m.path;
                        quote!(#f: ::core::option::Option<<#path as ::sagaflow::Step>::Output>)
                    }
                    None => decl,
                }
            });
            quote!(#v { #(#decls,)* __sagaflow_failure: ::sagaflow::StepFailure<#error_ty> })
        })
        .collect()
}

/// The arm of backward state `i` if it undoes a group (a step after the group
/// failed): on to the group's state, every member's output present.
pub(super) fn arm_after(g: &Gen<'_>, i: usize) -> Option<TokenStream> {
    let (k, range) = ending_before(g, i)?;
    let v = &g.backward_variants[i];
    let fields = &g.an.layout.backward[i];
    let members = &g.an.steps[range.clone()];
    let state = variant(k);
    let values = fields.iter().map(|f| {
        if members.iter().any(|m| &m.binding == f) {
            quote!(#f: ::core::option::Option::Some(#f))
        } else {
            quote!(#f)
        }
    });
    Some(quote! {
        __SagaflowState::#v { #(#fields,)* __sagaflow_failure } => {
            __SagaflowState::#state { #(#values,)* __sagaflow_failure }
        }
    })
}

/// The arms of the groups' states: the members that succeeded are undone
/// together, then the steps before the group.
pub(super) fn arms(g: &Gen<'_>) -> Vec<TokenStream> {
    g.an.groups
        .iter()
        .enumerate()
        .map(|(k, range)| group_arm(g, k, range))
        .collect()
}

fn group_arm(g: &Gen<'_>, k: usize, range: &Range<usize>) -> TokenStream {
    let v = variant(k);
    let fields = &g.an.layout.backward[range.end];
    let members: &[&StepCall] = &g.an.steps[range.clone()];
    let markers = markers(members);
    let indexes: Vec<u32> = range.clone().map(|i| i as u32).collect();
    let outcomes: Vec<Ident> = (0..members.len())
        .map(|k| format_ident!("__sagaflow_undo{}", k))
        .collect();
    let undos = members
        .iter()
        .zip(&markers)
        .zip(&indexes)
        .map(|((m, marker), index)| {
            let (path, output) = (&m.path, &m.binding);
            let args = reusable_args(&m.call.args, &g.an.known);
            let span = m.call.span();
            // `#output` is a reference here (the arm matches on `&Option<T>`);
            // a method's call takes `&#output`, which derefs to it.
            let comp_call = match &m.method {
                Some(method) => super::method::compensate_call(m, method, &g.an.known),
                None if args.is_empty() => {
                    quote_spanned!(span=> || <#path>::__sagaflow_compensate(#output))
                }
                None => quote_spanned!(span=> || <#path>::__sagaflow_compensate(#args, #output)),
            };
            quote! {
                ::sagaflow::__private::Joined::new(async {
                    match &#output {
                        ::core::option::Option::Some(#output) => {
                            __sagaflow_shared.undo(#marker, #index, #comp_call).await
                        }
                        ::core::option::Option::None => ::sagaflow::__private::Undo::Skipped,
                    }
                })
            }
        })
        .collect::<Vec<_>>();
    let join = poll_together(&undos);
    // Recorded latest first, as steps in sequence are undone.
    let records = members
        .iter()
        .zip(&indexes)
        .zip(&outcomes)
        .rev()
        .map(|((m, index), outcome)| {
            let path = &m.path;
            quote!(__sagaflow_run.undone::<#path>(#index, #outcome);)
        });
    let then = super::arms::goto(g, g.an.paths.group_pred[k]);
    quote! {
        __SagaflowState::#v { #(#fields,)* __sagaflow_failure } => {
            let (#(#outcomes,)*) = {
                let __sagaflow_shared = &*__sagaflow_run;
                #join
            };
            #(#records)*
            #then
        }
    }
}
