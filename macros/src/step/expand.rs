//! Expand: the step type, its `Step` impl, its compensation call and its graph callback.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType};

use super::info::{info_tokens, info_value};
use crate::attr::{Kind, StepAttr};
use crate::compensation::Role;
use crate::graph_doc;
use sagaflow_graph::StepInfo;

pub(super) fn generate(func: &ItemFn, attr: &StepAttr, salt: u64) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let ident = &sig.ident;
    let name = ident.to_string();
    let kind = step_kind(attr);
    let info = info_tokens(&name, &kind, attr);

    let ReturnType::Type(_, ret) = &sig.output else {
        return quote!(#func);
    };
    let ret_span = ret.span();
    let output_ty = quote_spanned!(ret_span=> <#ret as ::sagaflow::__private::StepResult>::Ok);
    let error_ty = quote_spanned!(ret_span=> <#ret as ::sagaflow::__private::StepResult>::Err);

    let lifetimes: Vec<_> = sig.generics.lifetimes().collect();
    let where_clause = &sig.generics.where_clause;
    let mut params = Vec::new();
    let mut arg_names = Vec::new();
    for (i, input) in sig.inputs.iter().enumerate() {
        if let FnArg::Typed(pat) = input {
            let arg = format_ident!("__sagaflow_arg{}", i);
            let ty = &pat.ty;
            params.push(quote!(#arg: #ty));
            arg_names.push(arg);
        }
    }
    let compensate_body = compensate_body(&kind, sig, &arg_names);
    let tcc_fns = tcc_fns(&kind, vis, sig, &arg_names);
    let doc = step_doc(&kind, attr);
    let extra = tcc_const(matches!(kind, Kind::Tcc { .. }));
    let limit = limit_type(attr);
    let step_type = hidden_step_type(vis, ident, &output_ty, &error_ty, &info, &limit, extra);
    let callback = graph_callback(vis, ident, &info_value(&name, &kind, attr), salt);
    quote! {
        #callback

        #(#attrs)*
        #[doc = ""]
        #[doc = #doc]
        #vis #sig #block

        #step_type

        #[automatically_derived]
        #[allow(dead_code, clippy::needless_lifetimes, clippy::ptr_arg, clippy::trivially_copy_pass_by_ref, unused_qualifications)]
        impl #ident {
            #[doc(hidden)]
            #vis async fn __sagaflow_compensate<#(#lifetimes),*>(
                #(#params,)*
                __sagaflow_output: &<Self as ::sagaflow::Step>::Output,
            ) -> ::core::result::Result<(), ::sagaflow::__private::CompensationError>
            #where_clause
            {
                #compensate_body
            }

            #tcc_fns
        }
    }
}

/// `__sagaflow_compensate`'s body: every kind has one, so that the saga can
/// call it for any step; only a compensatable or TCC step's does anything.
fn compensate_body(kind: &Kind, sig: &syn::Signature, arg_names: &[syn::Ident]) -> TokenStream {
    let nothing = quote! {
        let _ = (#(#arg_names,)* __sagaflow_output);
        ::sagaflow::__private::no_compensation().await
    };
    match kind {
        Kind::Compensate(path) => crate::compensation::call(path, sig, arg_names),
        Kind::Tcc { .. } => quote! {
            Self::__sagaflow_cancel((#(#arg_names,)*), ::core::option::Option::Some(__sagaflow_output)).await
        },
        _ => nothing,
    }
}

/// A TCC step's confirm and cancel take the arguments as one tuple; every
/// other step's take any tuple and do nothing, so that a mistake in a step
/// call that `#[saga]` repeats for them is reported once, at the call.
fn tcc_fns(
    kind: &Kind,
    vis: &syn::Visibility,
    sig: &syn::Signature,
    arg_names: &[syn::Ident],
) -> TokenStream {
    let Kind::Tcc { confirm, cancel } = kind else {
        return not_tcc_fns(vis);
    };
    let lifetimes: Vec<_> = sig.generics.lifetimes().collect();
    let where_clause = &sig.generics.where_clause;
    let arg_tys: Vec<&syn::Type> = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(pt) => Some(&*pt.ty),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let output = quote_spanned!(confirm.span()=> &<Self as ::sagaflow::Step>::Output);
    let confirm_body =
        crate::compensation::call_as(Role::Confirm, confirm, sig, None, arg_names, output);
    let output =
        quote_spanned!(cancel.span()=> ::core::option::Option<&<Self as ::sagaflow::Step>::Output>);
    let cancel_body =
        crate::compensation::call_as(Role::Cancel, cancel, sig, None, arg_names, output);
    quote! {
        #[doc(hidden)]
        #vis async fn __sagaflow_confirm<#(#lifetimes),*>(
            (#(#arg_names,)*): (#(#arg_tys,)*),
            __sagaflow_output: &<Self as ::sagaflow::Step>::Output,
        ) -> ::core::result::Result<(), ::sagaflow::__private::CompensationError>
        #where_clause
        {
            #confirm_body
        }

        #[doc(hidden)]
        #vis async fn __sagaflow_cancel<#(#lifetimes),*>(
            (#(#arg_names,)*): (#(#arg_tys,)*),
            __sagaflow_output: ::core::option::Option<&<Self as ::sagaflow::Step>::Output>,
        ) -> ::core::result::Result<(), ::sagaflow::__private::CompensationError>
        #where_clause
        {
            #cancel_body
        }
    }
}

/// The confirm and the cancel of a step that is not a TCC step: never called
/// (the runtime reads the kind first), and taking any arguments.
pub(crate) fn not_tcc_fns(vis: &syn::Visibility) -> TokenStream {
    quote! {
        #[doc(hidden)]
        #vis async fn __sagaflow_confirm<__SagaflowArgs, __SagaflowOutput: ?::core::marker::Sized>(
            _: __SagaflowArgs,
            _: &__SagaflowOutput,
        ) -> ::core::result::Result<(), ::sagaflow::__private::CompensationError> {
            ::sagaflow::__private::no_compensation().await
        }

        #[doc(hidden)]
        #vis async fn __sagaflow_cancel<__SagaflowArgs>(
            _: __SagaflowArgs,
            _: ::core::option::Option<&<Self as ::sagaflow::Step>::Output>,
        ) -> ::core::result::Result<(), ::sagaflow::__private::CompensationError> {
            ::sagaflow::__private::no_compensation().await
        }
    }
}

/// The step's kind; after an attribute error it may be missing, and `read_only`
/// keeps the expansion quiet so that only the real error is reported.
pub(crate) fn step_kind(attr: &StepAttr) -> Kind {
    attr.kind
        .as_ref()
        .map(|(k, _)| k.clone())
        .unwrap_or(Kind::ReadOnly)
}

/// `Step::__SAGAFLOW_TCC` for a TCC step (the trait's default says `false`).
pub(crate) fn tcc_const(tcc: bool) -> TokenStream {
    if tcc {
        quote!(
            const __SAGAFLOW_TCC: bool = true;
        )
    } else {
        TokenStream::new()
    }
}

/// `Step::__SagaflowLimit`: a timer for the first attempt only if the step has
/// a `timeout`, so that the future of a step without one has no room for it.
pub(crate) fn limit_type(attr: &StepAttr) -> TokenStream {
    if attr.timeout.is_some() {
        quote!(::sagaflow::__private::Timed)
    } else {
        quote!(::sagaflow::__private::Untimed)
    }
}

/// The hidden type under a step's name that implements `Step`: `#[step]`'s, and
/// the stand-in `#[saga]` defines under a saga's name, whose `extra` items say so.
pub(crate) fn hidden_step_type(
    vis: &syn::Visibility,
    ident: &syn::Ident,
    output_ty: &TokenStream,
    error_ty: &TokenStream,
    info: &TokenStream,
    limit: &TokenStream,
    extra: TokenStream,
) -> TokenStream {
    quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code, missing_docs, unreachable_pub)]
        #vis struct #ident {}

        #[automatically_derived]
        impl ::sagaflow::Step for #ident {
            type Output = #output_ty;
            type Error = #error_ty;
            const INFO: ::sagaflow::StepInfo = #info;
            type __SagaflowLimit = #limit;
            #extra
        }
    }
}

