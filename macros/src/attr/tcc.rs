//! Parsing of the try-confirm-cancel kind, `tcc(confirm = c, cancel = x)`, and
//! of the options for its confirm and its cancel.
//!
//! ```text
//! #[step(tcc(confirm = confirm_seat, cancel = release_seat), confirm_retry(backoff = "50ms"), cancel_retry = 3)]
//! ```
//! becomes `Kind::Tcc { confirm, cancel }` and a [`TccOptions`]; a confirm is
//! retried until it succeeds, so `confirm_retry` takes the waits but no count,
//! like `retry` on a `retriable` step.

use std::time::Duration;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::punctuated::Punctuated;
use syn::{Expr, Meta, Token};

use super::{Kind, Retry, parse_retry, parse_timeout};
use crate::ctxt::Ctxt;

const SHAPE: &str = "`tcc(confirm = confirm_seat, cancel = release_seat)`";

/// The options of a TCC step's confirm and cancel, each with its tokens as written.
#[derive(Default)]
pub(crate) struct TccOptions {
    pub(crate) confirm_retry: Option<(Retry, TokenStream)>,
    pub(crate) confirm_timeout: Option<(Duration, TokenStream)>,
    pub(crate) cancel_retry: Option<(Retry, TokenStream)>,
    pub(crate) cancel_timeout: Option<(Duration, TokenStream)>,
}

impl TccOptions {
    /// The first option written, by name and tokens: what a step of another kind
    /// is told to remove.
    pub(crate) fn first_written(&self) -> Option<(&'static str, &TokenStream)> {
        if let Some((_, t)) = &self.confirm_retry {
            return Some(("confirm_retry", t));
        }
        if let Some((_, t)) = &self.confirm_timeout {
            return Some(("confirm_timeout", t));
        }
        if let Some((_, t)) = &self.cancel_retry {
            return Some(("cancel_retry", t));
        }
        self.cancel_timeout
            .as_ref()
            .map(|(_, t)| ("cancel_timeout", t))
    }
}

/// `tcc(confirm = c, cancel = x)`, both functions required, each once.
pub(super) fn parse_kind(cx: &Ctxt, meta: &Meta) -> Option<Kind> {
    let Meta::List(list) = meta else {
        cx.error_spanned_by(
            meta,
            format!("`tcc` names the step's confirm and cancel functions: write {SHAPE}"),
        );
        return None;
    };
    let inner = match list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated) {
        Ok(inner) => inner,
        Err(e) => {
            cx.push(syn::Error::new(e.span(), format!("{e}; expected {SHAPE}")));
            return None;
        }
    };
    let (mut confirm, mut cancel) = (None, None);
    let mut ok = true;
    for item in &inner {
        let key = item.path().get_ident().map(|i| i.to_string());
        let slot = match key.as_deref() {
            Some("confirm") => &mut confirm,
            Some("cancel") => &mut cancel,
            _ => {
                cx.error_spanned_by(
                    item.path(),
                    format!(
                        "unknown `tcc` option `{}`; expected `confirm = <fn>` and `cancel = <fn>`, as in {SHAPE}",
                        item.path().to_token_stream().to_string().replace(' ', "")
                    ),
                );
                ok = false;
                continue;
            }
        };
        let key = key.unwrap_or_default();
        let what = if key == "confirm" {
            "makes the try final once the saga commits"
        } else {
            "releases the try when the saga rolls back"
        };
        let path = match item {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Path(p) if p.qself.is_none() => Some(p.path.clone()),
                other => {
                    cx.error_spanned_by(
                        other,
                        format!(
                            "`{key}` takes the name of the function that {what}, as in {SHAPE}"
                        ),
                    );
                    None
                }
            },
            _ => {
                cx.error_spanned_by(
                    item,
                    format!("`{key}` takes the function that {what}: write {SHAPE}"),
                );
                None
            }
        };
        if slot.is_some() {
            cx.error_spanned_by(
                item,
                format!("duplicate `tcc` option `{key}`: remove one of them"),
            );
            ok = false;
        } else if let Some(path) = path {
            *slot = Some(path);
        } else {
            ok = false;
        }
    }
    match (confirm, cancel) {
        (Some(confirm), Some(cancel)) if ok => Some(Kind::Tcc { confirm, cancel }),
        (confirm, cancel) => {
            if ok {
                let missing = if confirm.is_none() && cancel.is_none() {
                    "its confirm and its cancel"
                } else if confirm.is_none() {
                    "its confirm (`confirm = <fn>`)"
                } else {
                    "its cancel (`cancel = <fn>`)"
                };
                cx.error_spanned_by(
                    meta,
                    format!("a try-confirm-cancel step needs {missing}: write {SHAPE}"),
                );
            }
            None
        }
    }
}

/// `confirm_retry`, `confirm_timeout`, `cancel_retry` or `cancel_timeout`.
pub(super) fn parse_option(cx: &Ctxt, options: &mut TccOptions, name: &str, meta: &Meta) {
    let duplicate = || {
        cx.error_spanned_by(
            meta,
            format!("duplicate step option `{name}`: remove one of them"),
        )
    };
    match name {
        "confirm_retry" | "cancel_retry" => {
            let slot = if name == "confirm_retry" {
                &mut options.confirm_retry
            } else {
                &mut options.cancel_retry
            };
            let retry = parse_retry(cx, name, meta);
            if slot.is_some() {
                duplicate();
            } else if let Some(retry) = retry {
                *slot = Some((retry, meta.to_token_stream()));
            }
        }
        _ => {
            let slot = if name == "confirm_timeout" {
                &mut options.confirm_timeout
            } else {
                &mut options.cancel_timeout
            };
            let value = parse_timeout(cx, name, meta);
            if slot.is_some() {
                duplicate();
            } else if let Some(d) = value {
                *slot = Some((d, meta.to_token_stream()));
            }
        }
    }
}
