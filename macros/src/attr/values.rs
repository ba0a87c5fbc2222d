//! The values inside step options: counts, durations and retry policies, and
//! the "did you mean" hint for a misspelt key.

use std::time::Duration;

use quote::ToTokens;
use syn::punctuated::Punctuated;
use syn::{Expr, Lit, Meta, MetaList, Token};

use super::Retry;
use crate::ctxt::Ctxt;

const RETRY_KEYS: &str = "`max`, `backoff`, `max_backoff`";
const RETRY_WORDS: &[&str] = &["max", "backoff", "max_backoff"];

/// `" (did you mean `retry`?)"` when `written` is a near miss of one of `valid`.
pub(super) fn did_you_mean(written: &str, valid: &[&str]) -> String {
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

pub(super) fn parse_retry(cx: &Ctxt, name: &str, meta: &Meta) -> Option<Retry> {
    match meta {
        Meta::NameValue(nv) => parse_u32(cx, name, &nv.value).map(|max| Retry {
            max: Some(max),
            max_tokens: Some(meta.to_token_stream()),
            ..Retry::default()
        }),
        Meta::List(list) => parse_retry_list(cx, name, meta, list),
        Meta::Path(_) => {
            cx.error_spanned_by(
                meta,
                format!("`{name}` needs a count or a policy: write `{name} = 3` or `{name}(max = 3, backoff = \"10ms\")`"),
            );
            None
        }
    }
}

/// `retry(max = .., backoff = .., max_backoff = ..)`: every key is read, so
/// that each mistake is reported, before the policy is given up on.
fn parse_retry_list(cx: &Ctxt, name: &str, meta: &Meta, list: &MetaList) -> Option<Retry> {
    let inner = match list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated) {
        Ok(inner) => inner,
        Err(e) => {
            cx.push(syn::Error::new(
                e.span(),
                format!(
                    "{e}; expected `{name}(max = 3, backoff = \"10ms\", max_backoff = \"5s\")`"
                ),
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
        ok &= parse_retry_key(cx, name, &item, &mut retry);
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

/// One `key = value` of a retry policy into `retry`; `false` if the key itself
/// is wrong (a bad value is reported, and leaves the key unset).
fn parse_retry_key(cx: &Ctxt, name: &str, item: &Meta, retry: &mut Retry) -> bool {
    let key = item
        .path()
        .get_ident()
        .map(|i| i.to_string())
        .unwrap_or_default();
    let Meta::NameValue(nv) = item else {
        cx.error_spanned_by(
            item,
            format!("expected `key = value` inside `{name}(...)`, with keys {RETRY_KEYS}"),
        );
        return false;
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
            return false;
        }
    };
    if duplicate {
        cx.error_spanned_by(
            item,
            format!("duplicate `{name}` option `{key}`: remove one of them"),
        );
        return false;
    }
    match key.as_str() {
        "max" => {
            retry.max = parse_u32(cx, "max", &nv.value);
            retry.max_tokens = Some(item.to_token_stream());
        }
        "backoff" => retry.backoff = parse_duration(cx, "backoff", &nv.value),
        _ => retry.max_backoff = parse_duration(cx, "max_backoff", &nv.value),
    }
    true
}

pub(super) trait PathString {
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

/// A `*timeout = "<duration>"` option's value: a duration longer than zero,
/// or `None` once the error is reported at the option.
pub(super) fn parse_timeout(cx: &Ctxt, name: &str, meta: &Meta) -> Option<Duration> {
    let Meta::NameValue(nv) = meta else {
        cx.error_spanned_by(
            meta,
            format!("`{name}` takes a duration: write `{name} = \"2s\"`"),
        );
        return None;
    };
    let d = parse_duration(cx, name, &nv.value)?;
    if d.is_zero() {
        cx.error_spanned_by(meta, format!("`{name}` must be longer than zero"));
        return None;
    }
    Some(d)
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
