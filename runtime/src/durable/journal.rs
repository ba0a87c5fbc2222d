//! The link between a running saga and its store: what the driver writes before
//! each transition, and what it replays after a restart.
//!
//! The driver is generic over a [`Journal`]. In memory it is [`NoJournal`], whose
//! every branch is compiled away (`DURABLE` is a constant). A durable run uses
//! [`Durable`], which writes each intent and outcome to the store and awaits it
//! before the saga goes on, and answers from the persisted journal for the steps
//! a saga had already finished before a restart.

use core::any::Any;
use core::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::claim::{Claim, TrackedWrite};
use super::replay::ReplayIndex;
pub use super::resources::{MissingResource, Resources};
use super::store::{Entry, Store, StoreError};
use crate::Phase;

/// What the journal knows of a step from before a restart.
#[doc(hidden)]
#[derive(Clone)]
pub enum Replayed {
    /// Nothing finished: run it, numbering attempts from `next_attempt`.
    ///
    /// Attempt numbers go on across restarts, and so does the retry budget:
    /// `spent` attempts were started before (since a person's last
    /// `retry_compensations`, for a compensation) and count against it. The
    /// attempt a crash cut short is among them, but its outcome is unknown, so
    /// the driver always makes one more attempt before it looks at the budget.
    Run {
        /// The first attempt number to use.
        next_attempt: u32,
        /// Attempts already made that count against the retry budget.
        spent: u32,
    },
    /// It succeeded with this serialized output.
    Succeeded(Vec<u8>),
    /// It failed for good with this text.
    Failed(String),
}

/// Where the driver records transitions. Not public API.
#[doc(hidden)]
pub trait Journal: Send + Sync {
    /// Whether anything is recorded; `false` compiles every durable branch away.
    const DURABLE: bool;

    /// What happened to step (or compensation, if `compensation`) `index` before.
    fn replayed(&self, index: u32, compensation: bool) -> Replayed;

    /// The arm branch `branch` took before a restart, if it was recorded.
    fn arm(&self, branch: u32) -> Option<u32> {
        let _ = branch;
        None
    }

    /// Notes that branch `branch` took arm `arm` in a run that records nothing
    /// (the test kit's, which reports the arms no run took).
    fn chose(&mut self, branch: u32, arm: u32) {
        let _ = (branch, arm);
    }

    /// What happened to the confirm of TCC step `index` before: `Succeeded`
    /// once it was confirmed, else `Run` (a confirm never fails for good).
    fn replayed_confirm(&self, index: u32) -> Replayed {
        let _ = index;
        Replayed::FRESH
    }

    /// Whether the saga had decided to commit before ([`Entry::Decided`]).
    fn decided(&self) -> bool {
        false
    }