/// The macros of the standard library's prelude: a step's callback under the
/// same name would make every use of that macro in the module ambiguous.
pub(super) const STD_MACROS: &[&str] = &[
    "assert",
    "assert_eq",
    "assert_ne",
    "cfg",
    "column",
    "compile_error",
    "concat",
    "dbg",
    "debug_assert",
    "debug_assert_eq",
    "debug_assert_ne",
    "env",
    "eprint",
    "eprintln",
    "file",
    "format",
    "format_args",
    "include",
    "include_bytes",
    "include_str",
    "line",
    "matches",
    "module_path",
    "option_env",
    "panic",
    "print",
    "println",
    "stringify",
    "thread_local",
    "todo",
    "unimplemented",
    "unreachable",
    "vec",
    "write",
    "writeln",
];

/// The per-step `macro_rules!` callback that carries the declaration to `#[saga]`'s
/// rustdoc picture (see `graph_doc`). Exported under a name unique in the crate
/// (the step's name and its call site), and re-exported under the step's own name
/// in the macro namespace, so that it travels with the function through `use`.
fn graph_callback(
    vis: &syn::Visibility,
    ident: &syn::Ident,
    info: &StepInfo,
    salt: u64,
) -> TokenStream {
    let unique = format_ident!(
        "__sagaflow_step_{}_{:016x}",
        ident.to_string().trim_start_matches("r#"),
        salt
    );
    let rules = graph_rules(&TokenStream::new(), info);
    quote! {
        #[doc(hidden)]
        #[macro_export]
        #[allow(non_local_definitions)]
        macro_rules! #unique {
            #rules
        }
        #[doc(hidden)]
        #[allow(unused_imports)]
        #vis use #unique as #ident;
    }
}

