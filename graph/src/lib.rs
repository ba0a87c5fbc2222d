//! The declaration of a [sagaflow](https://docs.rs/sagaflow) saga, step by step, and
//! its pictures.
//!
//! This crate is shared by the runtime, which builds a [`SagaGraph`] from the step
//! table that `#[saga]` writes, and by the macros, which draw the same picture into
//! the saga's rustdoc at expansion time. Users reach it through `sagaflow`, which
//! re-exports everything here.
#![warn(missing_docs)]

mod branch;
mod graph;
mod groups;
mod paths;
mod step;

pub use branch::{ArmInfo, BranchInfo};
pub use graph::SagaGraph;
#[doc(hidden)]
pub use graph::format_duration;
pub use step::{RetryPolicy, StepInfo, StepKind};
