//! Expand: the step type, its `Step` impl, its compensation call and its graph callback.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType};

use crate::attr::{Kind, Retry, StepAttr};
use crate::compensation::Role;
use crate::graph_doc;
use sagaflow_graph::{RetryPolicy, StepInfo, StepKind};

fn retry_tokens(retry: &Retry, base: TokenStream) -> TokenStream {
    let mut tokens = base;
    if let Some(max) = retry.max {
        tokens = quote!(::sagaflow::RetryPolicy::retries(#max));
    }
    if let Some(backoff) = retry.backoff {
        let nanos = duration_nanos(backoff);
        tokens = quote!(#tokens.with_backoff(::sagaflow::__private::Duration::from_nanos(#nanos)));
    }
    if let Some(max_backoff) = retry.max_backoff {
        let nanos = duration_nanos(max_backoff);
        tokens =
            quote!(#tokens.with_max_backoff(::sagaflow::__private::Duration::from_nanos(#nanos)));
    }
    tokens
}

fn duration_nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

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
    let nothing = quote! {
        let _ = (#(#arg_names,)* __sagaflow_output);
        ::sagaflow::__private::no_compensation().await
    };
    let compensate_body = match &kind {
        Kind::Compensate(path) => crate::compensation::call(path, sig, &arg_names),
        Kind::Tcc { .. } => quote! {
            Self::__sagaflow_cancel((#(#arg_names,)*), ::core::option::Option::Some(__sagaflow_output)).await
        },
        _ => nothing,
    };
    // A TCC step's confirm and cancel take the arguments as one tuple; every
    // other step's take any tuple and do nothing, so that a mistake in a step
    // call that `#[saga]` repeats for them is reported once, at the call.
    let arg_tys: Vec<&syn::Type> = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(pt) => Some(&*pt.ty),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let tcc_fns = match &kind {
        Kind::Tcc { confirm, cancel } => {
            let output = quote_spanned!(confirm.span()=> &<Self as ::sagaflow::Step>::Output);
            let confirm_body =
                crate::compensation::call_as(Role::Confirm, confirm, sig, None, &arg_names, output);
            let output = quote_spanned!(cancel.span()=> ::core::option::Option<&<Self as ::sagaflow::Step>::Output>);
            let cancel_body =
                crate::compensation::call_as(Role::Cancel, cancel, sig, None, &arg_names, output);
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
        _ => not_tcc_fns(vis),
    };
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

/// The `StepInfo` expression of a step named `name` (its identity in the
/// journal, the graph and the report).
pub(crate) fn info_tokens(name: &str, kind: &Kind, attr: &StepAttr) -> TokenStream {
    let kind_tokens = match kind {
        Kind::Compensate(_) => quote!(Compensatable),
        Kind::ReadOnly => quote!(ReadOnly),
        Kind::Pivot => quote!(Pivot),
        Kind::Retriable => quote!(Retriable),
        Kind::Tcc { .. } => quote!(Tcc),
    };
    let mut info = quote!(::sagaflow::StepInfo::new(#name, ::sagaflow::StepKind::#kind_tokens));
    let last = |path: &syn::Path| {
        path.segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default()
    };
    if let Kind::Compensate(path) = kind {
        let comp_name = last(path);
        info = quote!(#info.with_compensation(#comp_name));
    }
    if let Kind::Tcc { confirm, cancel } = kind {
        let (confirm, cancel) = (last(confirm), last(cancel));
        info = quote!(#info.with_compensation(#cancel).with_confirm(#confirm));
    }
    if let Some((retry, _)) = &attr.retry {
        let base = if matches!(kind, Kind::Retriable) {
            quote!(::sagaflow::RetryPolicy::FOREVER)
        } else {
            quote!(::sagaflow::RetryPolicy::NONE)
        };
        let policy = retry_tokens(retry, base);
        info = quote!(#info.with_retry(#policy));
    }
    if let Some(timeout) = attr.timeout {
        let nanos = duration_nanos(timeout);
        info = quote!(#info.with_timeout(::sagaflow::__private::Duration::from_nanos(#nanos)));
    }
    if let Some((retry, _)) = &attr.compensate_retry {
        let policy = retry_tokens(retry, quote!(::sagaflow::RetryPolicy::COMPENSATION_DEFAULT));
        info = quote!(#info.with_compensation_retry(#policy));
    }
    if let Some((timeout, _)) = attr.compensate_timeout {
        let nanos = duration_nanos(timeout);
        info = quote!(#info.with_compensation_timeout(::sagaflow::__private::Duration::from_nanos(#nanos)));
    }
    let tcc = &attr.tcc;
    if let Some((retry, _)) = &tcc.confirm_retry {
        let policy = retry_tokens(retry, quote!(::sagaflow::RetryPolicy::FOREVER));
        info = quote!(#info.with_confirm_retry(#policy));
    }
    if let Some((timeout, _)) = tcc.confirm_timeout {
        let nanos = duration_nanos(timeout);
        info =
            quote!(#info.with_confirm_timeout(::sagaflow::__private::Duration::from_nanos(#nanos)));
    }
    if let Some((retry, _)) = &tcc.cancel_retry {
        let policy = retry_tokens(retry, quote!(::sagaflow::RetryPolicy::COMPENSATION_DEFAULT));
        info = quote!(#info.with_compensation_retry(#policy));
    }
    if let Some((timeout, _)) = tcc.cancel_timeout {
        let nanos = duration_nanos(timeout);
        info = quote!(#info.with_compensation_timeout(::sagaflow::__private::Duration::from_nanos(#nanos)));
    }
    info
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

/// The step's declaration as a value, for the saga's rustdoc picture: the same
/// values as the `INFO` tokens, with the runtime's defaults filled in.
pub(crate) fn info_value(name: &str, kind: &Kind, attr: &StepAttr) -> StepInfo {
    let graph_kind = match kind {
        Kind::Compensate(_) => StepKind::Compensatable,
        Kind::ReadOnly => StepKind::ReadOnly,
        Kind::Pivot => StepKind::Pivot,
        Kind::Retriable => StepKind::Retriable,
        Kind::Tcc { .. } => StepKind::Tcc,
    };
    let mut info = StepInfo::new(graph_doc::leak(name.to_string()), graph_kind);
    let last = |path: &syn::Path| {
        graph_doc::leak(
            path.segments
                .last()
                .map(|s| s.ident.to_string())
                .unwrap_or_default(),
        )
    };
    if let Kind::Compensate(path) = kind {
        info = info.with_compensation(last(path));
    }
    if let Kind::Tcc { confirm, cancel } = kind {
        info = info
            .with_compensation(last(cancel))
            .with_confirm(last(confirm));
    }
    let policy = |retry: &Retry, mut base: RetryPolicy| {
        if let Some(max) = retry.max {
            base = RetryPolicy::retries(max);
        }
        if let Some(b) = retry.backoff {
            base = base.with_backoff(b);
        }
        if let Some(m) = retry.max_backoff {
            base = base.with_max_backoff(m);
        }
        base
    };
    if let Some((retry, _)) = &attr.retry {
        info = info.with_retry(policy(retry, info.retry()));
    }
    if let Some(timeout) = attr.timeout {
        info = info.with_timeout(timeout);
    }
    if let Some((retry, _)) = &attr.compensate_retry {
        info = info.with_compensation_retry(policy(retry, info.compensation_retry()));
    }
    if let Some((timeout, _)) = attr.compensate_timeout {
        info = info.with_compensation_timeout(timeout);
    }
    let tcc = &attr.tcc;
    if let Some((retry, _)) = &tcc.confirm_retry {
        info = info.with_confirm_retry(policy(retry, info.confirm_retry()));
    }
    if let Some((timeout, _)) = tcc.confirm_timeout {
        info = info.with_confirm_timeout(timeout);
    }
    if let Some((retry, _)) = &tcc.cancel_retry {
        info = info.with_compensation_retry(policy(retry, info.compensation_retry()));
    }
    if let Some((timeout, _)) = tcc.cancel_timeout {
        info = info.with_compensation_timeout(timeout);
    }
    info
}

/// The per-step `macro_rules!` callback that carries the declaration to `#[saga]`'s
/// rustdoc picture (see `graph_doc`). Exported under a name unique in the crate
/// (the step's name and its call site), and re-exported under the step's own name
/// in the macro namespace, so that it travels with the function through `use`.
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
