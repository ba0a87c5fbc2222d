//! Parsing of `#[step(...)]` and `#[saga(...)]` arguments into models that keep
//! the user's spans, with every independent mistake reported.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Lit, Meta, Token};

use crate::ctxt::Ctxt;

mod tcc;

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
const RETRY_KEYS: &str = "`max`, `backoff`, `max_backoff`";
const RETRY_WORDS: &[&str] = &["max", "backoff", "max_backoff"];

/// `" (did you mean `retry`?)"` when `written` is a near miss of one of `valid`.
fn did_you_mean(written: &str, valid: &[&str]) -> String {
    let written_lower = written.to_lowercase();
    valid
        .iter()
        .map(|v| (edit_distance(&written_lower, v), *v))
        .filter(|(d, v)| {
            let common = written_lower
                .chars()
                .zip(v.chars())
                .take_while(|(a, b)| a == b)
                .count();
            *d <= (v.len() / 3).max(1) || common >= v.len().min(4)
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| format!(" (did you mean `{v}`?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

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
                attr.kind_written = true;
                let kind = match (name.as_str(), &meta) {
                    ("tcc", _) => tcc::parse_kind(cx, &meta),
                    ("compensate", Meta::NameValue(nv)) => match &nv.value {
                        Expr::Path(p) if p.qself.is_none() => {
                            Some(Kind::Compensate(p.path.clone()))
                        }
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
                            &meta,
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
                            &meta,
                            format!("`{word}` takes no value: write just `{word}`"),
                        );
                        None
                    }
                };
                if let Some(kind) = kind {
                    if let Some((previous, _)) = &attr.kind {
                        if previous.word() == kind.word() {
                            cx.error_spanned_by(
                                &meta,
                                format!(
                                    "duplicate step option `{}`: remove one of them",
                                    kind.word()
                                ),
                            );
                        } else {
                            cx.error_spanned_by(
                                &meta,
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
            "confirm_retry" | "confirm_timeout" | "cancel_retry" | "cancel_timeout" => {
                tcc::parse_option(cx, &mut attr.tcc, &name, &meta);
            }
            "retry" | "compensate_retry" => {
                let retry = parse_retry(cx, &name, &meta);
                let slot = if name == "retry" {
                    &mut attr.retry
                } else {
                    &mut attr.compensate_retry
                };
                if slot.is_some() {
                    cx.error_spanned_by(
                        &meta,
                        format!(
                            "duplicate step option `{name}`: keep one, and write a count with a backoff as `{name}(max = 3, backoff = \"10ms\")`"
                        ),
                    );
                } else if let Some(retry) = retry {
                    *slot = Some((retry, meta.to_token_stream()));
                }
            }
            "timeout" | "compensate_timeout" => {
                let what = if name == "timeout" {
                    "a step"
                } else {
                    "a compensation"
                };
                let value = match &meta {
                    Meta::NameValue(nv) => parse_duration(cx, &name, &nv.value),
                    _ => {
                        cx.error_spanned_by(
                            &meta,
                            format!("`{name}` takes a duration: write `{name} = \"2s\"`"),
                        );
                        None
                    }
                };
                let seen = if name == "timeout" {
                    &mut timeout_seen
                } else {
                    &mut compensate_timeout_seen
                };
                if *seen {
                    cx.error_spanned_by(
                        &meta,
                        format!(
                            "duplicate step option `{name}`: {what} has one timeout per attempt, remove one of them"
                        ),
                    );
                }
                *seen = true;
                if let Some(d) = value {
                    if d.is_zero() {
                        cx.error_spanned_by(&meta, format!("`{name}` must be longer than zero"));
                    } else if name == "timeout" {
                        attr.timeout = Some(d);
                    } else {
                        attr.compensate_timeout = Some((d, meta.to_token_stream()));
                    }
                }
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

pub(super) fn parse_retry(cx: &Ctxt, name: &str, meta: &Meta) -> Option<Retry> {
    match meta {
        Meta::NameValue(nv) => parse_u32(cx, name, &nv.value).map(|max| Retry {
            max: Some(max),
            max_tokens: Some(meta.to_token_stream()),
            ..Retry::default()
        }),
        Meta::List(list) => {
            let inner = match list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
            {
                Ok(inner) => inner,
                Err(e) => {
                    cx.push(syn::Error::new(
                        e.span(),
                        format!("{e}; expected `{name}(max = 3, backoff = \"10ms\", max_backoff = \"5s\")`"),
                    ));
                    return None;
                }
            };
            if inner.is_empty() {
                cx.error_spanned_by(
                    meta,
                    format!(
                        "`{name}()` sets nothing: write `{name} = 3` or `{name}(max = 3, backoff = \"10ms\")`, or remove it"
                    ),
                );
                return None;
            }
            let mut retry = Retry::default();
            let mut ok = true;
            for item in inner {
                let key = item
                    .path()
                    .get_ident()
                    .map(|i| i.to_string())
                    .unwrap_or_default();
                let Meta::NameValue(nv) = &item else {
                    cx.error_spanned_by(
                        &item,
                        format!(
                            "expected `key = value` inside `{name}(...)`, with keys {RETRY_KEYS}"
                        ),
                    );
                    ok = false;
                    continue;
                };
                let duplicate = match key.as_str() {
                    "max" => retry.max.is_some(),
                    "backoff" => retry.backoff.is_some(),
                    "max_backoff" => retry.max_backoff.is_some(),
                    _ => {
                        cx.error_spanned_by(
                            item.path(),
                            format!(
                                "unknown `{name}` option `{}`{}; expected one of {RETRY_KEYS}",
                                item.path().to_token_stream_string(),
                                did_you_mean(&key, RETRY_WORDS)
                            ),
                        );
                        ok = false;
                        continue;
                    }
                };
                if duplicate {
                    cx.error_spanned_by(
                        &item,
                        format!("duplicate `{name}` option `{key}`: remove one of them"),
                    );
                    ok = false;
                    continue;
                }
                match key.as_str() {
                    "max" => {
                        retry.max = parse_u32(cx, "max", &nv.value);
                        retry.max_tokens = Some(item.to_token_stream());
                    }
                    "backoff" => retry.backoff = parse_duration(cx, "backoff", &nv.value),
                    _ => retry.max_backoff = parse_duration(cx, "max_backoff", &nv.value),
                }
            }
            if let (Some(b), Some(m)) = (retry.backoff, retry.max_backoff)
                && b > m
            {
                cx.error_spanned_by(
                        list,
                        format!(
                            "`backoff` ({}) is longer than `max_backoff` ({}); the first wait cannot exceed the cap",
                            humantime::format_duration(b),
                            humantime::format_duration(m)
                        ),
                    );
                ok = false;
            }
            ok.then_some(retry)
        }
        Meta::Path(_) => {
            cx.error_spanned_by(
                meta,
                format!("`{name}` needs a count or a policy: write `{name} = 3` or `{name}(max = 3, backoff = \"10ms\")`"),
            );
            None
        }
    }
}

trait PathString {
    fn to_token_stream_string(&self) -> String;
}

impl PathString for syn::Path {
    fn to_token_stream_string(&self) -> String {
        quote::ToTokens::to_token_stream(self)
            .to_string()
            .replace(' ', "")
    }
}

fn parse_u32(cx: &Ctxt, name: &str, value: &Expr) -> Option<u32> {
    if let Expr::Lit(syn::ExprLit {
        lit: Lit::Int(int), ..
    }) = value
        && let Ok(n) = int.base10_parse::<u32>()
    {
        return Some(n);
    }
    if let Expr::Lit(syn::ExprLit {
        lit: Lit::Int(int), ..
    }) = value
        && int.base10_parse::<u128>().is_ok()
    {
        cx.error_spanned_by(
            value,
            format!(
                "`{}` retries is too many for `{name}` (at most {}); a step that must never give up is `retriable`",
                int.base10_digits(),
                u32::MAX
            ),
        );
        return None;
    }
    cx.error_spanned_by(
        value,
        format!(
            "`{name}` takes a whole number of retries after the first attempt, such as `{name} = 3`"
        ),
    );
    None
}

pub(super) fn parse_duration(cx: &Ctxt, name: &str, value: &Expr) -> Option<Duration> {
    let Expr::Lit(syn::ExprLit {
        lit: Lit::Str(s), ..
    }) = value
    else {
        cx.error_spanned_by(
            value,
            format!(
                "`{name}` takes a duration in a string, such as `{name} = \"500ms\"` or `\"2s\"`"
            ),
        );
        return None;
    };
    if s.value().trim_start().starts_with('-') {
        cx.error_spanned_by(
            s,
            format!("`{name}` cannot be negative: write a duration such as \"500ms\" or \"2s\""),
        );
        return None;
    }
    match humantime::parse_duration(&s.value()) {
        Ok(d) => Some(d),
        Err(e) => {
            cx.error_spanned_by(
                s,
                format!(
                    "invalid duration {:?} for `{name}`: {e}; write it like \"500ms\", \"2s\" or \"1m 30s\"",
                    s.value()
                ),
            );
            None
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
