//! Expand, the state machine: the one `DurableSaga` impl that drives the saga.
//!
//! ```text
//! struct BookTripSaga<'r> { airline: &'r Airline, trip: Trip }
//! ```
//! becomes
//! ```text
//! impl<'r, J: Journal> DurableSaga<J> for BookTripSaga<'r>
//! where J: Share<Airline>, J: Keep<Trip>, J: Keep<<book_flight as Step>::Output>, ..
//! {
//!     fn __sagaflow_encode_input(&self) { input.put("trip", &self.trip) }
//!     fn __sagaflow_rebuild(resources, stored) { BookTripSaga { airline: resources.get(), trip: input.take("trip") } }
//!     fn __sagaflow_drive_with(self, run) -> impl Future + Send { Self::__sagaflow_body(self, run) }
//! }
//! impl<'r> BookTripSaga<'r> {
//!     async fn __sagaflow_body<H, J>(self, run) where J: Keep<..> { 'forward: { .. } ; loop { backward arms } }
//! }
//! ```
//! The state machine is generated once: in memory it runs with `NoJournal`, which
//! keeps and records nothing; a durable executor runs it with a journal that
//! persists each transition, and only then do the serde bounds apply. This is the
//! one place that generates the impl.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::Type;
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;

use super::expand::Gen;
use super::{backward, forward};

pub(super) fn durable_saga_impl(g: &Gen<'_>) -> TokenStream {
    let keep_bounds = keep_bounds(g);
    let trait_impl = trait_impl(g, &keep_bounds);
    let body_impl = body_impl(g, &keep_bounds);
    quote! {
        #trait_impl

        #body_impl
    }
}

