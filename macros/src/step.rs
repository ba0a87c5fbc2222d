//! `#[step]`: keeps the function as it is and adds, under the same name in the
//! type namespace, a hidden type that carries the step's declaration.
//!
//! ```text
//! #[step(compensate = cancel_flight, retry = 3)]
//! async fn book_flight(airline: &Airline, trip: &Trip) -> Result<Booking, E> { .. }
//! ```
//! becomes
//! ```text
//! async fn book_flight(airline: &Airline, trip: &Trip) -> Result<Booking, E> { .. }
//! struct book_flight {}                       // same name: travels with the fn through `use`
//! impl Step for book_flight { type Output = Booking; type Error = E; const INFO = .. }
//! impl book_flight {
//!     async fn __sagaflow_compensate(a0: &Airline, a1: &Trip, out: &Booking) -> Result<(), ..> {
//!         compensation_result(cancel_flight(a0, a1, out).await)   // spanned at `cancel_flight`
//!     }
//! }
//! ```
//! `#[saga]` sees only a step's call path, so everything it needs comes through
//! that type: the metadata as associated consts (checked in const context for
//! pivot order) and the compensation call, generated here where the step's
//! parameter types are known, so that rustc checks the compensation's signature
//! against the step's and points at the `compensate = ..` path when they differ.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, GenericParam, ItemFn, ReturnType, Type};

use crate::attr::{Kind, Retry, StepAttr, parse_step_attr};
use crate::ctxt::Ctxt;
use crate::graph_doc;
use sagaflow_graph::{RetryPolicy, StepInfo, StepKind};

#[cfg(test)]
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_salted(args, item, 0)
}

/// `salt` tells apart the call sites of `#[step]` in one crate (see [`graph_callback`]).
pub(crate) fn expand_salted(args: TokenStream, item: TokenStream, salt: u64) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let message = if syn::parse2::<syn::TraitItemFn>(item.clone()).is_ok() {
                "a step needs a body: `#[step]` goes on a free `async fn`, not on a trait method's declaration"
            } else {
                "`#[step]` goes on an `async fn` that returns `Result<T, E>`"
            };
            let error = syn::Error::new(Span::call_site(), message).to_compile_error();
            return quote!(#error #item);
        }
    };
    // A second `#[step(..)]` on the same function would define everything twice.
    if let Some(again) = func
        .attrs
        .iter()
        .find(|a| a.path().segments.last().is_some_and(|s| s.ident == "step"))
    {
        let error = syn::Error::new_spanned(
            again,
            "a function takes one `#[step(..)]`: merge the options into one, as in `#[step(compensate = cancel, retry = 3)]`",
        )
        .to_compile_error();
        let mut func = func;
        func.attrs
            .retain(|a| a.path().segments.last().is_none_or(|s| s.ident != "step"));
        return quote!(#error #func);
    }
    let cx = Ctxt::new();
    let attr = parse_step_attr(&cx, args);
    let signature_ok = validate_signature(&cx, &func);
    if !attr.kind_written {
        cx.error_at(
            Span::call_site(),
            "a step must say what undoes it when a later step fails: add `compensate = <fn>`, or mark it `read_only`, `pivot` or `retriable`",
        );
    }
    validate_options(&cx, &attr);
    let errors = match cx.check() {
        Ok(()) => TokenStream::new(),
        Err(e) => e.to_compile_error(),
    };
    if !signature_ok {
        // Without a usable signature there is nothing to build the step type from;
        // the function alone keeps the rest of the crate (and IDE completion) working.
        return quote!(#errors #func);
    }
    let generated = generate(&func, &attr, salt);
    quote!(#errors #generated)
}

/// Checks the function's shape. Returns whether it is good enough to generate from.
fn validate_signature(cx: &Ctxt, func: &ItemFn) -> bool {
    let sig = &func.sig;
    let mut ok = true;
    if STD_MACROS.contains(&sig.ident.to_string().as_str()) {
        cx.error_spanned_by(
            &sig.ident,
            format!(
                "a step cannot be named `{name}`: `#[step]` also defines a macro under the step's name (it carries the step into its saga's rustdoc), which would make `{name}!` ambiguous in this module; rename the step, for example `{name}_step`",
                name = sig.ident
            ),
        );
        ok = false;
    }
    if let Some(unsafety) = sig.unsafety {
        cx.error_spanned_by(
            unsafety,
            "a step cannot be an `unsafe fn`: a saga calls it (again on each retry) where no `unsafe` block can be written; make the step safe and put the `unsafe` block inside it",
        );
        ok = false;
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(abi, "a step is a Rust `async fn`: remove the `extern` ABI");
        ok = false;
    }
    if sig.asyncness.is_none() {
        cx.error_spanned_by(
            sig.fn_token,
            format!(
                "a step must be an `async fn`: write `async fn {}`",
                sig.ident
            ),
        );
        ok = false;
    }
    match &sig.output {
        ReturnType::Default => {
            cx.error_spanned_by(
                &sig.ident,
                format!(
                    "a step must return `Result<T, E>` so that its failure can be compensated: add `-> Result<T, E>` to `{}`",
                    sig.ident
                ),
            );
            ok = false;
        }
        ReturnType::Type(_, ty) => {
            if !looks_like_result(ty) {
                cx.error_spanned_by(
                    ty,
                    "a step must return `Result<T, E>` (or an alias named `Result`) so that its failure can be compensated",
                );
                ok = false;
            } else if let Some(imp) = crate::saga::first_impl_trait(ty) {
                cx.error_spanned_by(
                    imp,
                    "a step's output must be a named type: the saga keeps it for the compensation (and a durable saga persists it); write the type, or a boxed trait object such as `Box<dyn Display + Send>`",
                );
                ok = false;
            } else if let Some(borrow) = crate::saga::first_borrow(ty) {
                cx.error_spanned_by(
                    borrow,
                    "a step's output cannot borrow from its arguments: the saga keeps the output until it ends (its compensation reads it), so return an owned value, such as `Booking` or `Arc<Booking>`, or a `&'static` reference",
                );
                ok = false;
            }
        }
    }
    for param in &sig.generics.params {
        match param {
            GenericParam::Lifetime(_) => {}
            GenericParam::Type(_) | GenericParam::Const(_) => {
                cx.error_spanned_by(
                    param,
                    "a step cannot be generic: a saga needs one concrete step to record and compensate; write a non-generic step that calls a generic function",
                );
                ok = false;
            }
        }
    }
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                cx.error_spanned_by(
                    receiver,
                    "a step must be a free `async fn`; methods cannot be steps yet: move the step out of the `impl` block and pass the value as a `&` parameter",
                );
                ok = false;
            }
            FnArg::Typed(pat) => {
                if let Some(m) = first_mut_borrow(&pat.ty) {
                    cx.error_spanned_by(
                            quote!(#m),
                            "a step cannot take `&mut`: its arguments are evaluated again for each retry and for its compensation, so they must be shared; take `&T` and use interior mutability (such as a `Mutex`) if the step must change something",
                        );
                    ok = false;
                }
            }
        }
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, "a step cannot be variadic");
        ok = false;
    }
    ok
}

