//! The call of a step's compensation, checked against the signature it must have.
//!
//! ```text
//! #[step(compensate = cancel_flight)]
//! async fn book_flight(airline: &Airline, trip: &Trip) -> Result<Booking, E> { .. }
//! ```
//! makes the body of the step type's `__sagaflow_compensate(a0, a1, output)`
//! ```text
//! #[diagnostic::on_unimplemented(message = "`cancel_flight` cannot undo `book_flight`: \
//!     it must be `async fn cancel_flight(&Airline, &Trip, &Booking) -> Result<(), E>`")]
//! trait CompensationTakes<A0, A1, A2> { .. }
//! #[diagnostic::do_not_recommend]
//! impl<F: Fn(A0, A1, A2) -> Fut, Fut: Future, ..> CompensationTakes<A0, A1, A2> for F { .. }
//! compensation_returns_result(CompensationTakes::call(&cancel_flight, a0, a1, output).await)
//! ```
//! Calling it directly would leave the mistakes to rustc's own words at the
//! `compensate = ..` path: "this function takes 2 arguments but 3 were supplied",
//! or, for an output taken by value, the suggestion `compensate = *cancel_flight`.
//! Through the trait, every mistake in the signature reads as the signature it
//! must have, spelled with the step's own parameter types.

use proc_macro2::{Ident, Spacing, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ReturnType, Type};

/// What a function named in a step's kind does for it: undo it (a
/// compensation), or confirm or cancel its try (a TCC step).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Undo,
    Confirm,
    Cancel,
}

impl Role {
    /// The verb of the message: "`release_seat` cannot cancel `hold_seat`".
    fn verb(self) -> &'static str {
        match self {
            Role::Undo => "undo",
            Role::Confirm => "confirm",
            Role::Cancel => "cancel",
        }
    }
}

/// The compensation call's tokens; `args` are the wrapper's parameter names, the
/// step's arguments, followed by `__sagaflow_output`.
pub(crate) fn call(path: &syn::Path, sig: &syn::Signature, args: &[Ident]) -> TokenStream {
    call_with(
        path,
        sig,
        None,
        args,
        quote_spanned!(path.span()=> &<Self as ::sagaflow::Step>::Output),
    )
}

/// [`call`] for a method step, whose compensation also takes the receiver
/// (`receiver`: its type, `&Bank`, and the name it goes by), and for any step
/// whose output type is `output_ty` (a reference type).
pub(crate) fn call_with(
    path: &syn::Path,
    sig: &syn::Signature,
    receiver: Option<(TokenStream, Ident)>,
    args: &[Ident],
    output_ty: TokenStream,
) -> TokenStream {
    call_as(Role::Undo, path, sig, receiver, args, output_ty)
}

/// [`call_with`] for the function in `role`: a TCC step's confirm takes what a
/// compensation takes; its cancel takes `Option<&Output>` as `output_ty`.
pub(crate) fn call_as(
    role: Role,
    path: &syn::Path,
    sig: &syn::Signature,
    receiver: Option<(TokenStream, Ident)>,
    args: &[Ident],
    output_ty: TokenStream,
) -> TokenStream {
    let span = path.span();
    // The trait's parameters are the step's own types, written out: inferred from
    // the compensation instead, they would make rustc report a mismatched
    // argument at the call, and suggest `*cancel_flight` again.
    let (receiver_ty, receiver_name) = receiver.unzip();
    let param_tys: Vec<TokenStream> = receiver_ty
        .into_iter()
        .chain(sig.inputs.iter().filter_map(|input| match input {
            FnArg::Typed(pt) => Some(pt.ty.to_token_stream()),
            FnArg::Receiver(_) => None,
        }))
        .collect();
    let args: Vec<&Ident> = receiver_name.iter().chain(args).collect();
    let message = message(role, path, sig);
    let generics: Vec<Ident> = (0..=args.len())
        .map(|i| format_ident!("__SagaflowA{}", i))
        .collect();
    let names: Vec<Ident> = (0..=args.len())
        .map(|i| format_ident!("__sagaflow_a{}", i))
        .collect();
    let (takes, returns, label, note) = match role {
        Role::Undo => (
            quote_spanned!(span=> CompensationTakes),
            quote_spanned!(span=> compensation_returns_result),
            "the compensation named here",
            "a compensation is called with exactly what its step was called with, followed by a reference to what the step returned",
        ),
        Role::Confirm => (
            quote_spanned!(span=> ConfirmTakes),
            quote_spanned!(span=> confirm_returns_result),
            "the confirm named here",
            "a confirm is called with exactly what its try was called with, followed by a reference to what the try returned",
        ),
        Role::Cancel => (
            quote_spanned!(span=> CancelTakes),
            quote_spanned!(span=> cancel_returns_result),
            "the cancel named here",
            "a cancel is called with exactly what its try was called with, followed by `Some(&output)` if the try returned, or `None` if it failed, timed out or panicked (its effect may have landed all the same)",
        ),
    };
    // A local check function, so that a compensation returning the wrong type is
    // reported "required by a bound in `compensation_returns_result`" at the
    // `compensate = ..` path, rather than in the runtime's internals.
    quote_spanned! {span=>
        fn #returns<R: ::sagaflow::CompensationResult>(
            result: R,
        ) -> ::core::result::Result<(), ::sagaflow::__private::CompensationError> {
            ::sagaflow::__private::compensation_result(result)
        }
        #[diagnostic::on_unimplemented(
            message = #message,
            label = #label,
            note = #note
        )]
        trait #takes<#(#generics),*> {
            type Future;
            fn call(&self, #(#names: #generics),*) -> Self::Future;
        }
        #[diagnostic::do_not_recommend]
        impl<__SagaflowF, __SagaflowFuture, #(#generics),*> #takes<#(#generics),*> for __SagaflowF
        where
            __SagaflowF: ::core::ops::Fn(#(#generics),*) -> __SagaflowFuture,
            __SagaflowFuture: ::core::future::Future,
        {
            type Future = __SagaflowFuture;
            #[inline(always)]
            fn call(&self, #(#names: #generics),*) -> __SagaflowFuture {
                self(#(#names),*)
            }
        }
        #returns(
            #takes::<#(#param_tys,)* #output_ty>::call(&#path, #(#args,)* __sagaflow_output).await,
        )
    }
}

