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
//!     async fn __sagaflow_drive_with(self, run) { 'forward: { .. } ; loop { backward arms } }
//! }
//! ```
//! The state machine is generated once: in memory it runs with `NoJournal`, which
//! keeps and records nothing; a durable executor runs it with a journal that
//! persists each transition, and only then do the serde bounds apply. This is the
//! one place that generates the impl.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Type;
use syn::spanned::Spanned;

use super::expand::Gen;
use super::{backward, forward};

pub(super) fn durable_saga_impl(g: &Gen<'_>) -> TokenStream {
    let saga = g.saga;
    let (type_ident, output_ty, error_ty) = (&saga.type_ident, &saga.output_ty, &saga.error_ty);
    let (lifetimes, generics) = (&g.lifetimes, &g.generics);
    let param_names = saga.params.iter().map(|p| &p.name);
    let journal = quote!(__SagaflowJournal);
    let mut keep_bounds = Vec::new();
    let mut encode_inputs = Vec::new();
    let mut rebuild_fields = Vec::new();
    for p in &saga.params {
        let (name, ty) = (&p.name, &p.state_ty);
        let key = name.to_string();
        match ty {
            Type::Reference(r) => {
                let referent = &r.elem;
                keep_bounds.push(
                    quote_spanned!(p.ty.span()=> #journal: ::sagaflow::__private::Share<#referent>),
                );
                rebuild_fields.push(quote! {
                    #name: <#journal as ::sagaflow::__private::Share<#referent>>::get(__sagaflow_resources)
                        .map_err(|e| ::std::string::ToString::to_string(&e))?
                });
            }
            _ => {
                keep_bounds
                    .push(quote_spanned!(p.ty.span()=> #journal: ::sagaflow::__private::Keep<#ty>));
                encode_inputs
                    .push(quote!(__sagaflow_input.put::<#journal, _>(#key, &self.#name)?;));
                rebuild_fields.push(quote!(#name: __sagaflow_input.take::<#journal, _>(#key)?));
            }
        }
    }
    for step in &g.an.steps {
        let path = &step.path;
        keep_bounds.push(quote_spanned!(path.span()=> #journal: ::sagaflow::__private::Keep<<#path as ::sagaflow::Step>::Output>));
    }
    keep_bounds
        .push(quote_spanned!(output_ty.span()=> #journal: ::sagaflow::__private::Keep<#output_ty>));
    let with_type = if lifetimes.is_empty() {
        quote!(#type_ident)
    } else {
        let same = lifetimes.iter().map(|_| quote!('__sagaflow_a));
        quote!(#type_ident<#(#same),*>)
    };
    let marker_init = g.if_lifetimes(quote!(__sagaflow_marker: ::core::marker::PhantomData,));
    let forward_code = forward::code(g);
    let arms = backward::arms(g);
    quote! {
        #[automatically_derived]
        impl <#(#lifetimes,)* __SagaflowJournal> ::sagaflow::durable::DurableSaga<__SagaflowJournal> for #type_ident #generics
        where
            __SagaflowJournal: ::sagaflow::__private::Journal,
            #(#keep_bounds,)*
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

            #[allow(clippy::redundant_closure, clippy::redundant_closure_call, clippy::needless_borrow, clippy::let_unit_value, unreachable_code, unused_braces)]
            async fn __sagaflow_drive_with<__SagaflowHooks: ::sagaflow::Hooks>(
                self,
                __sagaflow_run: &mut ::sagaflow::__private::Run<'_, __SagaflowHooks, __SagaflowJournal>,
            ) -> ::core::result::Result<#output_ty, ::sagaflow::SagaError<#error_ty>> {
                // Everything forward lives inside the block, so that a failing
                // step's `break` drops what the compensations do not read
                // before they run.
                let mut __sagaflow_state: __SagaflowState = '__sagaflow_forward: {
                    let Self { #(#param_names,)* .. } = self;
                    #(#forward_code)*
                };
                loop {
                    __sagaflow_state = match __sagaflow_state {
                        #(#arms)*
                    };
                }
            }
        }
    }
}
