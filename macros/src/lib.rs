//! The attribute macros of [sagaflow](https://docs.rs/sagaflow): `#[step]` and `#[saga]`.
//!
//! Depend on `sagaflow`, which re-exports them; the generated code refers to
//! `::sagaflow` paths. This crate is a thin door: the expansions are plain
//! functions over `proc_macro2` tokens so that unit tests can call them.

mod attr;
mod compensation;
mod ctxt;
mod graph_doc;
mod saga;
mod step;
mod steps_impl;

use proc_macro::TokenStream;

/// Declares an `async fn` as a saga step and says what undoes it.
///
/// The function must be `async`, return `Result<T, E>` (any `E: Display`), and
/// take no `&mut`. It stays an ordinary function that can be called directly.
///
/// Kinds (exactly one):
///
/// - `compensate = f`: undone by `f` when a later step fails, in reverse order.
///   `f` is an `async fn` taking the step's parameters, in the same order and
///   types, then `&T` (the step's output), and returning `Result<(), E2>` for any
///   `E2: Display`;
/// - `read_only`: no side effect, nothing to undo;
/// - `pivot`: the point of no return; at most one per saga, and every step after
///   it must be `retriable`;
/// - `retriable`: never undone; retried until it succeeds;
/// - `tcc(confirm = c, cancel = x)`: try-confirm-cancel. The step is the try;
///   `c` takes the step's parameters then `&T`, and runs for every tried step
///   once the saga decides to commit (at its pivot, or after its last step),
///   all at once, each retried until it succeeds; `x` takes the step's
///   parameters then `Option<&T>`, and runs on rollback (with `None` after a
///   try that failed, timed out or panicked). Not after the pivot, not in a
///   `sagaflow::join!` group. See the guide's
///   [TCC page](../sagaflow/guide/tcc/index.html).
///
/// Options, combinable with a kind (durations in humantime syntax: `"250ms"`,
/// `"2s"`, `"1m30s"`):
///
/// - `retry = N`: up to `N` retries after the first attempt (default 0; a
///   `retriable` step retries forever);
/// - `retry(max = N, backoff = "10ms", max_backoff = "5s")`: the same with the
///   backoff spelled out, each key optional (default backoff 100 ms, cap 10 s);
///   a `retriable` step takes no `max`. The wait before retry `r` is
///   `min(max_backoff, backoff · 2^(r-1))`, of which a random half is dropped;
/// - `timeout = "2s"`: a limit on each attempt (default none, and no timer);
/// - `compensate_retry = N` / `compensate_retry(max = .., backoff = .., max_backoff = ..)`:
///   how the compensation is retried (default 5 retries, 100 ms doubling to 10 s);
/// - `compensate_timeout = "5s"`: a limit on each attempt of the compensation; one
///   that runs out is retried by `compensate_retry`, then recorded (default none).
///
/// - `confirm_retry(backoff = "..", max_backoff = "..")`, `confirm_timeout = ".."`:
///   how a TCC step's confirm waits between attempts (no `max`: it never gives
///   up) and the limit on each attempt;
/// - `cancel_retry = N` / `cancel_retry(..)`, `cancel_timeout = ".."`: the same as
///   `compensate_retry` and `compensate_timeout`, for a TCC step's cancel.
///
/// `compensate_retry` and `compensate_timeout` need `compensate = f`; the
/// `confirm_*` and `cancel_*` options need `tcc(..)`. A step that
/// fails, times out or panics produced no output, so it is not compensated.
///
/// The guide's [steps page](../sagaflow/guide/steps/index.html) has more, and
/// [the saga body](../sagaflow/guide/body/index.html) how steps are called.
#[proc_macro_attribute]
pub fn step(args: TokenStream, item: TokenStream) -> TokenStream {
    let site = proc_macro::Span::call_site();
    let salt = call_site_salt(&site.file(), site.line(), site.column());
    step::expand_salted(args.into(), item.into(), salt).into()
}

/// Declares the `#[step]` methods of an inherent `impl` block as saga steps.
///
/// ```text
/// #[sagaflow::steps]
/// impl Bank {
///     #[step(compensate = Self::refund)]
///     async fn debit(&self, account: &AccountId, amount: u64) -> Result<Debit, BankError> { .. }
///     async fn refund(&self, account: &AccountId, amount: u64, debit: &Debit) -> Result<(), BankError> { .. }
/// }
/// ```
///
/// A saga calls a step method on one of its resource parameters, as in
/// `let debit = bank.debit(&order.account, order.total).await?;` with
/// `bank: &Bank`. Each `#[step(..)]` takes every kind and option of a free step
/// (see [`step`](macro@step)); the method takes `&self`, and its compensation is
/// a method of the same `impl`, `compensate = Self::refund`, called with the
/// same receiver, the step's arguments and a reference to its output. The
/// compensation's future runs inside the saga's, so a durable saga needs it
/// `Send`, as any step's. The step's name in the journal, the graph and the
/// report is `Bank::debit`. The methods stay callable as before; generic
/// `impl<C: Http> Bank<C>` blocks work too.
#[proc_macro_attribute]
pub fn steps(args: TokenStream, item: TokenStream) -> TokenStream {
    let site = proc_macro::Span::call_site();
    let salt = call_site_salt(&site.file(), site.line(), site.column());
    steps_impl::expand(args.into(), item.into(), salt).into()
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
/// The function must be `async` and return `Result<T, E>`. Its body holds only
/// awaited step calls (`let name = step(args).await?;`, `let _ = ..;` or
/// `step(args).await?;`), typed immutable locals (`let total: u64 = expr;`) and a
/// final `Ok(expr)`, the only place that may move step outputs. A step's
/// arguments are evaluated again for each retry and for its compensation: pass
/// references, `Copy` values or explicit `.clone()`s. Reference parameters are
/// resources (clients, pools); owned parameters are data, persisted by a durable
/// executor, and may not borrow.
///
/// A step method is called on a resource parameter, `bank.debit(&order).await?`
/// (see [`steps`](macro@steps)); an inline step is written in place,
/// `let hold: Hold = sagaflow::inline!(name, kind, async { .. })?;`. A saga may
/// have type parameters (`checkout<P: Payments>(payer: &Payer<P>, ..)`): the
/// generated type is generic too, and an owned input of a generic type needs a
/// `DeserializeOwned` bound.
///
/// From `async fn book_trip(..) -> Result<T, E>` it generates `book_trip(..)`,
/// with the same parameters, returning `Result<T, SagaError<E>>` (awaiting it runs
/// the saga in memory), and the type `BookTripSaga`, with `BookTripSaga::new(..)`
/// (the saga as a value, for a `Runner` or a durable executor) and
/// `BookTripSaga::graph()`. The function's rustdoc gets a "Saga graph" section.
///
/// Option: `#[saga(name = OtherSaga)]` names the generated type.
///
/// The guide's [body page](../sagaflow/guide/body/index.html) has the rules and
/// [errors page](../sagaflow/guide/errors/index.html) what fails to compile.
#[proc_macro_attribute]
pub fn saga(args: TokenStream, item: TokenStream) -> TokenStream {
    saga::expand(args.into(), item.into()).into()
}