/// "`cancel_flight` cannot undo `book_flight`: it must be `async fn ..`".
fn message(role: Role, path: &syn::Path, sig: &syn::Signature) -> String {
    let comp = path
        .segments
        .last()
        .map(|s| s.ident.to_string())
        .unwrap_or_default();
    let mut params: Vec<String> = sig
        .inputs
        .iter()
        .map(|input| match input {
            FnArg::Typed(pt) => type_text(&pt.ty),
            FnArg::Receiver(_) => "&self".to_owned(),
        })
        .collect();
    let output = match &sig.output {
        ReturnType::Type(_, ty) => match crate::saga::result_args(ty) {
            Some((ok, _)) => type_text(&ok),
            None => format!("<{} as Step>::Output", type_text(ty)),
        },
        ReturnType::Default => "()".to_owned(),
    };
    params.push(if role == Role::Cancel {
        format!("Option<&{output}>")
    } else {
        format!("&{output}")
    });
    format!(
        "`{comp}` cannot {verb} `{step}`: it must be `async fn {comp}({params}) -> Result<(), E>`, with `E: Display`",
        verb = role.verb(),
        step = sig.ident,
        params = params.join(", "),
    )
}

/// A type as a person writes it: `&'a Vec<u8>`, not `& 'a Vec < u8 >`.
fn type_text(ty: &Type) -> String {
    fn word_like(tt: &TokenTree) -> bool {
        matches!(tt, TokenTree::Ident(_) | TokenTree::Literal(_))
    }
    fn push(stream: TokenStream, out: &mut String) {
        let mut prev: Option<TokenTree> = None;
        for tt in stream {
            let space = match (&prev, &tt) {
                (Some(p), t) if word_like(p) && word_like(t) => true,
                (Some(TokenTree::Punct(p)), _) if matches!(p.as_char(), ',' | ';') => true,
                (Some(TokenTree::Punct(p)), _) if p.as_char() == '>' && out.ends_with("->") => true,
                (Some(_), TokenTree::Punct(p))
                    if p.as_char() == '-' && p.spacing() == Spacing::Joint =>
                {
                    true
                }
                _ => false,
            };
            if space {
                out.push(' ');
            }
            match &tt {
                TokenTree::Group(g) => {
                    let (open, close) = match g.delimiter() {
                        proc_macro2::Delimiter::Parenthesis => ("(", ")"),
                        proc_macro2::Delimiter::Bracket => ("[", "]"),
                        proc_macro2::Delimiter::Brace => ("{", "}"),
                        proc_macro2::Delimiter::None => ("", ""),
                    };
                    out.push_str(open);
                    push(g.stream(), out);
                    out.push_str(close);
                }
                other => out.push_str(&other.to_string()),
            }
            prev = Some(tt);
        }
    }
    let mut out = String::new();
    push(ty.to_token_stream(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_read_as_written() {
        let text = |s: &str| type_text(&syn::parse_str(s).unwrap());
        assert_eq!(text("& 'a mut Vec < u8 >"), "&'a mut Vec<u8>");
        assert_eq!(
            text("HashMap<String, (u8, [u16; 4])>"),
            "HashMap<String, (u8, [u16; 4])>"
        );
        assert_eq!(text("&dyn Fn(u8) -> u8"), "&dyn Fn(u8) -> u8");
        assert_eq!(text("Option<&'static str>"), "Option<&'static str>");
    }

    #[test]
    fn message_spells_the_signature() {
        let sig: syn::Signature =
            syn::parse_str("async fn reserve(trip: &Trip, n: u32) -> Result<Hold, String>")
                .unwrap();
        let path: syn::Path = syn::parse_str("release").unwrap();
        assert_eq!(
            message(Role::Undo, &path, &sig),
            "`release` cannot undo `reserve`: it must be `async fn release(&Trip, u32, &Hold) -> Result<(), E>`, with `E: Display`"
        );
        assert_eq!(
            message(Role::Cancel, &path, &sig),
            "`release` cannot cancel `reserve`: it must be `async fn release(&Trip, u32, Option<&Hold>) -> Result<(), E>`, with `E: Display`"
        );
    }
}