    /// Records a transition; resolves once it is durable.
    fn record(&self, entry: Entry) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records several transitions in one commit; resolves once they are durable.
    fn record_all(
        &self,
        entries: Vec<Entry>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Keeps a step's outcome (and the messages it sent) to write with the
    /// next transition, in one commit: that comes before the saga moves past
    /// the step, and a crash before it runs the step again with the same
    /// idempotency key, as a crash mid-step would.
    fn defer(&mut self, entry: Entry) {
        let _ = entry;
    }

    /// The entries kept by [`defer`](Journal::defer), in order; empty if none.
    fn take_deferred(&mut self) -> Vec<Entry> {
        Vec::new()
    }

    /// Notes the store error that stops the run: from then on nothing runs and
    /// nothing is written, and the saga stays `running` in the store for recovery.
    fn halt(&mut self, error: StoreError) {
        let _ = error;
    }

    /// Whether the run was stopped by a store error.
    fn halted(&self) -> bool {
        false
    }

    /// The store error that stopped the run, taken.
    fn take_halt(&mut self) -> Option<StoreError> {
        None
    }

    /// Notes that the run cannot go on under this code (what the journal holds
    /// no longer reads): it stops as on a store error, nothing more runs and
    /// nothing is written, and recovery reports the saga refused with `reason`.
    fn refuse(&mut self, reason: String) {
        let _ = reason;
    }

    /// Why the run was refused, taken.
    fn take_refusal(&mut self) -> Option<String> {
        None
    }

    /// Whether faults may be injected (the test kit); `false` compiles them away.
    const FAULTS: bool = false;

    /// The fault to inject into attempt `attempt` of step (or compensation) `index`.
    fn fault(&self, index: u32, phase: Phase, attempt: u32) -> Option<Fault> {
        let _ = (index, phase, attempt);
        None
    }

    /// Whether to run this attempt twice, as at-least-once delivery may after a crash.
    fn repeats(&self, index: u32, phase: Phase) -> bool {
        let _ = (index, phase);
        false
    }

    /// How attempt `attempt` of group member `index` is to overlap a sibling's
    /// failure for good (the test kit), if it is.
    fn overlap(&self, index: u32, attempt: u32) -> Option<Overlap> {
        let _ = (index, attempt);
        None
    }

    /// Told when a member's attempt held by [`Overlap::Held`] started while
    /// none of its siblings had failed yet: it was in flight when one did.
    fn overlapped(&self, index: u32) {
        let _ = index;
    }
}

/// How the test kit makes a `sagaflow::join!` member's attempt overlap the
/// failure of a sibling. Not public API.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// The attempt starts once its siblings have been polled, so that their
    /// attempts are in flight when it fails.
    Late,
    /// The attempt stays in flight until a sibling has failed for good, then
    /// runs to its end (`fails: false`), or fails with an injected error
    /// without running the step (`fails: true`).
    Held {
        /// Whether the attempt fails once released.
        fails: bool,
    },
}

/// A fault the test kit injects into a step through the runtime, without any
/// change to the step's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The attempt fails with an error.
    Error,
    /// The attempt times out.
    Timeout,
    /// The attempt panics.
    Panic,
}

impl core::fmt::Display for Fault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Fault::Error => "an error",
            Fault::Timeout => "a timeout",
            Fault::Panic => "a panic",
        })
    }
}

/// Encodes and decodes a value the saga persists. Not public API.
#[diagnostic::on_unimplemented(
    message = "`{T}` cannot be persisted by a durable saga",
    label = "`{T}` is not `Serialize + DeserializeOwned`",
    note = "a durable saga persists its owned inputs, each step's output and its own output with serde: derive `Serialize` and `Deserialize` for `{T}` (a saga run in memory needs neither)"
)]
#[doc(hidden)]
pub trait Keep<T>: Journal {
    /// The value as stored.
    fn encode(value: &T) -> Result<Vec<u8>, String>;
    /// The value back from storage.
    fn decode(bytes: &[u8]) -> Result<T, String>;
}

/// A resource type (the referent of a saga's `&T` parameter) that the executor can
/// hand to a recovered saga. Not public API.
#[diagnostic::on_unimplemented(
    message = "`{T}` cannot be a durable saga's resource",
    label = "not `Send + Sync + 'static`",
    note = "a durable saga's reference parameters are resources, registered on the executor by type (`Executor::resource`) and handed to the saga again on recovery: `{T}` must be a `'static + Send + Sync` type"
)]
#[doc(hidden)]
pub trait Share<T: ?Sized>: Journal {
    /// The registered resource of type `T`.
    fn get(resources: &Resources) -> Result<&T, MissingResource>;
}

/// The in-memory journal: records nothing.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default)]
pub struct NoJournal;

impl Journal for NoJournal {
    const DURABLE: bool = false;

    #[inline(always)]
    fn replayed(&self, _: u32, _: bool) -> Replayed {
        Replayed::FRESH
    }

    #[inline(always)]
    fn record(&self, _: Entry) -> impl Future<Output = Result<(), StoreError>> + Send {
        core::future::ready(Ok(()))
    }

    #[inline(always)]
    fn record_all(&self, _: Vec<Entry>) -> impl Future<Output = Result<(), StoreError>> + Send {
        core::future::ready(Ok(()))
    }
}

impl<T> Keep<T> for NoJournal {
    fn encode(_: &T) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }
    fn decode(_: &[u8]) -> Result<T, String> {
        Err("an in-memory saga has nothing stored".to_owned())
    }
}