/// The `mut` of the first `&mut` anywhere in a parameter's type.
fn first_mut_borrow(ty: &Type) -> Option<syn::token::Mut> {
    use syn::visit::Visit;
    struct Finder(Option<syn::token::Mut>);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            if self.0.is_none() {
                self.0 = r.mutability;
            }
            syn::visit::visit_type_reference(self, r);
        }
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}

fn looks_like_result(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
        Type::Group(g) => looks_like_result(&g.elem),
        Type::Paren(p) => looks_like_result(&p.elem),
        _ => false,
    }
}

fn validate_options(cx: &Ctxt, attr: &StepAttr) {
    let kind = attr.kind.as_ref().map(|(k, _)| k);
    if let (Some(Kind::Retriable), Some((retry, tokens))) = (kind, &attr.retry)
        && retry.max.is_some()
    {
        cx.error_spanned_by(
                retry.max_tokens.as_ref().unwrap_or(tokens),
                "a `retriable` step is retried until it succeeds, so it takes no retry count: remove it, and keep only `retry(backoff = .., max_backoff = ..)` to set the waits, or make the step `compensate = <fn>` to give up after a count",
            );
    }
    if let Some((_, tokens)) = &attr.compensate_retry
        && let Some(kind) = kind
        && !matches!(kind, Kind::Compensate(_))
    {
        cx.error_spanned_by(
                    tokens,
                    format!(
                        "`compensate_retry` sets how a compensation is retried, but a `{}` step has no compensation; remove it or use `compensate = <fn>`",
                        kind.word()
                    ),
                );
    }
    if let Some((_, tokens)) = &attr.compensate_timeout
        && let Some(kind) = kind
        && !matches!(kind, Kind::Compensate(_))
    {
        cx.error_spanned_by(
            tokens,
            format!(
                "`compensate_timeout` limits each attempt of a compensation, but a `{}` step has no compensation; remove it, or use `timeout` to limit the step's own attempts",
                kind.word()
            ),
        );
    }
}

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

