//! The attribute macros of [sagaflow](https://docs.rs/sagaflow): `#[step]` and `#[saga]`.
//!
//! Depend on `sagaflow`, which re-exports them; the generated code refers to
//! `::sagaflow` paths. This crate is a thin door: the expansions are plain
//! functions over `proc_macro2` tokens so that unit tests can call them.

mod attr;
mod ctxt;
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
    step::expand(args.into(), item.into()).into()
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
