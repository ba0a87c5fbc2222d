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
//! impl Step for book_flight {
//!     type Output = Booking; type Error = E; const INFO = ..;
//!     type __SagaflowLimit = Untimed;         // `Timed` with a `timeout`
//! }
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

mod check;
mod expand;
mod info;

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::ItemFn;

use crate::attr::parse_step_attr;
use crate::ctxt::Ctxt;
pub(crate) use check::{validate_options, validate_signature};
use expand::generate;
pub(crate) use expand::{
    graph_rules, hidden_step_type, limit_type, not_tcc_fns, step_doc, step_kind, tcc_const,
};
pub(crate) use info::{info_tokens, info_value};

#[cfg(test)]
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_salted(args, item, 0)
}

/// `salt` tells apart the call sites of `#[step]` in one crate (see `expand::graph_callback`).
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
    let signature_ok = validate_signature(&cx, &func, true);
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
