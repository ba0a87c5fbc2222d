//! Expand, branches: the arm chosen once, run, and undone on the way back.
//!
//! ```text
//! let shipment = if order.express { ship_express(..).await? } else { quote(..).await?; ship_ground(..).await? };
//! ```
//! becomes, forward,
//! ```text
//! let arm: u32 = run.arm(0, BRANCHES[0].arms(), || if order.express { 0 } else { 1 });   // recorded, or replayed
//! let (shipment, arms0) = match arm {
//!     0 => { let shipment = match run.step(ship_express, 1, ..) { .. }; (shipment, Arms0::A0 {}) }
//!     _ => { let quote = ..; let shipment = ..; (shipment, Arms0::A1 { quote }) }
//! };
//! ```
//! and, on the way back from a step after the branch,
//! ```text
//! match arms0 { Arms0::A0 {} => B2 { shipment, .. }, Arms0::A1 { quote } => B4 { quote, shipment, .. } }
//! ```
//! The last arm takes `_`: an arm number the journal holds that this code has
//! no arm for is refused by `Run::arm` before the match reads it.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;
use syn::spanned::Spanned;

use super::ast::{Branch, Choice, Node};
use super::expand::Gen;
use super::paths::Cont;

/// The name of branch `k`'s arms enum.
pub(super) fn enum_ident(k: usize) -> Ident {
    format_ident!("__SagaflowArms{}", k)
}

fn variant(a: usize) -> Ident {
    format_ident!("A{}", a)
}