/// The two rules of a graph callback for the step `info`, chosen by
/// `selector` (nothing for a free step, the method's name for a step method):
/// each entry of the chain is `{ {macro path} {its selector} }`.
pub(crate) fn graph_rules(selector: &TokenStream, info: &StepInfo) -> TokenStream {
    let encoded = graph_doc::encode(info);
    quote! {
        (@sagaflow_graph #selector [ { { $($next:tt)* } { $($selector:tt)* } } $($rest:tt)* ] [ $($acc:tt)* ]) => {
            $($next)* ! ( @sagaflow_graph $($selector)* [ $($rest)* ] [ $($acc)* #encoded ] )
        };
        (@sagaflow_graph #selector [] [ $($acc:tt)* ]) => {
            ::sagaflow::__private::saga_graph_doc! ( $($acc)* #encoded )
        };
    }
}

pub(crate) fn step_doc(kind: &Kind, attr: &StepAttr) -> String {
    let mut doc = String::from("# Saga step\n\n");
    match kind {
        Kind::Compensate(path) => {
            let path = quote!(#path).to_string().replace(' ', "");
            doc.push_str(&format!(
                "Compensatable: if a later step of its saga fails, this step is undone by [`{path}`]."
            ));
        }
        Kind::ReadOnly => doc.push_str("Read-only: it changes nothing, so nothing is undone."),
        Kind::Pivot => doc.push_str(
            "Pivot: the saga's point of no return. If it fails, the steps before it are undone; once it succeeds, the saga only goes forward.",
        ),
        Kind::Retriable => {
            doc.push_str("Retriable: never undone; retried until it succeeds.")
        }
        Kind::Tcc { confirm, cancel } => {
            let text = |path: &syn::Path| quote!(#path).to_string().replace(' ', "");
            doc.push_str(&format!(
                "Try-confirm-cancel: this step is the try. Once its saga decides to commit, [`{}`] makes it final (retried until it succeeds); if the saga rolls back instead, [`{}`] releases it, also after a try that failed, timed out or panicked.",
                text(confirm),
                text(cancel)
            ));
        }
    }
    if let Some((retry, _)) = &attr.retry
        && let Some(max) = retry.max
    {
        doc.push_str(&format!(
            " Retried up to {max} times after the first attempt."
        ));
    }
    if let Some(timeout) = attr.timeout {
        doc.push_str(&format!(
            " Each attempt is limited to {}.",
            humantime::format_duration(timeout)
        ));
    }
    if let Some((timeout, _)) = attr.compensate_timeout {
        doc.push_str(&format!(
            " Each attempt of its compensation is limited to {}.",
            humantime::format_duration(timeout)
        ));
    }
    doc
}
