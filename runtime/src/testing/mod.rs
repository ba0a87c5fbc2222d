//! A test kit for sagas: make every step fail, deliver every step twice, crash at
//! every persisted transition, and check after each run that the right steps
//! were undone and that your invariant holds.
//!
//! Enabled by the `testing` feature (a dev-dependency feature, typically):
//!
//! ```toml
//! [dev-dependencies]
//! sagaflow = { version = "0.1", features = ["testing"] }
//! ```
//!
//! # Guide
//!
//! A saga is only as good as its compensations. [`SagaTest`] takes a closure
//! that builds the saga (with fresh input each time) and an invariant that must
//! hold after every run, and sweeps:
//!
//! - [`failure_sweep`](SagaTest::failure_sweep): once per step and per kind of
//!   fault (an error, a timeout, a panic), the step is made to fail for good. The
//!   kit checks that exactly the completed compensatable steps before it were
//!   compensated, in reverse order, and that the result says so. A `retriable`
//!   step is made to fail twice and must then succeed without anything undone.
//!   For a [`sagaflow::join!`](crate::join) group, each member that can fail is
//!   also made to fail while each sibling's attempt is in flight, the sibling's
//!   attempt then running to its end or failing: the kit checks that the attempt
//!   in flight was not cut short and that no new retry of it started, that the
//!   members that succeeded were undone, then the steps before the group in
//!   reverse order.
//! - [`repeat_sweep`](SagaTest::repeat_sweep): each step, and each compensation,
//!   runs twice, as at-least-once delivery does after a crash. A step that is not
//!   idempotent breaks your invariant here, in a test, not in production.
//! - [`crash_sweep`](SagaTest::crash_sweep): on the durable executor over a
//!   temporary store, the process "dies" right after each persisted transition in
//!   turn; a fresh executor recovers the saga, which must reach a final state with
//!   your invariant holding.
//!
//! Faults are injected through the runtime: your step code does not change. Each
//! sweep runs on its own current-thread tokio runtime with the clock paused, so
//! backoff and timeouts cost no real time; call it from a plain `#[test]`. A
//! failed check returns a [`SweepFailure`] whose message names the run: which step
//! failed and how, and what was and should have been compensated.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use sagaflow::testing::SagaTest;
//! use sagaflow::{saga, step};
//!
//! /// A bank whose state the invariant can read. A handle, as real clients are.
//! #[derive(Clone, Default)]
//! pub struct Bank(Arc<Mutex<i64>>);
//!
//! #[step(compensate = refund)]
//! async fn charge(bank: &Bank, cents: i64) -> Result<i64, String> {
//!     *bank.0.lock().unwrap() += cents;
//!     Ok(cents)
//! }
//!
//! async fn refund(bank: &Bank, _cents: i64, charged: &i64) -> Result<(), String> {
//!     *bank.0.lock().unwrap() -= charged;
//!     Ok(())
//! }
//!
//! #[step(read_only)]
//! async fn check_stock(item: &str) -> Result<u32, String> {
//!     Ok(item.len() as u32)
//! }
//!
//! #[saga]
//! async fn buy(bank: &Bank, item: String) -> Result<u32, String> {
//!     let _ = charge(bank, 500).await?;
//!     let stock = check_stock(&item).await?;
//!     Ok(stock)
//! }
//!
//! let bank = Bank::default();
//! let report = SagaTest::new(|| {
//!     *bank.0.lock().unwrap() = 0;
//!     BuySaga::new(&bank, "lamp".to_owned())
//! })
//! .invariant(|run| {
//!     let balance = *bank.0.lock().unwrap();
//!     let expected = if run.committed() { 500 } else { 0 };
//!     if balance == expected { Ok(()) } else { Err(format!("balance {balance}, expected {expected}")) }
//! })
//! .failure_sweep()
//! .unwrap();
//! assert_eq!(report.runs(), 7); // a clean run, then 2 steps × 3 faults
//! ```
//!
//! A refund that forgot to refund, or a charge that charges twice when delivered
//! twice, fails the sweep with a message such as:
//!
//! ```text
//! failure sweep, run 5 (`check_stock` made to fail by an error): invariant broken: balance 500, expected 0
//! ```

