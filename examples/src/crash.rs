//! Crashing on purpose, to see recovery at work: a [`Store`] that kills the
//! process (with [`std::process::abort`], as abrupt as a power cut for the
//! process: no destructor runs, nothing is flushed) just before or just after a
//! chosen write.
//!
//! The `travel` binary uses it for `--crash-after` and `--crash-during`; the crash
//! test's child process uses it to die at each kind of transition in turn.
//!
//! ```
//! use sagaflow_examples::crash::{CrashPlan, Moment};
//!
//! let plan: CrashPlan = "after:StepSucceeded:3".parse().unwrap();
//! assert_eq!(plan.moment, Moment::After);
//! assert_eq!(plan.kind, "StepSucceeded");
//! assert_eq!(plan.nth, 3);
//! assert!("after:Lunch:1".parse::<CrashPlan>().is_err());
//! ```

use core::future::Future;
use std::fmt;
use std::io::Write as _;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use sagaflow::SagaId;
use sagaflow::durable::{Entry, NewSaga, SagaRecord, SagaStatus, Store, StoreError};
use tokio::sync::Notify;

/// The kinds of write a [`CrashPlan`] can name: `Created` (a new saga and its
/// input) and the name of each [`Entry`] variant.
pub const KINDS: &[&str] = &[
    "Created",
    "StepStarted",
    "StepSucceeded",
    "StepFailed",
    "CompensationStarted",
    "CompensationSucceeded",
    "CompensationFailed",
    "Decided",
    "ConfirmStarted",
    "Confirmed",
    "Finished",
    "Intervention",
    "Sent",
    "Arm",
];

/// The name of `entry`'s kind, as in [`KINDS`].
pub fn kind_of(entry: &Entry) -> &'static str {
    match entry {
        Entry::StepStarted { .. } => "StepStarted",
        Entry::StepSucceeded { .. } => "StepSucceeded",
        Entry::StepFailed { .. } => "StepFailed",
        Entry::CompensationStarted { .. } => "CompensationStarted",
        Entry::CompensationSucceeded { .. } => "CompensationSucceeded",
        Entry::CompensationFailed { .. } => "CompensationFailed",
        Entry::Decided => "Decided",
        Entry::ConfirmStarted { .. } => "ConfirmStarted",
        Entry::Confirmed { .. } => "Confirmed",
        Entry::Finished { .. } => "Finished",
        Entry::Intervention { .. } => "Intervention",
        Entry::Sent { .. } => "Sent",
        Entry::Arm { .. } => "Arm",
    }
}

/// The step index an entry is about, if it is about one.
pub fn index_of(entry: &Entry) -> Option<u32> {
    entry.index()
}

/// Whether the process dies before the chosen write reaches the store, or
/// once the store has made it durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// The write is never made.
    Before,
    /// The write is durable, and nothing after it happens.
    After,
}

/// When to crash: at the `nth` write (from 1) of kind `kind` (about step `index`,
/// if given), before or after it. Written `before|after:<kind>:<nth>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashPlan {
    /// Before or after the write.
    pub moment: Moment,
    /// One of [`KINDS`].
    pub kind: &'static str,
    /// Only writes about this step index count, if given.
    pub index: Option<u32>,
    /// Which matching write, from 1.
    pub nth: u64,
}

impl FromStr for CrashPlan {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage = || {
            format!(
                "`{text}` is not a crash plan: write `before|after:<kind>:<n>`, where <kind> is one of {} and <n> counts from 1",
                KINDS.join(", ")
            )
        };
        let mut parts = text.split(':');
        let moment = match parts.next() {
            Some("before") => Moment::Before,
            Some("after") => Moment::After,
            _ => return Err(usage()),
        };
        let kind = parts
            .next()
            .and_then(|k| KINDS.iter().find(|known| **known == k))
            .ok_or_else(usage)?;
        let nth = parts
            .next()
            .and_then(|n| n.parse().ok())
            .filter(|n| *n > 0)
            .ok_or_else(usage)?;
        if parts.next().is_some() {
            return Err(usage());
        }
        Ok(CrashPlan {
            moment,
            kind,
            index: None,
            nth,
        })
    }
}

impl fmt::Display for CrashPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let moment = match self.moment {
            Moment::Before => "before",
            Moment::After => "after",
        };
        write!(f, "{moment}:{}:{}", self.kind, self.nth)?;
        if let Some(index) = self.index {
            write!(f, " (step {index})")?;
        }
        Ok(())
    }
}

struct Armed {
    plan: CrashPlan,
    seen: AtomicU64,
    message: String,
}

impl Armed {
    /// Whether `kind` (about `index`) is the write to crash at; counts it.
    fn hit(&self, kind: &str, index: Option<u32>) -> bool {
        kind == self.plan.kind
            && (self.plan.index.is_none() || self.plan.index == index)
            && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.plan.nth
    }