impl<T: ?Sized> Share<T> for NoJournal {
    fn get(_: &Resources) -> Result<&T, MissingResource> {
        Err(MissingResource::of::<T>())
    }
}

/// The journal of a durable saga run over store `St`: what
/// [`Executor::register`](super::Executor::register) asks a saga to run under.
///
/// Every write holds a share of the run's claim on the saga until the store
/// has answered it, even when the run's future is dropped meanwhile (see
/// `claim.rs`): recovery never reads a journal that a write still on its way
/// would change.
pub struct Durable<St: Store> {
    store: St,
    claim: Arc<Claim<St>>,
    replay: ReplayIndex,
    deferred: Vec<Entry>,
    halted: Option<StoreError>,
    refused: Option<String>,
}

impl<St: Store + Clone> Durable<St> {
    pub(crate) fn new(store: St, claim: Arc<Claim<St>>, journal: &[Entry]) -> Self {
        Durable {
            store,
            claim,
            replay: ReplayIndex::from(journal),
            deferred: Vec::new(),
            halted: None,
            refused: None,
        }
    }
}

impl<St: Store + Clone> Journal for Durable<St> {
    const DURABLE: bool = true;

    fn replayed(&self, index: u32, compensation: bool) -> Replayed {
        self.replay.get(index, compensation)
    }

    fn arm(&self, branch: u32) -> Option<u32> {
        self.replay.arms.get(&branch).copied()
    }

    fn replayed_confirm(&self, index: u32) -> Replayed {
        match self.replay.confirms.get(&index) {
            None => Replayed::FRESH,
            Some(Replayed::Run {
                next_attempt,
                spent,
            }) => Replayed::Run {
                next_attempt: *next_attempt,
                spent: *spent,
            },
            Some(_) => Replayed::Succeeded(Vec::new()),
        }
    }

    fn decided(&self) -> bool {
        self.replay.decided
    }

    fn record(&self, entry: Entry) -> impl Future<Output = Result<(), StoreError>> + Send {
        let (store, id) = (self.store.clone(), self.claim.id());
        TrackedWrite::new(&self.claim, async move { store.append(id, entry).await })
    }

    fn record_all(
        &self,
        entries: Vec<Entry>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let (store, id) = (self.store.clone(), self.claim.id());
        TrackedWrite::new(
            &self.claim,
            async move { store.append_all(id, entries).await },
        )
    }

    fn defer(&mut self, entry: Entry) {
        self.deferred.push(entry);
    }

    fn take_deferred(&mut self) -> Vec<Entry> {
        core::mem::take(&mut self.deferred)
    }

    fn halt(&mut self, error: StoreError) {
        self.halted.get_or_insert(error);
    }

    fn halted(&self) -> bool {
        self.halted.is_some() || self.refused.is_some()
    }

    fn take_halt(&mut self) -> Option<StoreError> {
        self.halted.take()
    }

    fn refuse(&mut self, reason: String) {
        self.refused.get_or_insert(reason);
    }

    fn take_refusal(&mut self) -> Option<String> {
        self.refused.take()
    }
}

/// A value a durable saga can persist: `Serialize + DeserializeOwned`. Its own
/// trait so that a type that falls short is named with the reason.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be persisted by a durable saga",
    label = "`{Self}` is not `Serialize + DeserializeOwned`",
    note = "a durable saga persists its owned inputs, each step's output and its own output with serde, so that a restarted process can resume it: derive `serde::Serialize` and `serde::Deserialize` for `{Self}` (a saga run in memory needs neither)"
)]
#[doc(hidden)]
pub trait Persistable: Serialize + DeserializeOwned {}

// Not looked through in errors: the message above, with its reason, is the one to read.
#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> Persistable for T {}

/// A type a durable saga can take by reference as a resource. Its own trait so
/// that a type that falls short is named with the reason.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a durable saga's resource",
    label = "not `Send + Sync + 'static`",
    note = "a durable saga's `&T` parameters are resources (clients, pools), registered on the executor by type with `Executor::resource` and handed to the saga again on recovery, from any thread: `{Self}` must be `'static + Send + Sync`"
)]
#[doc(hidden)]
pub trait Shareable: Any + Send + Sync {}

