//! Sagas as declarations.
//!
//! Mark async service functions with [`#[step]`](step), write the orchestration as one
//! [`#[saga]`](saga) async function, and get a generated state machine that this crate
//! drives forward through the steps and backward through the compensations.
//!
//! ```
//! use sagaflow::{saga, step, SagaError};
//!
//! #[derive(Debug)]
//! struct Booking(u32);
//!
//! #[step(compensate = cancel_seat)]
//! async fn reserve_seat(flight: &str) -> Result<Booking, String> {
//!     Ok(Booking(42))
//! }
//!
//! async fn cancel_seat(flight: &str, booking: &Booking) -> Result<(), String> {
//!     println!("cancelled seat {} on {flight}", booking.0);
//!     Ok(())
//! }
//!
//! #[step(pivot)]
//! async fn charge_card(amount: u64) -> Result<u64, String> {
//!     if amount > 1000 { Err(format!("{amount} is over the limit")) } else { Ok(amount) }
//! }
//!
//! #[saga]
//! async fn book(flight: String, amount: u64) -> Result<u32, String> {
//!     let seat = reserve_seat(&flight).await?;
//!     let _ = charge_card(amount).await?;
//!     Ok(seat.0)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! assert_eq!(book("LH123".into(), 300).await.unwrap(), 42);
//!
//! let err: SagaError<String> = book("LH123".into(), 5000).await.unwrap_err();
//! assert_eq!(err.failed_step(), "charge_card");
//! assert_eq!(err.undone(), ["reserve_seat"]);
//! assert!(err.is_compensated());
//! # }
//! ```
//!
//! # Where to read on
//!
//! The [guide] teaches the library page by page, each with examples that run:
//!
//! 1. [Setup](guide::setup): the dependencies to add (tokio is needed), and the
//!    features.
//! 2. [Your first saga](guide::first_saga): the travel saga, step by step.
//! 3. [Declaring steps](guide::steps): the kinds (`compensate = f`, `read_only`,
//!    `pivot`, `retriable`), the options (`retry`, `timeout`, `compensate_retry`,
//!    `compensate_timeout`), the step context and idempotency keys.
//! 4. [The saga body](guide::body): what a body may hold, why arguments are
//!    evaluated again, resources and data, what `#[saga]` generates.
//! 5. [Running, failing and errors](guide::errors): compensation order,
//!    [`SagaError`], reports, [`Hooks`], spans, and what fails to compile.
//! 6. [Durable execution](guide::durability): [`durable::Executor`] over a SQLite
//!    file, recovery, and what is guaranteed.
//! 7. [Testing your sagas](guide::testing): the test kit, `sagaflow::testing`.
//! 8. [Saga graphs](guide::graphs): pictures in rustdoc, Mermaid, DOT and SVG.
//! 9. [The transactional outbox](guide::outbox): [`send!`] and
//!    [`StepContext::send`], the relay and its sinks.
//! 10. [Branches](guide::branches): `if` and `match` over saga data, the arm
//!     taken recorded and followed on recovery.
//!
//! # Features
//!
//! - `sqlite` (default): [`durable::SqliteStore`], the embedded store, with
//!   SQLite compiled in.
//! - `testing`: the test kit `sagaflow::testing` (failure, repeat and crash
//!   sweeps), for `[dev-dependencies]`.
//! - `postgres`: `durable::PgStore`, several worker processes over one
//!   PostgreSQL server.
//! - `redis`: `outbox::RedisStreams`, the [`outbox`]'s sink for Redis Streams.
//! - [`barrier`], for a TCC participant's own database: `barrier::SqliteBarrier`
//!   with `sqlite`, `barrier::PgBarrier` with `postgres`.
#![warn(missing_docs)]
// Feature badges on docs.rs, whose nightly rustdoc sets `docsrs`
// (`[package.metadata.docs.rs]`); stable rustdoc has no `doc(cfg)` yet.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod barrier;
mod context;
pub mod durable;
mod error;
mod failed_run;
pub mod guide;
mod hooks;
mod inline;
mod join;
pub mod outbox;
mod report;
mod run;
mod saga;
mod step;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use context::{IdempotencyKey, ParseSagaIdError, Phase, SagaId, StepContext};
pub use error::{FailedCompensation, SagaError, StepFailure};
pub use failed_run::FailedRun;
pub use hooks::{Hooks, NoHooks};
pub use report::{Outcome, RunOutcome, RunReport, StepRecord};
pub use run::CompensationResult;
pub use saga::{Runner, Saga};
pub use sagaflow_graph::{ArmInfo, BranchInfo, RetryPolicy, SagaGraph, StepInfo, StepKind};
pub use step::Step;