/// The state `cont` names, built from the names in scope, as an expression
/// (which returns the saga's error if nothing is left to undo).
pub(super) fn goto(g: &Gen<'_>, cont: Cont) -> TokenStream {
    match cont {
        Cont::Fail => {
            quote!(
                return ::core::result::Result::Err(__sagaflow_run.failed(__sagaflow_failure).await)
            )
        }
        Cont::State(i) => {
            let v = &g.backward_variants[i];
            let fields = &g.an.layout.backward[i];
            quote!(__SagaflowState::#v { #(#fields,)* __sagaflow_failure })
        }
        Cont::Dispatch(k) => {
            let bp = &g.an.paths.branches[k];
            let (ty, ident) = (enum_ident(k), &bp.ident);
            let arms = bp
                .last
                .iter()
                .zip(&bp.data)
                .enumerate()
                .map(|(a, (last, data))| {
                    let v = variant(a);
                    let then = goto(g, *last);
                    quote!(#ty::#v { #(#data,)* } => { #then })
                });
            let marker = g.if_lifetimes(quote!(#ty::__SagaflowMarker(never, _) => match never {},));
            quote!(match #ident { #(#arms)* #marker })
        }
    }
}

/// A forward failure turning back to `cont`.
pub(super) fn turn_back(g: &Gen<'_>, cont: Cont) -> TokenStream {
    match cont {
        Cont::Fail => {
            quote!(return ::core::result::Result::Err(__sagaflow_run.failed(__sagaflow_failure).await);)
        }
        cont => {
            let state = goto(g, cont);
            quote!(break '__sagaflow_forward #state;)
        }
    }
}

/// The arms enums, one per branch: a variant per arm, with what undoing it
/// reads of the names bound inside it.
pub(super) fn enums(g: &Gen<'_>) -> TokenStream {
    let (impl_generics, predicates) = (&g.impl_generics, &g.more.predicates);
    let marker_ty = &g.marker_ty;
    let marker = g.if_lifetimes(quote!(__SagaflowMarker(::core::convert::Infallible, #marker_ty),));
    let enums = g.an.paths.branches.iter().enumerate().map(|(k, bp)| {
        let ty = enum_ident(k);
        let variants = bp.data.iter().enumerate().map(|(a, data)| {
            let v = variant(a);
            let decls = g.field_decls(data);
            quote!(#v { #(#decls,)* })
        });
        quote! {
            // `dead_code`: an arm's values are read only if a later step fails.
            #[allow(non_camel_case_types, dead_code, clippy::large_enum_variant, clippy::enum_variant_names)]
            enum #ty #impl_generics where #predicates {
                #(#variants,)*
                #marker
            }
        }
    });
    quote!(#(#enums)*)
}

/// The forward code of `nodes` in a saga with branches: `steps` and
/// `branches` count what came before, depth first, as the analysis did.
pub(super) fn forward(
    g: &Gen<'_>,
    nodes: &[Node],
    steps: &mut usize,
    branches: &mut usize,
) -> TokenStream {
    let mut out = TokenStream::new();
    for node in nodes {
        match node {
            Node::Step(step) => {
                out.extend(super::forward::step_code(g, *steps, step));
                *steps += 1;
            }
            Node::Local(l) => {
                let (name, ty, expr) = (&l.name, &l.ty, &l.expr);
                out.extend(quote!(let #name: #ty = #expr;));
            }
            Node::Group(group) => {
                let range = *steps..*steps + group.members.len();
                out.extend(super::join::forward(g, &range));
                *steps = range.end;
            }
            Node::Branch(b) => out.extend(branch(g, b, steps, branches)),
        }
    }
    out
}

fn branch(g: &Gen<'_>, b: &Branch, steps: &mut usize, branches: &mut usize) -> TokenStream {
    let k = *branches;
    *branches += 1;
    let bp = &g.an.paths.branches[k];
    let (ty, ident) = (enum_ident(k), &bp.ident);
    let count = b.arms.len();
    let arms = b.arms.iter().enumerate().map(|(a, arm)| {
        let code = forward(g, &arm.nodes, steps, branches);
        let v = variant(a);
        let data = &bp.data[a];
        // The value checked against the branch's type at the arm's own
        // tokens: its last step call, or its plain value.
        let value = match (&b.binding, &arm.value, &b.binding_ty) {
            (Some(x), Some(value), Some(t)) => {
                quote_spanned!(value.span()=> let #x: #t = #value;)
            }
            (Some(x), None, Some(t)) => match arm.nodes.last() {
                Some(Node::Step(s)) if &s.binding == x && s.binding_ty.is_none() => {
                    let at = Ident::new(&x.to_string(), s.call.span());
                    quote_spanned!(s.call.span()=> let #at: #t = #at;)
                }
                _ => TokenStream::new(),
            },
            _ => TokenStream::new(),
        };
        let result = match &b.binding {
            Some(x) => quote!((#x, #ty::#v { #(#data,)* })),
            None => quote!(#ty::#v { #(#data,)* }),
        };
        let pat = if a + 1 == count {
            quote!(_)
        } else {
            let a = Literal::u32_suffixed(a as u32);
            quote!(#a)
        };
        quote!(#pat => { #code #value #result })
    });
    // Evaluated here, so that each arm's code (and its counters) comes first.
    let arms: Vec<TokenStream> = arms.collect();
    // The arms value's type written out: an arm whose variant holds nothing
    // would leave a generic saga's type parameters to infer.
    let inferred = &g.more.inferred;
    let bound = match &b.binding {
        Some(x) => quote!((#x, #ident): (_, #ty #inferred)),
        None => quote!(#ident: #ty #inferred),
    };
    let choose = choose(b);
    let (index, position) = (
        Literal::u32_suffixed(k as u32),
        Literal::usize_unsuffixed(k),
    );
    quote! {
        let __sagaflow_arm: u32 = __sagaflow_run.arm(
            #index,
            <Self as ::sagaflow::Saga>::BRANCHES[#position].arms(),
            || #choose,
        );
        let #bound = match __sagaflow_arm { #(#arms)* };
    }
}

/// The condition as the number of the arm it chooses.
fn choose(b: &Branch) -> TokenStream {
    match &b.choice {
        Choice::If(conds) => {
            let mut e = {
                let last = Literal::u32_suffixed(conds.len() as u32);
                quote!(#last)
            };
            for (i, c) in conds.iter().enumerate().rev() {
                let i = Literal::u32_suffixed(i as u32);
                e = quote!(if #c { #i } else { #e });
            }
            e
        }
        Choice::Match { scrutinee, arms } => {
            let arms = arms.iter().enumerate().map(|(i, (pat, guard))| {
                let i = Literal::u32_suffixed(i as u32);
                let guard = guard.as_ref().map(|g| quote!(if #g));
                quote!(#pat #guard => #i,)
            });
            quote!(match #scrutinee { #(#arms)* })
        }
    }
}

/// `const BRANCHES`, for a saga with branches: each one's label and its arms'
/// step positions, which the graph draws and the fingerprint covers.
pub(super) fn branch_infos(g: &Gen<'_>) -> Option<TokenStream> {
    if g.an.branches.is_empty() {
        return None;
    }
    let infos =
        g.an.branches
            .iter()
            .zip(&g.an.paths.branches)
            .map(|(b, bp)| {
                let label = &b.label;
                let arms = b.arms.iter().zip(&bp.arm_steps).map(|(arm, steps)| {
                    let (label, start, end) = (&arm.label, steps.start as u32, steps.end as u32);
                    quote!(::sagaflow::ArmInfo::new(#label, #start, #end))
                });
                quote!(::sagaflow::BranchInfo::new(#label, &[#(#arms),*]))
            });
    Some(quote!(const BRANCHES: &'static [::sagaflow::BranchInfo] = &[#(#infos),*];))
}

/// Each branch as the rustdoc picture's callback carries it (see
/// `graph_doc::decode_branch`): `?` then the label and each arm's label and
/// steps, separated by control characters that source text cannot hold.
pub(super) fn branch_literals(g: &Gen<'_>) -> Vec<String> {
    g.an.branches
        .iter()
        .zip(&g.an.paths.branches)
        .map(|(b, bp)| {
            let mut out = format!("?{}", b.label);
            for (arm, steps) in b.arms.iter().zip(&bp.arm_steps) {
                out.push_str(&format!(
                    "\u{1f}{}\u{1e}{}..{}",
                    arm.label, steps.start, steps.end
                ));
            }
            out
        })
        .collect()
}
