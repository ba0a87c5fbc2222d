//! The items generated for one `#[step]` method: its step type, the type's
//! `Step` impl, and the receiver's `StepMethod` impl, whose compensate, confirm
//! and cancel call the methods the step names on the same receiver.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{FnArg, ImplItemFn, ReturnType, Type};

use super::graph::step_name;
use super::{ImplHeader, method_hash};
use crate::attr::StepAttr;
use crate::compensation::Role;
use crate::step::{info_tokens, step_kind};

/// The step type, its `Step` impl and the receiver's `StepMethod` impl.
pub(super) fn step_items(
    imp: &ImplHeader,
    method: &ImplItemFn,
    attr: &StepAttr,
    compensation: Option<syn::Ident>,
    tcc: Option<(syn::Ident, syn::Ident)>,
) -> TokenStream {
    let (sig, vis) = (&method.sig, &method.vis);
    let ident = &sig.ident;
    let self_ty = &imp.self_ty;
    let name = step_name(self_ty, ident);
    let kind = step_kind(attr);
    let info = info_tokens(&name, &kind, attr);
    let tcc_const = crate::step::tcc_const(tcc.is_some());
    let limit = crate::step::limit_type(attr);
    let hash = method_hash(&ident.to_string());
    let step_ident = format_ident!(
        "__sagaflow_step_{}",
        ident.to_string().trim_start_matches("r#")
    );
    let (impl_generics, ty_generics, where_clause) = imp.generics.split_for_impl();
    let ReturnType::Type(_, ret) = &sig.output else {
        return TokenStream::new();
    };
    let ret_span = ret.span();
    let output_ty = quote_spanned!(ret_span=> <#ret as ::sagaflow::__private::StepResult>::Ok);
    let error_ty = quote_spanned!(ret_span=> <#ret as ::sagaflow::__private::StepResult>::Err);
    let lifetime = syn::Lifetime::new("'__sagaflow_a", Span::call_site());
    let (arg_tys, arg_names) = method_args(sig, &lifetime);
    let call = Call {
        sig,
        hash,
        arg_names: &arg_names,
        ret_span,
        output_ty: &output_ty,
    };
    let bodies = call.bodies(compensation, tcc.as_ref());
    let step_method = step_method_impl(imp, &step_ident, &call, &lifetime, &arg_tys, bodies);
    quote! {
        #[doc(hidden)]
        #vis struct #step_ident #impl_generics (::core::marker::PhantomData<fn(&#self_ty)>) #where_clause;

        #[automatically_derived]
        impl #impl_generics ::sagaflow::Step for #step_ident #ty_generics #where_clause {
            type Output = #output_ty;
            type Error = #error_ty;
            const INFO: ::sagaflow::StepInfo = #info;
            type __SagaflowLimit = #limit;
            #tcc_const
        }

        #step_method
    }
}

/// The types of the method's parameters after the receiver, their lifetimes
/// named `lifetime` (see [`NameLifetimes`]), and the names the generated code
/// binds them to.
fn method_args(sig: &syn::Signature, lifetime: &syn::Lifetime) -> (Vec<Type>, Vec<syn::Ident>) {
    let method_lifetimes: Vec<String> = sig
        .generics
        .lifetimes()
        .map(|l| l.lifetime.ident.to_string())
        .collect();
    let mut arg_tys = Vec::new();
    let mut arg_names = Vec::new();
    for (i, input) in sig.inputs.iter().filter_map(typed).enumerate() {
        let mut ty = (*input.ty).clone();
        NameLifetimes {
            to: lifetime,
            method: &method_lifetimes,
        }
        .visit_type_mut(&mut ty);
        arg_tys.push(ty);
        arg_names.push(format_ident!("__sagaflow_arg{}", i));
    }
    (arg_tys, arg_names)
}

/// What the bodies of the `StepMethod` functions call a method of the same
/// `impl` with: the step method's parameters, and its output.
struct Call<'a> {
    sig: &'a syn::Signature,
    hash: u64,
    arg_names: &'a [syn::Ident],
    ret_span: Span,
    output_ty: &'a TokenStream,
}

/// The bodies of `__sagaflow_compensate`, `__sagaflow_confirm` and
/// `__sagaflow_cancel`, in that order.
struct Bodies {
    compensate: TokenStream,
    confirm: TokenStream,
    cancel: TokenStream,
}

