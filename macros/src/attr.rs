//! Parsing of `#[step(...)]` and `#[saga(...)]` arguments into models that keep
//! the user's spans, with every independent mistake reported.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Meta, Token};

use crate::ctxt::Ctxt;

mod tcc;
mod values;

use values::{PathString, did_you_mean, parse_retry, parse_timeout};

/// The kind of a step, as written.
#[derive(Clone)]
pub(crate) enum Kind {
    Compensate(syn::Path),
    ReadOnly,
    Pivot,
    Retriable,
    /// `tcc(confirm = c, cancel = x)`: try-confirm-cancel.
    Tcc {
        confirm: syn::Path,
        cancel: syn::Path,
    },
}

impl Kind {
    pub(crate) fn word(&self) -> &'static str {
        match self {
            Kind::Compensate(_) => "compensate",
            Kind::ReadOnly => "read_only",
            Kind::Pivot => "pivot",
            Kind::Retriable => "retriable",
            Kind::Tcc { .. } => "tcc",
        }
    }
}

/// A retry policy as written; unset parts take the runtime's defaults.
#[derive(Default, Clone)]
pub(crate) struct Retry {
    pub(crate) max: Option<u32>,
    pub(crate) backoff: Option<Duration>,
    pub(crate) max_backoff: Option<Duration>,
    /// The `max = N` (or `retry = N`) tokens as written, to point at them.
    pub(crate) max_tokens: Option<TokenStream>,
}

/// `#[step(...)]`.
#[derive(Default)]
pub(crate) struct StepAttr {
    pub(crate) kind: Option<(Kind, Span)>,
    /// Whether a kind was written at all, even a malformed one (which has its
    /// own error): then "no kind" would only repeat it.
    pub(crate) kind_written: bool,
    /// The policy and the option's tokens as written.
    pub(crate) retry: Option<(Retry, TokenStream)>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) compensate_retry: Option<(Retry, TokenStream)>,
    /// The limit on each compensation attempt, and the option's tokens as written.
    pub(crate) compensate_timeout: Option<(Duration, TokenStream)>,
    /// A TCC step's options for its confirm and its cancel, as written.
    pub(crate) tcc: tcc::TccOptions,
}

const STEP_KEYS: &str = "`compensate = <fn>`, `read_only`, `pivot`, `retriable`, `tcc(confirm = <fn>, cancel = <fn>)`, `retry`, `timeout`, `compensate_retry`, `compensate_timeout`, `confirm_retry`, `confirm_timeout`, `cancel_retry`, `cancel_timeout`";
const STEP_WORDS: &[&str] = &[
    "compensate",
    "read_only",
    "pivot",
    "retriable",
    "tcc",
    "retry",
    "timeout",
    "compensate_retry",
    "compensate_timeout",
    "confirm_retry",
    "confirm_timeout",
    "cancel_retry",
    "cancel_timeout",
];
/// The kinds, as the messages list them.
const KINDS: &str =
    "`compensate = <fn>`, `read_only`, `pivot`, `retriable`, `tcc(confirm = <fn>, cancel = <fn>)`";
pub(crate) fn parse_step_attr(cx: &Ctxt, args: TokenStream) -> StepAttr {
    let mut attr = StepAttr::default();
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args) {
        Ok(metas) => metas,
        Err(e) => {
            cx.push(syn::Error::new(
                e.span(),
                format!("{e}; expected a list of step options: {STEP_KEYS}"),
            ));
            return attr;
        }
    };
    let mut timeout_seen = false;
    let mut compensate_timeout_seen = false;
    for meta in metas {
        let key = meta.path();
        let Some(name) = key.get_ident().map(|i| i.to_string()) else {
            cx.error_spanned_by(
                key,
                format!("unknown step option; expected one of {STEP_KEYS}"),
            );
            continue;
        };
        match name.as_str() {
            "compensate" | "read_only" | "pivot" | "retriable" | "tcc" => {
                kind_option(cx, &mut attr, &name, &meta);
            }
            "confirm_retry" | "confirm_timeout" | "cancel_retry" | "cancel_timeout" => {
                tcc::parse_option(cx, &mut attr.tcc, &name, &meta);
            }
            "retry" | "compensate_retry" => retry_option(cx, &mut attr, &name, &meta),
            "timeout" | "compensate_timeout" => {
                let seen = if name == "timeout" {
                    &mut timeout_seen
                } else {
                    &mut compensate_timeout_seen
                };
                timeout_option(cx, &mut attr, &name, &meta, seen);
            }
            _ => {
                let hint = did_you_mean(&name, STEP_WORDS);
                // A misspelt kind is a kind written: "no kind" would only repeat it.
                if ["compensate", "read_only", "pivot", "retriable", "tcc"]
                    .iter()
                    .any(|kind| hint.contains(&format!("`{kind}`")))
                {
                    attr.kind_written = true;
                }
                cx.error_spanned_by(
                    key,
                    format!("unknown step option `{name}`{hint}; expected one of {STEP_KEYS}"),
                )
            }
        }
    }
    attr
}

