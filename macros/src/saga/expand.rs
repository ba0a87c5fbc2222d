//! Expand: the saga's items, from its analysed tree.
//!
//! ```text
//! async fn book_trip(airline: &Airline, trip: Trip) -> Result<Itinerary, E> { .. }
//! ```
//! becomes
//! ```text
//! async fn book_trip(airline: &Airline, trip: Trip) -> Result<Itinerary, SagaError<E>> {
//!     run_in_memory(BookTripSaga::new(airline, trip)).await
//! }
//! struct BookTripSaga<'r> { airline: &'r Airline, trip: Trip }
//! impl BookTripSaga<'_> { fn new(..) -> Self; fn graph() -> SagaGraph }
//! const _: () = {
//!     enum __SagaflowState { B1 { .. }, .. }            // backward.rs
//!     impl Saga for BookTripSaga<'_> { .. }              // drives the durable impl with NoJournal
//!     impl<J> DurableSaga<J> for BookTripSaga<'_> { .. } // durable.rs, forward.rs, backward.rs
//! };
//! const _: () = { const __sagaflow_pivot_order_of_..: () = ..; };  // check.rs
//! ```

use std::collections::HashMap;

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, Type};

use super::analyse::{Analysis, analyse};
use super::ast::Saga;
use super::{backward, check, doc, durable};

/// What every part of the expansion reads.
pub(super) struct Gen<'a> {
    pub(super) saga: &'a Saga,
    pub(super) an: Analysis<'a>,
    /// The generated type's lifetimes: the one for elided lifetimes first, if any.
    pub(super) lifetimes: Vec<syn::Lifetime>,
    /// `<'__sagaflow_r, 'a, P>`, or nothing: the type's arguments.
    pub(super) generics: TokenStream,
    /// `<'__sagaflow_r, 'a, P: Payments>`, or nothing: for declarations and `impl`s.
    pub(super) impl_generics: TokenStream,
    /// The rest of the generics: the user's where clause, the inferred form.
    pub(super) more: super::generic::Generics,
    /// A field type that uses every lifetime.
    pub(super) marker_ty: TokenStream,
    /// The names of the backward states, `B0 ..`; `B0` is never built.
    pub(super) backward_variants: Vec<Ident>,
    /// Field types of every name the state can hold.
    types: HashMap<String, TokenStream>,
}