impl Call<'_> {
    fn bodies(
        &self,
        compensation: Option<syn::Ident>,
        tcc: Option<&(syn::Ident, syn::Ident)>,
    ) -> Bodies {
        let (sig, arg_names, ret_span, output_ty) =
            (self.sig, self.arg_names, self.ret_span, self.output_ty);
        let hash = self.hash;
        let receiver = || Some((quote!(&Self), format_ident!("__sagaflow_receiver")));
        let nothing = quote! {
            let _ = (__sagaflow_receiver, #(#arg_names,)* __sagaflow_output);
            ::sagaflow::__private::no_compensation().await
        };
        let (confirm, cancel) = match tcc {
            Some((confirm, cancel)) => {
                let confirm: syn::Path = syn::parse_quote_spanned!(confirm.span()=> Self::#confirm);
                let cancel: syn::Path = syn::parse_quote_spanned!(cancel.span()=> Self::#cancel);
                (
                    crate::compensation::call_as(
                        Role::Confirm,
                        &confirm,
                        sig,
                        receiver(),
                        arg_names,
                        quote_spanned!(ret_span=> &#output_ty),
                    ),
                    crate::compensation::call_as(
                        Role::Cancel,
                        &cancel,
                        sig,
                        receiver(),
                        arg_names,
                        quote_spanned!(ret_span=> ::core::option::Option<&#output_ty>),
                    ),
                )
            }
            None => (nothing.clone(), nothing.clone()),
        };
        // A TCC step's compensation is its cancel, given the output it tried.
        let compensate = match compensation {
            _ if tcc.is_some() => quote! {
                <Self as ::sagaflow::__private::StepMethod<#hash>>::__sagaflow_cancel(
                    __sagaflow_receiver,
                    (#(#arg_names,)*),
                    ::core::option::Option::Some(__sagaflow_output),
                ).await
            },
            Some(comp) => {
                let path: syn::Path = syn::parse_quote_spanned!(comp.span()=> Self::#comp);
                crate::compensation::call_with(
                    &path,
                    sig,
                    Some((quote!(&Self), format_ident!("__sagaflow_receiver"))),
                    arg_names,
                    quote_spanned!(ret_span=> &#output_ty),
                )
            }
            None => nothing,
        };
        Bodies {
            compensate,
            confirm,
            cancel,
        }
    }
}

/// The receiver's `StepMethod` impl: the step type, the arguments' types, and
/// the functions that run `bodies` on the receiver.
fn step_method_impl(
    imp: &ImplHeader,
    step_ident: &syn::Ident,
    call: &Call<'_>,
    lifetime: &syn::Lifetime,
    arg_tys: &[Type],
    bodies: Bodies,
) -> TokenStream {
    let self_ty = &imp.self_ty;
    let (impl_generics, ty_generics, where_clause) = imp.generics.split_for_impl();
    let (hash, arg_names, output_ty) = (call.hash, call.arg_names, call.output_ty);
    let Bodies {
        compensate: compensate_body,
        confirm: confirm_body,
        cancel: cancel_body,
    } = bodies;
    quote! {
        #[automatically_derived]
        impl #impl_generics ::sagaflow::__private::StepMethod<#hash> for #self_ty #where_clause {
            type Step = #step_ident #ty_generics;
            type Args<#lifetime> = (#(#arg_tys,)*) where Self: #lifetime;
            fn __sagaflow_compensate<#lifetime>(
                &#lifetime self,
                (#(#arg_names,)*): Self::Args<#lifetime>,
                __sagaflow_output: &#lifetime #output_ty,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<(), ::sagaflow::__private::CompensationError>,
            > + #lifetime {
                let __sagaflow_receiver = self;
                async move { #compensate_body }
            }
            fn __sagaflow_confirm<#lifetime>(
                &#lifetime self,
                (#(#arg_names,)*): Self::Args<#lifetime>,
                __sagaflow_output: &#lifetime #output_ty,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<(), ::sagaflow::__private::CompensationError>,
            > + #lifetime {
                let __sagaflow_receiver = self;
                async move { #confirm_body }
            }
            fn __sagaflow_cancel<#lifetime>(
                &#lifetime self,
                (#(#arg_names,)*): Self::Args<#lifetime>,
                __sagaflow_output: ::core::option::Option<&#lifetime #output_ty>,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<(), ::sagaflow::__private::CompensationError>,
            > + #lifetime {
                let __sagaflow_receiver = self;
                async move { #cancel_body }
            }
        }
    }
}

fn typed(input: &FnArg) -> Option<&syn::PatType> {
    match input {
        FnArg::Typed(pt) => Some(pt),
        FnArg::Receiver(_) => None,
    }
}

/// Names `to` every lifetime of a parameter's type that the method leaves out or
/// declares itself, so that the arguments fit `StepMethod::Args<'a>`.
struct NameLifetimes<'l> {
    to: &'l syn::Lifetime,
    method: &'l [String],
}

impl VisitMut for NameLifetimes<'_> {
    fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
        if r.lifetime.is_none() {
            r.lifetime = Some(self.to.clone());
        }
        syn::visit_mut::visit_type_reference_mut(self, r);
    }

    fn visit_lifetime_mut(&mut self, l: &mut syn::Lifetime) {
        if l.ident == "_" || self.method.contains(&l.ident.to_string()) {
            *l = self.to.clone();
        }
    }
}
