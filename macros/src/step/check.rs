//! Validate: the step function's shape and the combination of its options.

use quote::quote;
use syn::{FnArg, GenericParam, ItemFn, ReturnType, Signature, Type};

use super::expand::STD_MACROS;
use crate::attr::{Kind, StepAttr};
use crate::ctxt::Ctxt;

/// Checks the function's shape. Returns whether it is good enough to generate from.
/// `free`: a free function, which also defines a macro under its name; a method
/// (`#[sagaflow::steps]`, its receiver taken off) does not.
pub(crate) fn validate_signature(cx: &Ctxt, func: &ItemFn, free: bool) -> bool {
    let sig = &func.sig;
    // Each check reports its own mistakes, so all of them run.
    let mut ok = validate_qualifiers(cx, sig, free);
    ok &= validate_output(cx, sig);
    ok &= validate_params(cx, sig);
    ok
}

/// The name and what comes before `fn`: what makes the function something a
/// saga cannot call as a step.
fn validate_qualifiers(cx: &Ctxt, sig: &Signature, free: bool) -> bool {
    let mut ok = true;
    if free && STD_MACROS.contains(&sig.ident.to_string().as_str()) {
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
    ok
}

/// `Result<T, E>`, with a `T` the saga can keep until it ends.
fn validate_output(cx: &Ctxt, sig: &Signature) -> bool {
    let mut ok = true;
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
    ok
}

/// Generics and parameters: one concrete step whose arguments can be
/// evaluated again.
fn validate_params(cx: &Ctxt, sig: &Signature) -> bool {
    let mut ok = true;
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
                    "a method is a step only inside an `impl` block marked `#[sagaflow::steps]`: add `#[sagaflow::steps]` above the `impl`, which declares each `#[step]` method's step",
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

pub(crate) fn validate_options(cx: &Ctxt, attr: &StepAttr) {
    let kind = attr.kind.as_ref().map(|(k, _)| k);
    if let (Some(Kind::Retriable), Some((retry, tokens))) = (kind, &attr.retry)
        && retry.max.is_some()
    {
        cx.error_spanned_by(
                retry.max_tokens.as_ref().unwrap_or(tokens),
                "a `retriable` step is retried until it succeeds, so it takes no retry count: remove it, and keep only `retry(backoff = .., max_backoff = ..)` to set the waits, or make the step `compensate = <fn>` to give up after a count",
            );
    }
    if let Some(Kind::Tcc { .. }) = kind {
        let written = [
            (
                "compensate_retry",
                "cancel_retry",
                attr.compensate_retry.as_ref().map(|(_, t)| t),
            ),
            (
                "compensate_timeout",
                "cancel_timeout",
                attr.compensate_timeout.as_ref().map(|(_, t)| t),
            ),
        ];
        for (name, instead, tokens) in written {
            if let Some(tokens) = tokens {
                cx.error_spanned_by(
                    tokens,
                    format!(
                        "a `tcc` step is undone by its cancel, not by a compensation: write `{instead}` instead of `{name}`"
                    ),
                );
            }
        }
        if let Some((retry, tokens)) = &attr.tcc.confirm_retry
            && retry.max.is_some()
        {
            cx.error_spanned_by(
                retry.max_tokens.as_ref().unwrap_or(tokens),
                "a confirm is retried until it succeeds (it never turns into a cancel), so `confirm_retry` takes no count: keep only `confirm_retry(backoff = .., max_backoff = ..)` to set the waits",
            );
        }
        return;
    }
    if let (Some(kind), Some((name, tokens))) = (kind, attr.tcc.first_written()) {
        cx.error_spanned_by(
            tokens,
            format!(
                "`{name}` sets how a try-confirm-cancel step's {} runs, but a `{}` step has none; remove it or use `tcc(confirm = <fn>, cancel = <fn>)`",
                if name.starts_with("confirm") { "confirm" } else { "cancel" },
                kind.word()
            ),
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