impl<'a> Gen<'a> {
    fn new(saga: &'a Saga) -> Self {
        let an = analyse(saga);
        let mut lifetimes: Vec<syn::Lifetime> = Vec::new();
        if saga.needs_elided {
            lifetimes.push(saga.elided.clone());
        }
        lifetimes.extend(saga.lifetimes.iter().cloned());
        let more = super::generic::generics(
            &lifetimes,
            &saga.type_params,
            saga.sig.generics.where_clause.as_ref(),
        );
        let generics = more.args.clone();
        let impl_generics = more.params.clone();
        let type_names = &more.type_names;
        let marker_ty = quote!(::core::marker::PhantomData<fn() -> (#(&#lifetimes (),)* #(::core::marker::PhantomData<#type_names>,)*)>);
        let mut types: HashMap<String, TokenStream> = Default::default();
        for p in &saga.params {
            let ty = &p.state_ty;
            types.insert(p.name.to_string(), quote!(#ty));
        }
        for l in an.locals.iter().flatten() {
            let ty = &l.ty;
            types.insert(l.name.to_string(), quote!(#ty));
        }
        for s in &an.steps {
            let path = &s.path;
            types.insert(
                s.binding.to_string(),
                quote_spanned!(path.span()=> <#path as ::sagaflow::Step>::Output),
            );
        }
        for (k, b) in an.branches.iter().enumerate() {
            if let (Some(x), Some(ty)) = (&b.binding, &b.binding_ty) {
                types.insert(x.to_string(), ty.clone());
            }
            let arms_ty = super::arms::enum_ident(k);
            types.insert(
                super::paths::arms_ident(k).to_string(),
                quote!(#arms_ty #generics),
            );
        }
        // Which of them are built: `an.paths.reachable` (state `n`, every
        // step undone, only for a saga that sends: its messages may fail
        // after its last step).
        let backward_variants = (0..=an.steps.len())
            .map(|i| format_ident!("B{}", i))
            .collect();
        Gen {
            saga,
            an,
            lifetimes,
            generics,
            impl_generics,
            more,
            marker_ty,
            backward_variants,
            types,
        }
    }

    /// `name: Type` for each of `fields`.
    pub(super) fn field_decls(&self, fields: &[Ident]) -> Vec<TokenStream> {
        fields
            .iter()
            .map(|f| {
                let ty = self.types.get(&f.to_string()).cloned().unwrap_or_default();
                quote!(#f: #ty)
            })
            .collect()
    }

    /// `marker` if the generated type has lifetimes or type parameters, else nothing.
    pub(super) fn if_lifetimes(&self, marker: TokenStream) -> TokenStream {
        if self.lifetimes.is_empty() && self.more.type_names.is_empty() {
            quote!()
        } else {
            marker
        }
    }
}

pub(super) fn generate(saga: &Saga) -> TokenStream {
    let g = Gen::new(saga);
    let saga_name = saga.sig.ident.to_string();
    let (impl_generics, predicates) = (&g.impl_generics, &g.more.predicates);
    let (variants, marker_variant) = backward::state_variants(&g);
    let checks = Checks::new(&g);
    let branches = super::arms::branch_literals(&g);
    let graph_doc = doc::graph_doc_call(&g.an.steps, &g.an.groups, &branches, &saga_name);
    let durable_impl = durable::durable_saga_impl(&g);
    let arms_enums = super::arms::enums(&g);
    let saga_impl = saga_trait_impl(&g);
    let not_a_step = stand_in_step(saga);
    let inline_steps = super::inline::items(&g);
    let method_checks = super::method::checks(&g.an.steps, !saga.type_params.is_empty());
    let in_memory_fn = in_memory_fn(saga, &graph_doc);
    let saga_type = saga_type(&g, &checks, &graph_doc);
    let Checks {
        pivot: pivot_checks,
        step: step_checks,
        ..
    } = checks;

    quote! {
        #method_checks

        #in_memory_fn

        #not_a_step

        #inline_steps

        #saga_type

        const _: () = {
            #step_checks

            #[allow(non_camel_case_types, clippy::large_enum_variant, clippy::enum_variant_names)]
            enum __SagaflowState #impl_generics where #predicates {
                #(#variants,)*
                #marker_variant
            }

            #arms_enums

            #saga_impl

            #durable_impl
        };

        #pivot_checks
    }
}

/// The const checks of the steps and their pivot order: beside the saga, or,
/// for a generic saga, in its impl, where the type parameters are in scope.
struct Checks {
    pivot: TokenStream,
    step: TokenStream,
    assoc: TokenStream,
    read: TokenStream,
}

impl Checks {
    fn new(g: &Gen<'_>) -> Self {
        let mut pivot = check::pivot_checks(&g.an.steps, &g.an.groups);
        pivot.extend(check::arm_pivot_checks(
            &g.an.steps,
            g.an.paths.branches.iter().flat_map(|b| b.arm_steps.clone()),
        ));
        if !g.an.paths.branches.is_empty() {
            pivot.extend(check::branched_tcc_checks(&g.an.steps));
        }
        let mut step = check::step_checks(&g.an.steps);
        let (mut assoc, mut read) = (TokenStream::new(), TokenStream::new());
        if !g.saga.type_params.is_empty() {
            let all = quote!(#step #pivot);
            (assoc, read) = super::generic::checks_in_impl(all);
            (pivot, step) = (TokenStream::new(), TokenStream::new());
        }
        Checks {
            pivot,
            step,
            assoc,
            read,
        }
    }
}

/// The user's function, now running the saga in memory.
fn in_memory_fn(saga: &Saga, graph_doc: &TokenStream) -> TokenStream {
    let Saga {
        attrs,
        vis,
        sig,
        type_ident,
        params,
        output_ty,
        error_ty,
        ..
    } = saga;
    let fn_ident = &sig.ident;
    let param_names = params.iter().map(|p| &p.name);
    let fn_params = params.iter().map(|p| {
        let (name, ty) = (&p.name, &p.ty);
        quote!(#name: #ty)
    });
    let fn_generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;
    let fn_doc = doc::saga_doc(saga);
    let asyncness = &sig.asyncness;
    quote! {
        #(#attrs)*
        #[doc = ""]
        #[doc = #fn_doc]
        #[cfg_attr(doc, doc = #graph_doc)]
        #vis #asyncness fn #fn_ident #fn_generics (#(#fn_params),*)
            -> ::core::result::Result<#output_ty, ::sagaflow::SagaError<#error_ty>>
        #where_clause
        {
            ::sagaflow::__private::run_in_memory(#type_ident::new(#(#param_names),*)).await
        }
    }
}

/// The saga as a value: its inputs, `new` and `graph`.
fn saga_type(g: &Gen<'_>, checks: &Checks, graph_doc: &TokenStream) -> TokenStream {
    let Saga {
        vis,
        type_ident,
        params,
        ..
    } = g.saga;
    let (generics, impl_generics) = (&g.generics, &g.impl_generics);
    let predicates = &g.more.predicates;
    let param_names: Vec<&Ident> = params.iter().map(|p| &p.name).collect();
    let param_state_tys: Vec<&Type> = params.iter().map(|p| &p.state_ty).collect();
    let marker_ty = &g.marker_ty;
    let marker_field = g.if_lifetimes(quote!(__sagaflow_marker: #marker_ty,));
    let marker_init = g.if_lifetimes(quote!(__sagaflow_marker: ::core::marker::PhantomData,));
    let (read_checks, assoc_checks) = (&checks.read, &checks.assoc);
    let type_doc = doc::type_doc(g.saga);
    quote! {
        #[doc = #type_doc]
        #[cfg_attr(doc, doc = #graph_doc)]
        #vis struct #type_ident #impl_generics where #predicates {
            #(#param_names: #param_state_tys,)*
            #marker_field
        }

        #[automatically_derived]
        #[allow(clippy::too_many_arguments, clippy::new_without_default)]
        impl #impl_generics #type_ident #generics where #predicates {
            /// The saga with its inputs, ready to run.
            #vis fn new(#(#param_names: #param_state_tys),*) -> Self {
                #read_checks
                Self { #(#param_names,)* #marker_init }
            }

            #assoc_checks

            /// The saga's steps, their kinds and compensations; draws itself with
            /// `to_mermaid()`, `to_dot()` and `to_svg()`.
            #vis fn graph() -> ::sagaflow::SagaGraph {
                <Self as ::sagaflow::Saga>::graph()
            }
        }
    }
}

/// `impl Saga`: what the runtime reads of the saga, and its in-memory drive,
/// which is the durable state machine with `NoJournal`.
fn saga_trait_impl(g: &Gen<'_>) -> TokenStream {
    let Saga {
        sig,
        type_ident,
        output_ty,
        error_ty,
        ..
    } = g.saga;
    let (generics, impl_generics) = (&g.generics, &g.impl_generics);
    let predicates = &g.more.predicates;
    let saga_name = sig.ident.to_string();
    // A member's entry names its group: the report and the graph read it there.
    let step_infos = g.an.steps.iter().enumerate().map(|(i, s)| {
        let path = &s.path;
        match g.an.groups.iter().position(|r| r.contains(&i)) {
            Some(k) => {
                let k = k as u32;
                quote!(<#path as ::sagaflow::Step>::INFO.in_group(#k))
            }
            None => quote!(<#path as ::sagaflow::Step>::INFO),
        }
    });
    let groups = (!g.an.groups.is_empty()).then(|| {
        let ranges = g.an.groups.iter().map(|r| {
            let (start, end) = (r.start as u32, r.end as u32);
            quote!(#start..#end)
        });
        quote!(const GROUPS: &'static [::core::ops::Range<u32>] = &[#(#ranges),*];)
    });
    let branches = super::arms::branch_infos(g);
    quote! {
        #[automatically_derived]
        impl #impl_generics ::sagaflow::Saga for #type_ident #generics where #predicates {
            type Output = #output_ty;
            type Error = #error_ty;
            const NAME: &'static str = #saga_name;
            const STEPS: &'static [::sagaflow::StepInfo] =
                &[#(#step_infos),*];
            #groups
            #branches

            fn __sagaflow_drive<__SagaflowHooks: ::sagaflow::Hooks>(
                self,
                __sagaflow_run: &mut ::sagaflow::__private::Run<'_, __SagaflowHooks>,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<#output_ty, ::sagaflow::SagaError<#error_ty>>,
            > {
                Self::__sagaflow_body::<__SagaflowHooks, ::sagaflow::__private::NoJournal>(self, __sagaflow_run)
            }
        }
    }
}

// A saga awaited as a step by another saga:
//     #[saga] async fn fly(airline: &Airline, trip: Trip) -> Result<u64, E> { .. }
// also becomes, under the function's name in the type namespace, a stand-in
//     struct fly {}
//     impl Step for fly { type Output = u64; type Error = ASagaIsNotAStep<E>; .. }
//     impl fly { async fn __sagaflow_compensate(&Airline, Trip, &u64) { unreachable } }
// whose `__SAGAFLOW_SAGA` is true, so that `let price = fly(..).await?;` in
// another saga reads "`fly` is a `#[saga]`, not a `#[step]`" at the call
// (`check::step_checks` asks it of every step), instead of rustc's "expected
// type, found function". Without the `Step` impl, every use of the path in the
// generated code would report a missing impl, a dozen errors for one mistake;
// with it, two remain (the error types do not fit), which name the stand-in's
// error type `ASagaIsNotAStep`. Like `#[step]`'s type, it takes the function's
// name in the type namespace: a type or module of that name beside the saga
// clashes with it.
//
// A plain `async fn` awaited as a step (`log_order(&order).await?;`) still gets
// rustc's "expected type, found function `log_order`": `#[saga]` sees only the
// call's path, and the generated code must name the step in the type namespace,
// where a function that no macro has seen has nothing. What was tried, and why
// each failed:
// - A fallback type under each step's name, brought in by a glob import next to
//   the saga, so that a real step's type (an item or an explicit import) would
//   shadow it: a step brought in by the user's own glob (`use steps::*;`) then
//   becomes ambiguous with the fallback (E0659), and a step declared in an outer
//   scope of a saga in a block is shadowed by it. Valid code would break.
// - The same fallback in a `macro_rules!` (the steps' graph callbacks are in the
//   macro namespace): a macro-expanded `macro_rules!` may not shadow a macro
//   from outside the expansion, so every real step would be an error.
// - Telling a step from a plain function by its value (autoref specialisation, a
//   trait over the function item): a function item's type cannot be named, so
//   `#[step]` cannot implement a trait for it, and both are `Fn`s alike.
// - Wrapping each step's returned future in a type that says "step": it would
//   change every step's signature and its direct callers, and add a layer to
//   every step's future, for one diagnostic.
// Only a prelude name has lower priority than everything a user can import, and
// a proc macro cannot add one.

/// The stand-in step type under the saga function's name (see above).
fn stand_in_step(saga: &Saga) -> TokenStream {
    let (vis, sig, ident) = (&saga.vis, &saga.sig, &saga.sig.ident);
    let (output_ty, error_ty) = (&saga.output_ty, &saga.error_ty);
    let name = ident.to_string();
    let params: Vec<&syn::Type> = saga.params.iter().map(|p| &p.ty).collect();
    let generics = &sig.generics;
    let not_tcc = crate::step::not_tcc_fns(vis);
    let step_type = crate::step::hidden_step_type(
        vis,
        ident,
        &quote!(#output_ty),
        &quote!(::sagaflow::__private::ASagaIsNotAStep<#error_ty>),
        &quote!(::sagaflow::StepInfo::new(#name, ::sagaflow::StepKind::ReadOnly)),
        &quote!(::sagaflow::__private::Untimed),
        quote!(
            const __SAGAFLOW_SAGA: bool = true;
        ),
    );
    quote! {
        #step_type

        #[automatically_derived]
        #[allow(dead_code, clippy::needless_lifetimes, clippy::ptr_arg, clippy::trivially_copy_pass_by_ref, clippy::too_many_arguments)]
        impl #ident {
            #[doc(hidden)]
            #vis async fn __sagaflow_compensate #generics (
                #(_: #params,)*
                _: &#output_ty,
            ) -> ::core::result::Result<(), ::sagaflow::__private::CompensationError> {
                ::core::unreachable!("a saga awaited as a step does not compile")
            }
            #not_tcc
        }
    }
}
