//! The attribute macros of [sagaflow](https://docs.rs/sagaflow): `#[step]` and `#[saga]`.
//!
//! Depend on `sagaflow`, which re-exports them; the generated code refers to
//! `::sagaflow` paths. This crate is a thin door: the expansions are plain
//! functions over `proc_macro2` tokens so that unit tests can call them.

mod attr;
mod ctxt;
mod graph_doc;
mod saga;
mod step;

use proc_macro::TokenStream;

/// Declares an `async fn` as a saga step and says what undoes it.
///
/// Kinds (exactly one): `compensate = f`, `read_only`, `pivot`, `retriable`.
/// Options: `retry = N`, `retry(max = N, backoff = "10ms", max_backoff = "5s")`,
/// `timeout = "2s"`, `compensate_retry = N`, `compensate_retry(...)`.
///
/// See the `sagaflow` crate's documentation for the full contract.
#[proc_macro_attribute]
pub fn step(args: TokenStream, item: TokenStream) -> TokenStream {
    let site = proc_macro::Span::call_site();
    let salt = call_site_salt(&site.file(), site.line(), site.column());
    step::expand_salted(args.into(), item.into(), salt).into()
}

/// Tells apart the `#[step]` expansions of one crate. File, line and column
/// differ between call sites; the counter tells apart the expansions of one call
/// site, as when a user's `macro_rules!` declares steps in several modules.
fn call_site_salt(file: &str, line: usize, column: usize) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static EXPANSIONS: AtomicU64 = AtomicU64::new(0);
    let expansion = EXPANSIONS.fetch_add(1, Ordering::Relaxed);
    // FNV-1a over the location and the expansion count.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in file
        .bytes()
        .chain(line.to_le_bytes())
        .chain(column.to_le_bytes())
        .chain(expansion.to_le_bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Not public API: renders a saga's rustdoc section from its steps' declarations,
/// fed by the per-step callbacks that `#[step]` defines.
#[doc(hidden)]
#[proc_macro]
pub fn saga_graph_doc(input: TokenStream) -> TokenStream {
    graph_doc::expand(input.into()).into()
}

/// Turns an `async fn` made of step calls into a saga: a generated state machine
/// that runs the steps in order and compensates them in reverse when one fails.
///
/// Option: `#[saga(name = OtherSaga)]` names the generated type.
///
/// See the `sagaflow` crate's documentation for the full contract.
#[proc_macro_attribute]
pub fn saga(args: TokenStream, item: TokenStream) -> TokenStream {
    saga::expand(args.into(), item.into()).into()
}