use core::fmt;
use core::future::Future;
use core::sync::atomic::{AtomicBool, Ordering};

mod arms;
mod crash;
mod once;
mod overlap;
mod plan;
mod summary;
mod sweeps;

pub use crate::durable::journal::Fault;
use crate::durable::journal::{Journal, Keep, Overlap, Replayed, Share};
use crate::durable::{DurableSaga, Entry, MissingResource, Resources, StoreError};
use crate::hooks::NoHooks;
use crate::outbox::Message;
use crate::run::Run;
use crate::{FailedCompensation, Phase, RunReport, Saga, SagaError, SagaId, StepKind};
pub use crash::CrashStore;
use once::{paused_runtime, quiet_injected_panics};
pub use plan::Plan;
pub use summary::{RunSummary, SweepFailure, SweepReport};

type Invariant<'a> = Box<dyn FnMut(&RunSummary) -> Result<(), String> + 'a>;

/// Sweeps a saga through its failure cases; see the [module docs](self).
pub struct SagaTest<'a, S> {
    make: Box<dyn FnMut(usize) -> S + 'a>,
    /// How many inputs `make` knows, and the one the current run uses.
    inputs: usize,
    input: usize,
    /// Whether a sweep fails when some arm of a branch was never taken.
    every_arm: bool,
    /// The arms the current sweep's runs took, as (branch, arm).
    taken: std::collections::HashSet<(u32, u32)>,
    /// The last in-memory run: the arms it took, and whether the step made
    /// to fail was attempted.
    last_arms: Vec<(u32, u32)>,
    last_reached: bool,
    invariant: Option<Invariant<'a>>,
    faults: Vec<Fault>,
    /// What the last in-memory run sent.
    sent: Vec<Message>,
    /// Whether the last in-memory run held a group member in flight while a
    /// sibling failed, as its plan asked.
    overlapped: bool,
}

impl<S> fmt::Debug for SagaTest<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SagaTest")
            .field("faults", &self.faults)
            .finish()
    }
}

impl<'a, S> SagaTest<'a, S>
where
    S: DurableSaga<Plan>,
{
    /// A test of the saga that `make` builds. `make` runs before every run of a
    /// sweep: reset the state your invariant reads there.
    pub fn new(mut make: impl FnMut() -> S + 'a) -> Self {
        Self::with_inputs(1, move |_| make())
    }

    /// A test of the saga that `make` builds from each of `inputs` inputs
    /// (`make(0)`, `make(1)`, ..): every sweep runs all its cases once per
    /// input, so that inputs that take different arms of the saga's branches
    /// cover each arm. Case names start with the input's number.
    pub fn with_inputs(inputs: usize, make: impl FnMut(usize) -> S + 'a) -> Self {
        SagaTest {
            make: Box::new(make),
            inputs: inputs.max(1),
            input: 0,
            every_arm: false,
            taken: Default::default(),
            last_arms: Vec::new(),
            last_reached: false,
            invariant: None,
            faults: vec![Fault::Error, Fault::Timeout, Fault::Panic],
            sent: Vec::new(),
            overlapped: false,
        }
    }

    /// A check that must hold after every run ("no money moved unless it
    /// committed"). Return `Err` with what is wrong.
    pub fn invariant(mut self, check: impl FnMut(&RunSummary) -> Result<(), String> + 'a) -> Self {
        self.invariant = Some(Box::new(check));
        self
    }

    /// The faults the failure sweep injects; all three by default.
    pub fn faults(mut self, faults: &[Fault]) -> Self {
        self.faults = faults.to_vec();
        self
    }
}
