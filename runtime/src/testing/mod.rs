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
mod overlap;
mod sweeps;

pub use crate::durable::journal::Fault;
use crate::durable::journal::{Journal, Keep, Overlap, Replayed, Share};
use crate::durable::{DurableSaga, Entry, MissingResource, Resources, StoreError};
use crate::hooks::NoHooks;
use crate::outbox::Message;
use crate::run::Run;
use crate::{FailedCompensation, Phase, RunReport, Saga, SagaError, SagaId, StepKind};
pub use crash::CrashStore;

/// What one run of a sweep did, for the invariant to judge.
#[derive(Debug, Clone)]
pub struct RunSummary {
    case: String,
    committed: bool,
    failed_step: Option<String>,
    undone: Vec<String>,
    failed_compensations: Vec<FailedCompensation>,
    report: Option<RunReport>,
    messages: Vec<Message>,
}

impl RunSummary {
    /// What this run did to the saga, in words (`"`charge` made to fail by a timeout"`).
    pub fn case(&self) -> &str {
        &self.case
    }

    /// Whether every step succeeded.
    pub fn committed(&self) -> bool {
        self.committed
    }

    /// The step that failed for good, if one did.
    pub fn failed_step(&self) -> Option<&str> {
        self.failed_step.as_deref()
    }

    /// The steps undone, in the order their compensations ran.
    pub fn undone(&self) -> &[String] {
        &self.undone
    }

    /// The compensations that failed for good.
    pub fn failed_compensations(&self) -> &[FailedCompensation] {
        &self.failed_compensations
    }

    /// What the run sent through the outbox, in order: what its steps and
    /// compensations sent with their outcomes, and what its body sent with its
    /// commit. In the crash sweep, the messages stored with the saga after
    /// recovery.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    fn with_messages(mut self, messages: Vec<Message>) -> Self {
        self.messages = messages;
        self
    }

    /// The run's report, when the run was in memory.
    pub fn report(&self) -> Option<&RunReport> {
        self.report.as_ref()
    }

    fn of<T, E>(case: String, result: &Result<T, SagaError<E>>) -> Self {
        match result {
            Ok(_) => RunSummary {
                case,
                committed: true,
                failed_step: None,
                undone: Vec::new(),
                failed_compensations: Vec::new(),
                report: None,
                messages: Vec::new(),
            },
            Err(e) => RunSummary {
                case,
                committed: false,
                failed_step: Some(e.failed_step().to_owned()),
                undone: e.undone().iter().map(|s| (*s).to_owned()).collect(),
                failed_compensations: e.failed_compensations().to_vec(),
                report: Some(e.report().clone()),
                messages: Vec::new(),
            },
        }
    }
}

/// A sweep found a broken case. Its `Display` names the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepFailure {
    message: String,
}

impl SweepFailure {
    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SweepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SweepFailure {}

/// What is wrong with a run's messages, whatever the saga: a message sent
/// twice (the same id), or a body message of a saga that did not commit.
fn messages_broken(summary: &RunSummary) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    for message in &summary.messages {
        if !seen.insert(message.id.as_str()) {
            return Some(format!("message {} was sent twice", message.id));
        }
        if !summary.committed && message.id.contains("-end-") {
            return Some(format!(
                "message {} to `{}` was sent by the saga's body, but the saga did not commit",
                message.id, message.destination
            ));
        }
    }
    None
}

/// What a sweep ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    cases: Vec<String>,
    /// The arms of the saga's branches that no run took.
    untaken_arms: Vec<String>,
}

impl SweepReport {
    /// How many runs the sweep made.
    pub fn runs(&self) -> usize {
        self.cases.len()
    }

    /// What each run did, in order.
    pub fn cases(&self) -> &[String] {
        &self.cases
    }
}

impl fmt::Display for SweepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} runs, all as expected:", self.cases.len())?;
        for case in &self.cases {
            writeln!(f, "  {case}")?;
        }
        for arm in &self.untaken_arms {
            writeln!(f, "  no run took {arm}")?;
        }
        Ok(())
    }
}

/// The in-memory journal of a sweep run: records nothing, injects its plan.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct Plan {
    /// Make every attempt of this step fail with this fault (for the first `times`
    /// attempts, or all of them if `None`).
    fail: Option<(u32, Fault, Option<u32>)>,
    /// Run this step or compensation twice.
    repeat: Option<(u32, Phase)>,
    /// Whether the step made to fail was attempted: a step in an arm the
    /// run did not take never is.
    reached: AtomicBool,
    /// The arms the run took, as (branch, arm).
    arms: Vec<(u32, u32)>,
    /// Make the first attempts of this TCC step's confirm fail (how many).
    fail_confirm: Option<(u32, u32)>,
    /// Group members `(a, b, fails)`: `a` (the member `fail` names) starts
    /// late, and `b`'s first attempt stays in flight until `a` has failed for
    /// good, then ends (with an injected error if `fails`).
    overlap: Option<(u32, u32, bool)>,
    /// Whether `b`'s attempt started before `a` had failed.
    overlapped: AtomicBool,
}