    fn crash(&self) -> ! {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", self.message);
        let _ = out.flush();
        std::process::abort()
    }
}

/// A [`Store`] that hands every call to `inner` and kills the process at the
/// write its [`CrashPlan`] names (or never, without a plan).
///
/// It also tells whoever waits on [`claimed`](CrashingStore::claimed) when a
/// recovery has read the unfinished sagas, so that new sagas can be held back
/// until then.
pub struct CrashingStore<St> {
    inner: St,
    armed: Option<Arc<Armed>>,
    claimed: Arc<Notify>,
    last_claim: Arc<AtomicUsize>,
}

impl<St: Clone> Clone for CrashingStore<St> {
    fn clone(&self) -> Self {
        CrashingStore {
            inner: self.inner.clone(),
            armed: self.armed.clone(),
            claimed: self.claimed.clone(),
            last_claim: self.last_claim.clone(),
        }
    }
}

impl<St: fmt::Debug> fmt::Debug for CrashingStore<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrashingStore")
            .field("inner", &self.inner)
            .field("plan", &self.armed.as_ref().map(|a| &a.plan))
            .finish()
    }
}

impl<St> CrashingStore<St> {
    /// `inner`, crashing as `plan` says (never, if `None`), printing `message`
    /// to standard output as it does.
    pub fn new(inner: St, plan: Option<CrashPlan>, message: impl Into<String>) -> Self {
        let message = message.into();
        CrashingStore {
            inner,
            armed: plan.map(|plan| {
                Arc::new(Armed {
                    plan,
                    seen: AtomicU64::new(0),
                    message,
                })
            }),
            claimed: Arc::new(Notify::new()),
            last_claim: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The store inside.
    pub fn inner(&self) -> &St {
        &self.inner
    }

    /// Resolves once a [`claim_unfinished`](Store::claim_unfinished) has
    /// answered (at once if one already has and nobody waited for it).
    pub async fn claimed(&self) {
        self.claimed.notified().await;
    }

    /// How many unfinished sagas the last [`claim_unfinished`](Store::claim_unfinished) found.
    pub fn last_claim(&self) -> usize {
        self.last_claim.load(Ordering::SeqCst)
    }

    fn check(&self, kind: &'static str, index: Option<u32>) -> Option<Arc<Armed>> {
        self.armed.clone().filter(|a| a.hit(kind, index))
    }
}

impl<St: Store + Clone> Store for CrashingStore<St> {
    fn create(&self, saga: NewSaga) -> impl Future<Output = Result<(), StoreError>> + Send {
        let hit = self.check("Created", None);
        let inner = self.inner.clone();
        async move {
            if let Some(armed) = hit.as_ref().filter(|a| a.plan.moment == Moment::Before) {
                armed.crash();
            }
            let result = inner.create(saga).await;
            if let (Some(armed), Ok(())) = (hit, &result) {
                armed.crash();
            }
            result
        }
    }

    fn append(
        &self,
        id: SagaId,
        entry: Entry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let hit = self.check(kind_of(&entry), index_of(&entry));
        let inner = self.inner.clone();
        async move {
            if let Some(armed) = hit.as_ref().filter(|a| a.plan.moment == Moment::Before) {
                armed.crash();
            }
            let result = inner.append(id, entry).await;
            if let (Some(armed), Ok(())) = (hit, &result) {
                armed.crash();
            }
            result
        }
    }

    fn claim_unfinished(&self) -> impl Future<Output = Result<Vec<SagaRecord>, StoreError>> + Send {
        let inner = self.inner.clone();
        let claimed = self.claimed.clone();
        let last_claim = self.last_claim.clone();
        async move {
            let result = inner.claim_unfinished().await;
            if let Ok(sagas) = &result {
                last_claim.store(sagas.len(), Ordering::SeqCst);
            }
            claimed.notify_one();
            result
        }
    }

    fn append_if(
        &self,
        id: SagaId,
        status: SagaStatus,
        entry: Entry,
    ) -> impl Future<Output = Result<Result<(), Option<SagaStatus>>, StoreError>> + Send {
        self.inner.append_if(id, status, entry)
    }

    fn claims(&self) -> Option<&sagaflow::durable::Claims> {
        self.inner.claims()
    }

    fn release(&self, id: SagaId) {
        self.inner.release(id)
    }

    fn get(
        &self,
        id: SagaId,
    ) -> impl Future<Output = Result<Option<SagaRecord>, StoreError>> + Send {
        self.inner.get(id)
    }

    fn with_status(
        &self,
        status: SagaStatus,
    ) -> impl Future<Output = Result<Vec<SagaRecord>, StoreError>> + Send {
        self.inner.with_status(status)
    }
}