/// `J: Share<..>` / `J: Keep<..>` for everything a journal stores or lends:
/// both the trait impl and the body ask them.
fn keep_bounds(g: &Gen<'_>) -> Vec<TokenStream> {
    let saga = g.saga;
    let output_ty = &saga.output_ty;
    let journal = quote!(__SagaflowJournal);
    let mut keep_bounds = Vec::new();
    for p in &saga.params {
        let ty = &p.state_ty;
        match ty {
            Type::Reference(r) => {
                let referent = &r.elem;
                keep_bounds.push(
                    quote_spanned!(p.ty.span()=> #journal: ::sagaflow::__private::Share<#referent>),
                );
            }
            _ => {
                keep_bounds
                    .push(quote_spanned!(p.ty.span()=> #journal: ::sagaflow::__private::Keep<#ty>));
            }
        }
    }
    for step in &g.an.steps {
        let path = &step.path;
        keep_bounds.push(quote_spanned!(path.span()=> #journal: ::sagaflow::__private::Keep<<#path as ::sagaflow::Step>::Output>));
    }
    keep_bounds
        .push(quote_spanned!(output_ty.span()=> #journal: ::sagaflow::__private::Keep<#output_ty>));
    keep_bounds
}

/// How each parameter crosses a restart: an owned input is written to the
/// stored input and read back; a resource is fetched again from `Resources`.
fn input_codec(g: &Gen<'_>) -> (Vec<TokenStream>, Vec<TokenStream>) {
    let journal = quote!(__SagaflowJournal);
    let mut encode_inputs = Vec::new();
    let mut rebuild_fields = Vec::new();
    for p in &g.saga.params {
        let (name, ty) = (&p.name, &p.state_ty);
        let key = name.to_string();
        match ty {
            Type::Reference(r) => {
                let referent = &r.elem;
                rebuild_fields.push(quote! {
                    #name: <#journal as ::sagaflow::__private::Share<#referent>>::get(__sagaflow_resources)
                        .map_err(|e| ::std::string::ToString::to_string(&e))?
                });
            }
            _ => {
                encode_inputs
                    .push(quote!(__sagaflow_input.put::<#journal, _>(#key, &self.#name)?;));
                rebuild_fields.push(quote!(#name: __sagaflow_input.take::<#journal, _>(#key)?));
            }
        }
    }
    (encode_inputs, rebuild_fields)
}

/// The `DurableSaga` impl: what a durable executor needs to persist, rebuild
/// and drive the saga; its bounds apply only there.
fn trait_impl(g: &Gen<'_>, keep_bounds: &[TokenStream]) -> TokenStream {
    let saga = g.saga;
    let (type_ident, output_ty, error_ty) = (&saga.type_ident, &saga.output_ty, &saga.error_ty);
    let (lifetimes, generics) = (&g.lifetimes, &g.generics);
    let (predicates, static_bounds) = (&g.more.predicates, &g.more.static_bounds);
    let type_params = saga.type_params.iter().map(|t| {
        let mut t = t.clone();
        (t.eq_token, t.default) = (None, None);
        t
    });
    let (encode_inputs, rebuild_fields) = input_codec(g);
    let with_type = with_type(g);
    let marker_init = g.if_lifetimes(quote!(__sagaflow_marker: ::core::marker::PhantomData,));
    // What the durable impl's `Send` future holds, held by reference too:
    // asked as bounds of that impl rather than checked where it is written, so
    // that a saga over a `!Sync` resource (a `Cell` counter) or `!Send` data
    // still compiles and runs in memory; only handing it to a durable executor
    // or the test kit fails, naming the type. The `for<'_>` keeps each bound
    // from being a trivial one, which stable Rust would check at once.
    let send_bounds = send_bounds(g);
    quote! {
        // Hidden from the type's page: its where-clause over journals is the
        // runtime's business; the `Saga` impl is what a user reads.
        #[doc(hidden)]
        #[automatically_derived]
        // The `for<'__sagaflow_x>` of the `Send` bounds binds nothing on purpose.
        #[allow(unused_lifetimes, single_use_lifetimes)]
        impl <#(#lifetimes,)* #(#type_params,)* __SagaflowJournal> ::sagaflow::durable::DurableSaga<__SagaflowJournal> for #type_ident #generics
        where
            #predicates
            #static_bounds
            __SagaflowJournal: ::sagaflow::__private::Journal,
            #(#keep_bounds,)*
            #(#send_bounds,)*
        {
            type With<'__sagaflow_a> = #with_type;

            fn __sagaflow_encode_input(&self) -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                #[allow(unused_mut)]
                let mut __sagaflow_input = ::sagaflow::__private::InputMap::new();
                #(#encode_inputs)*
                __sagaflow_input.finish()
            }

            fn __sagaflow_rebuild<'__sagaflow_a>(
                __sagaflow_resources: &'__sagaflow_a ::sagaflow::durable::Resources,
                __sagaflow_stored: &[u8],
            ) -> ::core::result::Result<Self::With<'__sagaflow_a>, ::std::string::String> {
                #[allow(unused_mut)]
                let mut __sagaflow_input = ::sagaflow::__private::InputMap::parse(__sagaflow_stored)?;
                ::core::result::Result::Ok(#type_ident {
                    #(#rebuild_fields,)*
                    #marker_init
                })
            }

            // `Send`, so that a durable executor's recovery and handles can
            // be spawned: a durable saga's parts are `Send` anyway (its
            // resources are `Sync`, its data is persisted).
            fn __sagaflow_drive_with<__SagaflowHooks: ::sagaflow::Hooks + ::core::marker::Sync>(
                self,
                __sagaflow_run: &mut ::sagaflow::__private::Run<'_, __SagaflowHooks, __SagaflowJournal>,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<#output_ty, ::sagaflow::SagaError<#error_ty>>,
            > + ::core::marker::Send {
                Self::__sagaflow_body::<__SagaflowHooks, __SagaflowJournal>(self, __sagaflow_run)
            }
        }
    }
}

/// `With<'a>`: the saga rebuilt from storage borrows its resources for `'a`,
/// so every lifetime of the type is that one.
fn with_type(g: &Gen<'_>) -> TokenStream {
    let (type_ident, lifetimes) = (&g.saga.type_ident, &g.lifetimes);
    let type_names = &g.more.type_names;
    if lifetimes.is_empty() && type_names.is_empty() {
        quote!(#type_ident)
    } else {
        let same = lifetimes.iter().map(|_| quote!('__sagaflow_a));
        quote!(#type_ident<#(#same,)* #(#type_names,)*>)
    }
}

/// The state machine, generic over the journal so that it is generated once
/// for the in-memory and the durable drive.
fn body_impl(g: &Gen<'_>, keep_bounds: &[TokenStream]) -> TokenStream {
    let saga = g.saga;
    let (type_ident, output_ty, error_ty) = (&saga.type_ident, &saga.output_ty, &saga.error_ty);
    let (generics, impl_generics) = (&g.generics, &g.impl_generics);
    let predicates = &g.more.predicates;
    let state_ty = &g.more.inferred;
    let param_names = saga.params.iter().map(|p| &p.name);
    let forward_code = forward::code(g);
    let arms = backward::arms(g);
    quote! {
        // The state machine, once, for every journal; in memory its future
        // need not be `Send`.
        #[automatically_derived]
        impl #impl_generics #type_ident #generics where #predicates {
            // `unused_variables`: as in the trait impl this body used to be
            // in, where rustc does not report them.
            #[allow(clippy::redundant_closure, clippy::redundant_closure_call, clippy::needless_borrow, clippy::let_unit_value, unreachable_code, unused_braces, unused_variables)]
            async fn __sagaflow_body<__SagaflowHooks: ::sagaflow::Hooks, __SagaflowJournal>(
                self,
                __sagaflow_run: &mut ::sagaflow::__private::Run<'_, __SagaflowHooks, __SagaflowJournal>,
            ) -> ::core::result::Result<#output_ty, ::sagaflow::SagaError<#error_ty>>
            where
                __SagaflowJournal: ::sagaflow::__private::Journal,
                #(#keep_bounds,)*
            {
                // Everything forward lives inside the block, so that a failing
                // step's `break` drops what the compensations do not read
                // before they run.
                let mut __sagaflow_state: __SagaflowState #state_ty = '__sagaflow_forward: {
                    let Self { #(#param_names,)* .. } = self;
                    #(#forward_code)*
                };
                // Compensating is the failure path: its state (each
                // compensation's timer, retries and writes) lives in one box
                // per failed run, not in every saga's future, committed or not.
                #[allow(unreachable_code)]
                return ::sagaflow::__private::compensating(async move {
                    loop {
                        __sagaflow_state = match __sagaflow_state {
                            #(#arms)*
                        };
                    }
                })
                .await;
            }
        }
    }
}

/// `for<'__sagaflow_x> T: Send + Sync` (as `Shareable` or `ThreadSafe`, for
/// their messages) for every type a durable saga's future holds or lends: each
/// resource's referent, owned input, step output and error, typed local (its
/// referent, `Sync`, if it is a reference), and the saga's output and error.
fn send_bounds(g: &Gen<'_>) -> Vec<TokenStream> {
    let saga = g.saga;
    let mut bounds: Vec<TokenStream> = Vec::new();
    let mut types: Vec<TokenStream> = Vec::new();
    for p in &saga.params {
        match &p.state_ty {
            Type::Reference(r) => {
                let referent = &r.elem;
                bounds.push(quote_spanned!(p.ty.span()=> for<'__sagaflow_x> #referent: ::sagaflow::__private::Shareable));
            }
            ty => types.push(quote_spanned!(p.ty.span()=> #ty)),
        }
    }
    for step in &g.an.steps {
        let path = &step.path;
        types.push(quote_spanned!(path.span()=> <#path as ::sagaflow::Step>::Output));
        types.push(quote_spanned!(path.span()=> <#path as ::sagaflow::Step>::Error));
    }
    let (output_ty, error_ty) = (&saga.output_ty, &saga.error_ty);
    types.push(quote!(#output_ty));
    types.push(quote!(#error_ty));
    bounds.extend(
        types
            .into_iter()
            .map(|ty| quote!(for<'__sagaflow_x> #ty: ::sagaflow::__private::ThreadSafe)),
    );
    for local in g.an.locals.iter().flatten() {
        // A reference is `Send + Sync` when its referent is `Sync`: bound the
        // referent, which has no lifetime of the body's. A bound on the
        // reference itself would be chosen over the built-in rule when rustc
        // checks the future, and its lifetime would not match the body's.
        let mut ty = &local.ty;
        let mut reference = false;
        while let Type::Reference(r) = ty {
            (ty, reference) = (&r.elem, true);
        }
        let mut ty = ty.clone();
        AnyLifetime.visit_type_mut(&mut ty);
        let span = local.ty.span();
        bounds.push(if reference {
            quote_spanned!(span=> for<'__sagaflow_x> #ty: ::core::marker::Sync)
        } else {
            quote_spanned!(span=> for<'__sagaflow_x> #ty: ::sagaflow::__private::ThreadSafe)
        });
    }
    bounds
}

/// Names every elided lifetime of a type `'__sagaflow_x`, the lifetime that
/// [`send_bounds`] quantifies over.
struct AnyLifetime;

impl VisitMut for AnyLifetime {
    fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
        if r.lifetime.is_none() {
            r.lifetime = Some(syn::Lifetime::new("'__sagaflow_x", Span::call_site()));
        }
        syn::visit_mut::visit_type_reference_mut(self, r);
    }

    fn visit_lifetime_mut(&mut self, l: &mut syn::Lifetime) {
        if l.ident == "_" {
            *l = syn::Lifetime::new("'__sagaflow_x", Span::call_site());
        }
    }
}
