//! The trait `#[step]` implements. The declaration types live in `sagaflow-graph`,
//! which the macros share, and are re-exported at the crate root.

use crate::StepInfo;

/// A saga step: implemented by `#[step]` on a hidden type named after the step function.
///
/// Users do not implement this by hand; they write `#[step(...)]` on an `async fn`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `#[step]`: mark it with `#[step(..)]`, or call it inside a step",
    label = "not a `#[step]` function",
    note = "a step is an `async fn` marked `#[sagaflow::step(compensate = ..)]`, or `read_only`, `pivot` or `retriable`"
)]
pub trait Step {
    /// What the step returns on success.
    type Output;
    /// The step's own error type; the runtime records its `Display` text.
    type Error: core::fmt::Display;
    /// The step's declaration.
    const INFO: StepInfo;

    /// Names the step type in value position. Generated code passes it instead of
    /// a turbofish, so that a call to something that is not a step is reported once,
    /// as "expected type, found function", not again as a misplaced constant.
    #[doc(hidden)]
    const __SAGAFLOW_MARKER: core::marker::PhantomData<Self> = core::marker::PhantomData;

    /// True for a try-confirm-cancel step, as `#[step]` writes it. The saga's
    /// generated code tests this constant around each TCC block (a try's
    /// cancel, the confirms at the decision), so that rustc drops the blocks of
    /// a saga without TCC steps from its machine code.
    #[doc(hidden)]
    const __SAGAFLOW_TCC: bool = false;

    /// True only for the stand-in that `#[saga]` defines under a saga function's
    /// name, so that a saga awaited as a step is a compile error that says so.
    #[doc(hidden)]
    const __SAGAFLOW_SAGA: bool = false;

    /// How the step's first attempt is limited in time: `Timed` when it has a
    /// `timeout`, `Untimed` otherwise, as `#[step]` writes it. A type, not a
    /// test of [`INFO`](Self::INFO): rustc lays the saga's future out before
    /// it folds constants, so only a type keeps the timer out of the future
    /// of a step that has no timeout.
    #[doc(hidden)]
    type __SagaflowLimit: crate::__private::Limit;
}