impl Plan {
    fn failing(index: u32, fault: Fault, times: Option<u32>) -> Self {
        Plan {
            fail: Some((index, fault, times)),
            ..Plan::default()
        }
    }
}

impl Journal for Plan {
    const DURABLE: bool = false;
    const FAULTS: bool = true;

    fn replayed(&self, _: u32, _: bool) -> Replayed {
        Replayed::FRESH
    }

    fn record(&self, _: Entry) -> impl Future<Output = Result<(), StoreError>> + Send {
        core::future::ready(Ok(()))
    }

    fn record_all(&self, _: Vec<Entry>) -> impl Future<Output = Result<(), StoreError>> + Send {
        core::future::ready(Ok(()))
    }

    fn chose(&mut self, branch: u32, arm: u32) {
        self.arms.push((branch, arm));
    }

    fn fault(&self, index: u32, phase: Phase, attempt: u32) -> Option<Fault> {
        if self.fail.is_some_and(|(i, ..)| i == index) && phase == Phase::Forward {
            self.reached
                .store(true, core::sync::atomic::Ordering::Relaxed);
        }
        match self.fail {
            Some((i, fault, times))
                if i == index && phase == Phase::Forward && times.is_none_or(|t| attempt <= t) =>
            {
                Some(fault)
            }
            _ => match self.fail_confirm {
                Some((i, times)) if i == index && phase == Phase::Confirm && attempt <= times => {
                    Some(Fault::Error)
                }
                _ => None,
            },
        }
    }

    fn repeats(&self, index: u32, phase: Phase) -> bool {
        self.repeat == Some((index, phase))
    }

    fn overlap(&self, index: u32, attempt: u32) -> Option<Overlap> {
        match self.overlap {
            Some((a, _, _)) if a == index => Some(Overlap::Late),
            Some((_, b, fails)) if b == index && attempt == 1 => Some(Overlap::Held { fails }),
            _ => None,
        }
    }

    fn overlapped(&self, index: u32) {
        if self.overlap.is_some_and(|(_, b, _)| b == index) {
            self.overlapped.store(true, Ordering::Relaxed);
        }
    }
}

impl<T> Keep<T> for Plan {
    fn encode(_: &T) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }
    fn decode(_: &[u8]) -> Result<T, String> {
        Err("a sweep run in memory has nothing stored".to_owned())
    }
}

impl<T: ?Sized> Share<T> for Plan {
    fn get(_: &Resources) -> Result<&T, MissingResource> {
        Err(MissingResource::of::<T>())
    }
}

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

/// Keeps the panics the kit injects out of the test output; every other panic
/// goes to the hook that was there before.
fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !message.starts_with("a panic injected into `") {
                previous(info);
            }
        }));
    });
}

fn paused_runtime() -> Result<tokio::runtime::Runtime, SweepFailure> {
    quiet_injected_panics();
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| SweepFailure {
            message: format!("could not start the sweep's runtime: {e}"),
        })
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

    fn check(&mut self, sweep: &str, run: usize, summary: &RunSummary) -> Result<(), SweepFailure> {
        if let Some(broken) = messages_broken(summary) {
            return Err(SweepFailure {
                message: format!("{sweep}, run {run} ({}): {broken}", summary.case),
            });
        }
        if let Some(invariant) = self.invariant.as_mut()
            && let Err(broken) = invariant(summary)
        {
            return Err(SweepFailure {
                message: format!(
                    "{sweep}, run {run} ({}): invariant broken: {broken}",
                    summary.case
                ),
            });
        }
        Ok(())
    }

    async fn run_once(&mut self, plan: Plan) -> Result<S::Output, SagaError<S::Error>> {
        let saga = (self.make)(self.input);
        let hooks = NoHooks;
        let kept = crate::outbox::sending::Kept::default();
        let id = SagaId::random();
        let span = tracing::Span::none();
        let mut run = Run::with_journal(&hooks, plan, S::NAME, id, S::STEPS, &span, false, true);
        // What the saga sends is kept for the run's summary.
        let sink: std::sync::Arc<dyn crate::outbox::sending::DynSink> =
            std::sync::Arc::new(kept.clone());
        let outgoing = crate::outbox::sending::Outgoing::new(S::NAME, id, Some(sink));
        run.outgoing = Some(outgoing.clone());
        let drive = saga.__sagaflow_drive_with(&mut run);
        let result = crate::outbox::sending::WithOutgoing::new(drive, Some(outgoing)).await;
        self.overlapped = run.journal.overlapped.load(Ordering::Relaxed);
        let plan = core::mem::take(&mut run.journal);
        drop(run);
        self.taken.extend(plan.arms.iter().copied());
        self.last_arms = plan.arms;
        self.last_reached = plan.reached.into_inner();
        self.sent = kept.take();
        result
    }
}