#[diagnostic::do_not_recommend]
impl<T: Any + Send + Sync> Shareable for T {}

/// A value a durable saga holds across its steps (an input, a step's output or
/// error, a local, its own output or error): `Send + Sync`, since the runs of a
/// durable executor can move between threads. Its own trait so that a type that
/// falls short is named with the reason.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be held by a durable saga: it is not `Send + Sync`",
    label = "not `Send + Sync`",
    note = "a durable executor's runs, its recovery and its handles can be spawned on other threads, so what a durable saga holds across a step (its inputs, each step's output and error, its locals, its own output and error) must be `Send + Sync`; a saga run in memory needs neither"
)]
#[doc(hidden)]
pub trait ThreadSafe: Send + Sync {}

#[diagnostic::do_not_recommend]
impl<T: Send + Sync + ?Sized> ThreadSafe for T {}

impl<T: Persistable, St: Store + Clone> Keep<T> for Durable<St> {
    /// Refuses a value whose JSON does not read back as a `T`: recovery would
    /// find it unreadable, after the saga had moved on as if it were stored. The
    /// usual cause is a NaN or infinite float, which serde_json writes as `null`.
    fn encode(value: &T) -> Result<Vec<u8>, String> {
        let bytes = serde_json::to_vec(value).map_err(|e| e.to_string())?;
        if let Err(e) = serde_json::from_slice::<T>(&bytes) {
            let hint = if bytes.windows(4).any(|w| w == b"null") {
                " (serde_json writes a NaN or infinite float as `null`)"
            } else {
                ""
            };
            return Err(format!(
                "its JSON does not read back as `{}`: {e}{hint}",
                core::any::type_name::<T>()
            ));
        }
        Ok(bytes)
    }
    fn decode(bytes: &[u8]) -> Result<T, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

impl<T: Shareable, St: Store + Clone> Share<T> for Durable<St> {
    fn get(resources: &Resources) -> Result<&T, MissingResource> {
        resources.get::<T>()
    }
}

impl Replayed {
    /// Nothing known: the first attempt, with the whole budget.
    pub const FRESH: Replayed = Replayed::Run {
        next_attempt: 1,
        spent: 0,
    };
}

/// The owned inputs of a durable saga as stored: a JSON object by parameter name,
/// readable by a person repairing a saga by hand. Not public API.
#[doc(hidden)]
#[derive(Default)]
pub struct InputMap {
    fields: serde_json::Map<String, serde_json::Value>,
}

impl InputMap {
    /// An empty map.
    pub fn new() -> Self {
        InputMap::default()
    }

    /// The stored map.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        match serde_json::from_slice(bytes) {
            Ok(serde_json::Value::Object(fields)) => Ok(InputMap { fields }),
            Ok(_) => Err("the stored input is not a JSON object".to_owned()),
            Err(e) => Err(format!("the stored input is not valid JSON: {e}")),
        }
    }

    /// Adds the parameter `name`.
    pub fn put<J: Keep<T>, T>(&mut self, name: &str, value: &T) -> Result<(), String> {
        let bytes = J::encode(value).map_err(|e| format!("input `{name}`: {e}"))?;
        let value = serde_json::from_slice(&bytes).map_err(|e| format!("input `{name}`: {e}"))?;
        self.fields.insert(name.to_owned(), value);
        Ok(())
    }

    /// Takes the parameter `name`.
    pub fn take<J: Keep<T>, T>(&mut self, name: &str) -> Result<T, String> {
        let value = self
            .fields
            .remove(name)
            .ok_or_else(|| format!("the stored input has no `{name}`"))?;
        let bytes = serde_json::to_vec(&value).map_err(|e| format!("input `{name}`: {e}"))?;
        J::decode(&bytes).map_err(|e| format!("input `{name}`: {e}"))
    }

    /// The map, stored.
    pub fn finish(self) -> Result<Vec<u8>, String> {
        serde_json::to_vec(&self.fields).map_err(|e| e.to_string())
    }
}