/// `compensate = f`, `read_only`, `pivot`, `retriable` or `tcc(..)`: the
/// step's one kind.
fn kind_option(cx: &Ctxt, attr: &mut StepAttr, name: &str, meta: &Meta) {
    attr.kind_written = true;
    let kind = match (name, meta) {
        ("tcc", _) => tcc::parse_kind(cx, meta),
        ("compensate", Meta::NameValue(nv)) => match &nv.value {
            Expr::Path(p) if p.qself.is_none() => Some(Kind::Compensate(p.path.clone())),
            other => {
                cx.error_spanned_by(
                    other,
                    "`compensate` takes the name of the function that undoes this step, as in `compensate = cancel_flight`",
                );
                None
            }
        },
        ("compensate", _) => {
            cx.error_spanned_by(
                meta,
                "`compensate` takes the function that undoes this step: write `compensate = cancel_flight`",
            );
            None
        }
        (word, Meta::Path(_)) => Some(match word {
            "read_only" => Kind::ReadOnly,
            "pivot" => Kind::Pivot,
            _ => Kind::Retriable,
        }),
        (word, _) => {
            cx.error_spanned_by(
                meta,
                format!("`{word}` takes no value: write just `{word}`"),
            );
            None
        }
    };
    if let Some(kind) = kind {
        if let Some((previous, _)) = &attr.kind {
            if previous.word() == kind.word() {
                cx.error_spanned_by(
                    meta,
                    format!(
                        "duplicate step option `{}`: remove one of them",
                        kind.word()
                    ),
                );
            } else {
                cx.error_spanned_by(
                    meta,
                    format!(
                        "a step has one kind, but this one says both `{}` and `{}`; keep one of {KINDS}",
                        previous.word(),
                        kind.word()
                    ),
                );
            }
        } else {
            attr.kind = Some((kind, meta.span()));
        }
    }
}

/// `retry` or `compensate_retry`: a count, or a policy in parentheses.
fn retry_option(cx: &Ctxt, attr: &mut StepAttr, name: &str, meta: &Meta) {
    let retry = parse_retry(cx, name, meta);
    let slot = if name == "retry" {
        &mut attr.retry
    } else {
        &mut attr.compensate_retry
    };
    if slot.is_some() {
        cx.error_spanned_by(
            meta,
            format!(
                "duplicate step option `{name}`: keep one, and write a count with a backoff as `{name}(max = 3, backoff = \"10ms\")`"
            ),
        );
    } else if let Some(retry) = retry {
        *slot = Some((retry, meta.to_token_stream()));
    }
}

/// `timeout` or `compensate_timeout`: a duration longer than zero, once.
fn timeout_option(cx: &Ctxt, attr: &mut StepAttr, name: &str, meta: &Meta, seen: &mut bool) {
    let what = if name == "timeout" {
        "a step"
    } else {
        "a compensation"
    };
    let value = parse_timeout(cx, name, meta);
    if *seen {
        cx.error_spanned_by(
            meta,
            format!(
                "duplicate step option `{name}`: {what} has one timeout per attempt, remove one of them"
            ),
        );
    }
    *seen = true;
    if let Some(d) = value {
        if name == "timeout" {
            attr.timeout = Some(d);
        } else {
            attr.compensate_timeout = Some((d, meta.to_token_stream()));
        }
    }
}

/// `#[saga(...)]`.
#[derive(Default)]
pub(crate) struct SagaAttr {
    pub(crate) name: Option<syn::Ident>,
}

pub(crate) fn parse_saga_attr(cx: &Ctxt, args: TokenStream) -> SagaAttr {
    let mut attr = SagaAttr::default();
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args) {
        Ok(metas) => metas,
        Err(e) => {
            cx.push(syn::Error::new(
                e.span(),
                format!("{e}; expected `#[saga]` or `#[saga(name = MySaga)]`"),
            ));
            return attr;
        }
    };
    for meta in metas {
        match (
            &meta,
            meta.path().get_ident().map(|i| i.to_string()).as_deref(),
        ) {
            (Meta::NameValue(nv), Some("name")) => match &nv.value {
                Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                    if attr.name.is_some() {
                        cx.error_spanned_by(
                            &meta,
                            "duplicate saga option `name`: remove one of them",
                        );
                    } else {
                        attr.name = p.path.get_ident().cloned();
                    }
                }
                other => cx.error_spanned_by(
                    other,
                    "`name` takes the name of the generated type, as in `#[saga(name = BookTrip)]`",
                ),
            },
            (_, Some("name")) => cx.error_spanned_by(
                &meta,
                "`name` takes the name of the generated type, as in `#[saga(name = BookTrip)]`",
            ),
            _ => cx.error_spanned_by(
                meta.path(),
                format!(
                    "unknown saga option `{}`; the only option is `name = TypeName`, as in `#[saga(name = BookTrip)]`",
                    meta.path().to_token_stream_string()
                ),
            ),
        }
    }
    attr
}