#[doc(inline)]
pub use sagaflow_macros::{saga, step, steps};

/// Sends a message from a [`saga`] body, at the saga's commit: it leaves only
/// if every step succeeded, in the same commit that ends the saga (see
/// [`outbox`]).
///
/// ```text
/// sagaflow::send!("audit", &AuditEvent::checkout(&order, &payment));
/// sagaflow::send!("notifications", key = order.id, &Notice::paid(&order));
/// ```
///
/// The destination is a `&str` (or anything that is `AsRef<str>`), the key
/// anything `Display`, the message anything `serde::Serialize`; all three are
/// made from the saga's values once its last step has succeeded. A message
/// that cannot be serialized, or a sink that refuses it in memory, fails the
/// saga there: every step is compensated. Inside a step, send with
/// [`StepContext::send`] instead, committed with that step's outcome.
///
/// This macro is read by `#[saga]`; anywhere else it is a compile error.
#[macro_export]
macro_rules! send {
    ($($tokens:tt)*) => {
        ::core::compile_error!(
            "`sagaflow::send!` is a statement of a `#[saga]` body, sent at the saga's commit; inside a step, send with `sagaflow::StepContext::send(destination, &message)`"
        )
    };
}

/// Not public API: what the generated code needs. It changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::durable::journal::{
        InputMap, Journal, Keep, NoJournal, Share, Shareable, ThreadSafe,
    };
    pub use crate::outbox::in_run::Sendable;
    pub use crate::run::{
        Both, CompensationError, Confirmed, Group, JoinAll, Joinable, Joined, Limit, Member, Run,
        Timed, Undo, Untimed,
    };
    pub use core::time::Duration;
    pub use sagaflow_macros::saga_graph_doc;

    use crate::{Saga, SagaError};

    /// What a step may return: `Result<T, E>`, under any alias.
    #[diagnostic::on_unimplemented(
        message = "a step must return `Result<T, E>`, not `{Self}`",
        label = "not a `Result`"
    )]
    pub trait StepResult {
        /// `T`.
        type Ok;
        /// `E`.
        type Err;
    }

    impl<T, E> StepResult for Result<T, E> {
        type Ok = T;
        type Err = E;
    }

    /// The step behind a `#[step]` method of `Self`: implemented by
    /// `#[sagaflow::steps]` for each one, under `NAME`, the FNV-1a hash of the
    /// method's name, so that `#[saga]`, which sees only `bank.debit(..)` and
    /// `bank: &Bank`, can name the step as `MethodStep<Bank, NAME>`.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` has no `#[step]` method of this name",
        label = "not a step method of `{Self}`",
        note = "a method is a saga step when it is marked `#[step(..)]` inside an `impl` block, or a trait, marked `#[sagaflow::steps]`"
    )]
    pub trait StepMethod<const NAME: u64> {
        /// The hidden type that implements `Step` for the method.
        type Step: crate::Step;
        /// The method's parameters after `&self`, as a tuple.
        type Args<'a>
        where
            Self: 'a;
        /// Calls the method's compensation with the receiver, the step's
        /// arguments and its output.
        fn __sagaflow_compensate<'a>(
            &'a self,
            args: Self::Args<'a>,
            output: &'a <Self::Step as crate::Step>::Output,
        ) -> impl core::future::Future<Output = Result<(), CompensationError>> + 'a;
        /// Calls the confirm of a TCC step method with the receiver, the
        /// step's arguments and its output; nothing for another kind.
        fn __sagaflow_confirm<'a>(
            &'a self,
            args: Self::Args<'a>,
            output: &'a <Self::Step as crate::Step>::Output,
        ) -> impl core::future::Future<Output = Result<(), CompensationError>> + 'a;
        /// Calls the cancel of a TCC step method with the receiver, the
        /// step's arguments and its output if the try returned one; nothing
        /// for another kind.
        fn __sagaflow_cancel<'a>(
            &'a self,
            args: Self::Args<'a>,
            output: Option<&'a <Self::Step as crate::Step>::Output>,
        ) -> impl core::future::Future<Output = Result<(), CompensationError>> + 'a;
    }

    /// The step type of method `NAME` of `T` (see [`StepMethod`]).
    pub type MethodStep<T, const NAME: u64> = <T as StepMethod<NAME>>::Step;

    /// Runs a saga in memory with default policies and no hooks.
    // Not an `async fn`: that would be one more layer in every saga's
    // future, keeping the saga's inputs a second time.
    pub fn run_in_memory<S: Saga>(
        saga: S,
    ) -> impl core::future::Future<Output = Result<S::Output, SagaError<S::Error>>> {
        // A static, not a temporary: the temporary would live in every
        // saga's future, sink pointer and all.
        static DEFAULT: crate::Runner = crate::Runner::new();
        DEFAULT.run(saga)
    }

    /// Converts a compensation's result into what the runtime records.
    #[inline]
    pub fn compensation_result<R: crate::CompensationResult>(
        result: R,
    ) -> Result<(), CompensationError> {
        result.into_compensation_result()
    }

    /// A value a step call reads by name, which must survive being read again:
    /// `Reuse: ReusableArgument<T>` holds when `T` is `Copy`.
    ///
    /// The trait's `Self` is the marker [`Reuse`], not the value's type: when a
    /// bound on the value's own type fails and its reference would meet it (a
    /// reference is `Copy`), rustc suggests borrowing instead of showing this
    /// message, and the borrow it suggests leads to a second type error.
    #[diagnostic::on_unimplemented(
        message = "`{T}` is moved into a step, but a step's arguments are evaluated again for each retry and for its compensation",
        label = "moved into the step here",
        note = "pass a reference (`&value`) if the step takes one, a `Copy` value, or an explicit `.clone()`"
    )]
    pub trait ReusableArgument<T> {
        /// Another `T`, as the one read.
        fn again(value: &T) -> T;
    }

    /// The `Self` of [`ReusableArgument`].
    pub struct Reuse;

    // Not recommended, so that rustc shows the message above and its note rather
    // than the `Copy` bound.
    #[diagnostic::do_not_recommend]
    impl<T: Copy> ReusableArgument<T> for Reuse {
        #[inline(always)]
        fn again(value: &T) -> T {
            *value
        }
    }

    /// Reads a saga name passed to a step by value: only `Copy` values can be.
    #[inline(always)]
    pub fn reuse<T>(value: &T) -> T
    where
        Reuse: ReusableArgument<T>,
    {
        <Reuse as ReusableArgument<T>>::again(value)
    }

    /// Ends a saga value that nothing later in the saga reads, where a hand-written
    /// body would let it go: a value the saga holds no longer is dropped there.
    #[inline(always)]
    pub fn release<T>(value: T) {
        drop(value);
    }

    /// Converts a step's failure as `?` would convert its error.
    #[inline(always)]
    pub fn step_error_converts_into_saga_error<S, E: From<S>>(
        failure: crate::StepFailure<S>,
    ) -> crate::StepFailure<E> {
        failure.map_err(E::from)
    }

    /// Keeps the failure of a group's member that failed first (`rank` 0).
    #[inline]
    pub fn first_failure<E>(
        first: &mut Option<crate::StepFailure<E>>,
        rank: u32,
        failure: crate::StepFailure<E>,
    ) {
        if rank == 0 || first.is_none() {
            *first = Some(failure);
        }
    }

    /// The failure a group ends with: its first member's to fail.
    #[cold]
    pub fn group_failure<E>(first: Option<crate::StepFailure<E>>) -> crate::StepFailure<E> {
        first.unwrap_or_else(|| crate::StepFailure::Recovered {
            message: "a group member ended without an output or a failure".to_owned(),
        })
    }

    /// The backward half of a saga's state machine, boxed: one allocation per
    /// failed run, and the saga's future holds a pointer where the state of
    /// its compensations would be.
    #[inline]
    pub fn compensating<T, E, F>(backward: F) -> core::pin::Pin<Box<F>>
    where
        F: core::future::Future<Output = Result<T, SagaError<E>>>,
    {
        Box::pin(backward)
    }

    /// The decision to commit and the confirms of a saga's TCC steps, boxed:
    /// one allocation per saga that has them, and every saga's future holds a
    /// pointer where their state would be.
    #[inline]
    pub fn confirming<F>(confirms: F) -> core::pin::Pin<Box<F>>
    where
        F: core::future::Future<Output = ()>,
    {
        Box::pin(confirms)
    }

    /// The compensation stand-in of a step that has none; never called.
    #[inline]
    pub async fn no_compensation() -> Result<(), CompensationError> {
        Ok(())
    }

    /// The error type of the stand-in step type that `#[saga]` defines under a
    /// saga's name (see `Step::__SAGAFLOW_SAGA`); never built. Its name is what rustc shows where the types of a saga awaited as
    /// a step do not fit.
    pub struct ASagaIsNotAStep<E>(core::marker::PhantomData<E>);

    impl<E> core::fmt::Display for ASagaIsNotAStep<E> {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("a saga awaited as a step")
        }
    }
}