fn generate(func: &ItemFn, attr: &StepAttr, salt: u64) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let ident = &sig.ident;
    let name = ident.to_string();
    // After an attribute error the kind may be missing; `read_only` keeps the
    // expansion quiet so that only the real error is reported.
    let kind = attr
        .kind
        .as_ref()
        .map(|(k, _)| k.clone())
        .unwrap_or(Kind::ReadOnly);
    let kind_tokens = match &kind {
        Kind::Compensate(_) => quote!(Compensatable),
        Kind::ReadOnly => quote!(ReadOnly),
        Kind::Pivot => quote!(Pivot),
        Kind::Retriable => quote!(Retriable),
    };
    let mut info = quote!(::sagaflow::StepInfo::new(#name, ::sagaflow::StepKind::#kind_tokens));
    if let Kind::Compensate(path) = &kind {
        let comp_name = path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        info = quote!(#info.with_compensation(#comp_name));
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
    let compensate_body = match &kind {
        Kind::Compensate(path) => crate::compensation::call(path, sig, &arg_names),
        _ => quote! {
            let _ = (#(#arg_names,)* __sagaflow_output);
            ::sagaflow::__private::no_compensation().await
        },
    };
    let doc = step_doc(&kind, attr);
    let step_type = hidden_step_type(vis, ident, &output_ty, &error_ty, &info, quote!());
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
        }
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
            #extra
        }
    }
}

/// The step's declaration as a value, for the saga's rustdoc picture: the same
/// values as the `INFO` tokens, with the runtime's defaults filled in.
fn info_value(name: &str, kind: &Kind, attr: &StepAttr) -> StepInfo {
    let graph_kind = match kind {
        Kind::Compensate(_) => StepKind::Compensatable,
        Kind::ReadOnly => StepKind::ReadOnly,
        Kind::Pivot => StepKind::Pivot,
        Kind::Retriable => StepKind::Retriable,
    };
    let mut info = StepInfo::new(graph_doc::leak(name.to_string()), graph_kind);
    if let Kind::Compensate(path) = kind
        && let Some(last) = path.segments.last()
    {
        info = info.with_compensation(graph_doc::leak(last.ident.to_string()));
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
    info
}

/// The per-step `macro_rules!` callback that carries the declaration to `#[saga]`'s
/// rustdoc picture (see `graph_doc`). Exported under a name unique in the crate
/// (the step's name and its call site), and re-exported under the step's own name
/// in the macro namespace, so that it travels with the function through `use`.
/// The macros of the standard library's prelude: a step's callback under the
/// same name would make every use of that macro in the module ambiguous.
const STD_MACROS: &[&str] = &[
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
    let encoded = graph_doc::encode(info);
    quote! {
        #[doc(hidden)]
        #[macro_export]
        #[allow(non_local_definitions)]
        macro_rules! #unique {
            (@sagaflow_graph [ { $($next:tt)* } $($rest:tt)* ] [ $($acc:tt)* ]) => {
                $($next)* ! ( @sagaflow_graph [ $($rest)* ] [ $($acc)* #encoded ] )
            };
            (@sagaflow_graph [] [ $($acc:tt)* ]) => {
                ::sagaflow::__private::saga_graph_doc! ( $($acc)* #encoded )
            };
        }
        #[doc(hidden)]
        #[allow(unused_imports)]
        #vis use #unique as #ident;
    }
}

fn step_doc(kind: &Kind, attr: &StepAttr) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(args: &str, item: &str) -> String {
        expand(args.parse().unwrap(), item.parse().unwrap()).to_string()
    }

    #[test]
    fn no_kind_is_an_error_that_lists_the_kinds() {
        let out = expand_str("", "async fn a() -> Result<(), E> { Ok(()) }");
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("read_only"), "{out}");
    }

    #[test]
    fn compensate_generates_the_call() {
        let out = expand_str(
            "compensate = undo_a, retry = 2",
            "async fn a(x: &u32) -> Result<u8, E> { Ok(1) }",
        );
        assert!(!out.contains("compile_error"), "{out}");
        assert!(
            out.contains(":: call (& undo_a , __sagaflow_arg0 , __sagaflow_output)"),
            "{out}"
        );
        assert!(out.contains("retries (2u32)"), "{out}");
    }

    #[test]
    fn a_malformed_kind_is_not_also_a_missing_kind() {
        let out = expand_str("compensate", "async fn a() -> Result<(), E> { Ok(()) }");
        assert!(out.contains("compensate = cancel_flight"), "{out}");
        assert!(!out.contains("must say what undoes it"), "{out}");
    }

    #[test]
    fn a_near_miss_option_gets_a_suggestion() {
        let out = expand_str(
            "read_only, timout = \"1s\"",
            "async fn a() -> Result<(), E> { Ok(()) }",
        );
        assert!(out.contains("did you mean `timeout`?"), "{out}");
        let out = expand_str(
            "read_only, retries = 3",
            "async fn a() -> Result<(), E> { Ok(()) }",
        );
        assert!(out.contains("did you mean `retry`?"), "{out}");
        let out = expand_str(
            "read_only, colour = 3",
            "async fn a() -> Result<(), E> { Ok(()) }",
        );
        assert!(!out.contains("did you mean"), "{out}");
    }

    #[test]
    fn a_borrowed_output_is_an_error_but_static_is_fine() {
        let out = expand_str(
            "read_only",
            "async fn a(x: &X) -> Result<&str, E> { Ok(\"\") }",
        );
        assert!(out.contains("cannot borrow"), "{out}");
        let out = expand_str(
            "read_only",
            "async fn a<'x>(x: &'x X) -> Result<Cow<'x, str>, E> { todo!() }",
        );
        assert!(out.contains("cannot borrow"), "{out}");
        let out = expand_str(
            "read_only",
            "async fn a(x: &X) -> Result<&'static str, E> { Ok(\"\") }",
        );
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn non_async_keeps_the_function() {
        let out = expand_str("read_only", "fn a() -> Result<(), E> { Ok(()) }");
        assert!(out.contains("compile_error"));
        assert!(out.contains("fn a ()"));
    }
}
