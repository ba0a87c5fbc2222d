//! The step's declaration, `StepInfo`: as tokens for its `Step` impl, and as a
//! value for the saga's rustdoc picture.

use proc_macro2::TokenStream;
use quote::quote;

use crate::attr::{Kind, Retry, StepAttr};
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
