//! Parse, `sagaflow::send!`: a message of the saga body, sent at its commit.
//!
//! ```text
//! sagaflow::send!("audit", &AuditEvent::checkout(&order, &payment));
//! sagaflow::send!("notifications", key = order.id, &Notice::paid(&order));
//! ```
//! becomes a [`SendStmt`] each, evaluated in order once every step has
//! succeeded, before the final `Ok(..)`: the names it reads are kept alive
//! until then, as for the final `Ok(..)`.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Token};

use super::exprs::{check_plain_expr, contains_await};
use crate::ctxt::Ctxt;

const SEND_FORM: &str = "write `sagaflow::send!(destination, &message)` or `sagaflow::send!(destination, key = key, &message)`";

/// `send!(destination, [key = key,] message)`, read.
pub(crate) struct SendStmt {
    pub(crate) destination: Expr,
    pub(crate) key: Option<Expr>,
    pub(crate) message: Expr,
}

/// Whether `mac` is `send!` or `sagaflow::send!`.
pub(super) fn is_send(mac: &syn::Macro) -> bool {
    let segments: Vec<String> = mac
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    matches!(segments.as_slice(), [only] if only == "send")
        || matches!(segments.as_slice(), [krate, last] if krate == "sagaflow" && last == "send")
}

/// Reads a `send!` statement's arguments, reporting what is wrong with them.
pub(super) fn read(cx: &Ctxt, mac: &syn::Macro) -> Option<SendStmt> {
    let args = match mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated) {
        Ok(args) => args,
        Err(e) => {
            cx.error_spanned_by(&mac.tokens, format!("{e}: {SEND_FORM}"));
            return None;
        }
    };
    let mut args: Vec<Expr> = args.into_iter().collect();
    let (destination, key, message) = match args.len() {
        2 => {
            let message = args.pop()?;
            (args.pop()?, None, message)
        }
        3 => {
            let message = args.pop()?;
            let key = match args.pop()? {
                Expr::Assign(assign) if is_key(&assign.left) => *assign.right,
                other => {
                    cx.error_spanned_by(
                        &other,
                        format!("the middle argument of `send!` is the message's key, written `key = value`: {SEND_FORM}"),
                    );
                    return None;
                }
            };
            (args.pop()?, Some(key), message)
        }
        _ => {
            cx.error_spanned_by(
                mac,
                format!("`send!` takes a destination and a message: {SEND_FORM}"),
            );
            return None;
        }
    };
    let mut ok = true;
    for expr in [Some(&destination), key.as_ref(), Some(&message)]
        .into_iter()
        .flatten()
    {
        if let Some(span) = contains_await(expr) {
            cx.error_at(
                span,
                "a message is made from the saga's values, without awaiting: call steps before it and send what they returned",
            );
            ok = false;
        } else {
            ok &= check_plain_expr(cx, expr);
        }
    }
    ok.then_some(SendStmt {
        destination,
        key,
        message,
    })
}

fn is_key(expr: &Expr) -> bool {
    matches!(expr, Expr::Path(p) if p.qself.is_none() && p.path.is_ident("key"))
}

/// The code that hands the messages to the run, in the order written.
pub(super) fn sends_code(sends: &[SendStmt]) -> TokenStream {
    let calls = sends.iter().map(|s| {
        let SendStmt {
            destination,
            key,
            message,
        } = s;
        let key = match key {
            Some(key) => {
                quote!(::core::option::Option::Some(::std::string::ToString::to_string(&(#key))))
            }
            None => quote!(::core::option::Option::None),
        };
        let span = message.span();
        let message = quote_spanned!(span=> &(#message));
        let destination = destination.to_token_stream();
        quote! {
            __sagaflow_run.send_at_commit(
                ::core::convert::AsRef::<str>::as_ref(&(#destination)),
                #key,
                #message,
            );
        }
    });
    quote!(#(#calls)*)
}
