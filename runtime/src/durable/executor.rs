//! The durable executor: starts sagas once their input is durable, and resumes
//! every unfinished saga after a restart.

use core::fmt;
use core::future::Future;
use core::ops::Range;
use core::pin::Pin;
use core::time::Duration;
use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use super::claim::{Claim, TrackedWrite, lock};
use super::fingerprint::{definition_change, fingerprint_branched};
use super::journal::{Durable, Resources};
use super::outcome::{DurableError, Recovered, RecoveredOutcome, RecoveryReport, Stopped};
use super::saga::DurableSaga;
use super::started::Started;
use super::store::{Claims, Entry, NewSaga, SagaRecord, SagaStatus, Store, StoreError};
use crate::hooks::{Hooks, NoHooks};
use crate::run::Run;
use crate::{BranchInfo, SagaError, SagaId, StepInfo};

/// Resumes one saga of a registered type from its record, under its claim.
type RecoverFn<St, H> = fn(
    Executor<St, H>,
    SagaRecord,
    Arc<Claim<St>>,
) -> Pin<Box<dyn Future<Output = Recovered> + Send>>;

struct Registration<St: Store, H> {
    steps: &'static [StepInfo],
    groups: &'static [Range<u32>],
    branches: &'static [BranchInfo],
    recover: RecoverFn<St, H>,
}

// Not derived: a derive would ask `St: Clone` and `H: Clone` for what is a
// table and a function pointer.
impl<St: Store, H> Clone for Registration<St, H> {
    fn clone(&self) -> Self {
        Registration {
            steps: self.steps,
            groups: self.groups,
            branches: self.branches,
            recover: self.recover,
        }
    }
}

/// Runs sagas durably over a [`Store`]: each saga's input is persisted before it
/// starts and each transition before it goes on, so that a process that dies
/// mid-saga loses nothing; [`recover`](Executor::recover) resumes every
/// unfinished saga, forward or compensating.
///
/// An executor is a handle: cheap to clone, its clones share the store, the
/// resources, the hooks and the registered sagas, and it can be moved into
/// spawned tasks, as can [`recover`](Executor::recover)'s future and the
/// [`Started`] handles it gives out. Build it first (`resource`, `register`,
/// `with_hooks`), then clone it; a builder call on an executor that already has
/// clones changes only the executor it is called on.
///
/// ```no_run
/// # use sagaflow::{saga, step};
/// # #[derive(Debug)] struct E; impl std::fmt::Display for E { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("e") } }
/// # impl std::error::Error for E {}
/// # pub struct Bank;
/// # #[step(compensate = refund)] async fn charge(bank: &Bank, cents: u64) -> Result<u64, E> { Ok(cents) }
/// # async fn refund(bank: &Bank, cents: u64, paid: &u64) -> Result<(), E> { Ok(()) }
/// # #[saga] async fn pay(bank: &Bank, cents: u64) -> Result<u64, E> { let paid = charge(bank, cents).await?; Ok(paid) }
/// use sagaflow::durable::{Durability, Executor, SqliteStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = SqliteStore::open("sagas.db", Durability::Full)?;
/// let executor = Executor::new(store)
///     .resource(Bank)                // recovery hands `&Bank` parameters this one
///     .register::<PaySaga>();        // so that recovery knows how to resume it
///
/// // After a restart: finish what the last process left, in the background.
/// let report = tokio::spawn(executor.recover());
///
/// // `start` runs the saga with the references given to `new`; only recovery
/// // uses the registered resources.
/// let bank = Bank;
/// let started = executor.start(PaySaga::new(&bank, 1200)).await?; // input is durable now
/// println!("started {}", started.id());
/// let paid = started.outcome().await??;
/// println!("{}", report.await??);
/// # let _ = paid; Ok(()) }
/// ```
pub struct Executor<St: Store, H = NoHooks> {
    inner: Arc<Shared<St, H>>,
}

/// What the clones of an executor share.
struct Shared<St: Store, H> {
    store: St,
    resources: Resources,
    hooks: Arc<H>,
    registry: HashMap<&'static str, Registration<St, H>>,
    /// Shared with every executor over the same store, if the store keeps it.
    claims: Claims,
    /// How long finished sagas are kept, if the executor purges them itself.
    retention: Option<Duration>,
}

impl<St: Store + Clone, H> Clone for Shared<St, H> {
    fn clone(&self) -> Self {
        Shared {
            store: self.store.clone(),
            resources: self.resources.clone(),
            hooks: Arc::clone(&self.hooks),
            registry: self.registry.clone(),
            claims: self.claims.clone(),
            retention: self.retention,
        }
    }
}

impl<St: Store, H> Clone for Executor<St, H> {
    fn clone(&self) -> Self {
        Executor {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<St: Store + fmt::Debug, H> fmt::Debug for Executor<St, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sagas: Vec<_> = self.inner.registry.keys().collect();
        sagas.sort();
        f.debug_struct("Executor")
            .field("store", &self.inner.store)
            .field("resources", &self.inner.resources)
            .field("sagas", &sagas)
            .finish()
    }
}

impl<St: Store + Clone> Executor<St, NoHooks> {
    /// An executor over `store`, with no resources, no registered sagas, no hooks.
    pub fn new(store: St) -> Self {
        let claims = store.claims().cloned().unwrap_or_default();
        Executor {
            inner: Arc::new(Shared {
                store,
                resources: Resources::new(),
                hooks: Arc::new(NoHooks),
                registry: HashMap::new(),
                claims,
                retention: None,
            }),
        }
    }
}

impl<St: Store + Clone, H: Hooks + Send + Sync + 'static> Executor<St, H> {
    /// What this executor is made of, to change: its own copy if it has clones.
    fn shared_mut(&mut self) -> &mut Shared<St, H> {
        Arc::make_mut(&mut self.inner)
    }

    /// The same executor telling `hooks` of every transition of every saga it runs.
    ///
    /// Sagas registered before this call must be registered again.
    pub fn with_hooks<H2: Hooks + Send + Sync + 'static>(self, hooks: H2) -> Executor<St, H2> {
        Executor {
            inner: Arc::new(Shared {
                store: self.inner.store.clone(),
                resources: self.inner.resources.clone(),
                hooks: Arc::new(hooks),
                registry: HashMap::new(),
                claims: self.inner.claims.clone(),
                retention: self.inner.retention,
            }),
        }
    }

    /// Adds the resource handed to every saga parameter of type `&T` on recovery.
    pub fn resource<T: core::any::Any + Send + Sync>(mut self, value: T) -> Self {
        self.shared_mut().resources.insert(value);
        self
    }

    /// Keeps finished sagas (committed, compensated, resolved) for `keep` after
    /// they ended, then purges them from the store by itself: at every
    /// [`recover`](Executor::recover), and every minute in worker mode. Parked
    /// and running sagas are never purged. A store that cannot purge is told
    /// so in a warning, and the executor goes on.
    pub fn retention(mut self, keep: Duration) -> Self {
        self.shared_mut().retention = Some(keep);
        self
    }

    /// Purges the finished sagas older than the retention, if one is set, and
    /// says how many went. A failure is a warning: retention never stops work.
    pub(crate) async fn apply_retention(&self) -> usize {
        let Some(keep) = self.inner.retention else {
            return 0;
        };
        let Some(before) = std::time::SystemTime::now().checked_sub(keep) else {
            return 0;
        };
        match self.inner.store.purge(before, false).await {
            Ok(purged) => purged.len(),
            Err(error) => {
                tracing::warn!(%error, "retention: the store did not purge its finished sagas");
                0
            }
        }
    }

    /// Registers saga type `S`, so that recovery can resume it by its name.
    pub fn register<S>(mut self) -> Self
    where
        S: DurableSaga<Durable<St>>,
    {
        self.shared_mut().registry.insert(
            S::NAME,
            Registration {
                steps: S::STEPS,
                groups: S::GROUPS,
                branches: S::BRANCHES,
                recover: recover_one::<S, St, H>,
            },
        );
        self
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.inner.store
    }

    /// The resources.
    pub fn resources(&self) -> &Resources {
        &self.inner.resources
    }

    /// Makes `saga`'s input durable and returns a handle to run it. Until the
    /// handle's [`outcome`](Started::outcome) is awaited, the saga waits; if the
    /// handle is dropped or the process dies, [`recover`](Executor::recover) runs it.
    ///
    /// Dropped before it returns, the saga may or may not have been created;
    /// if it was, recovery runs it.
    pub async fn start<S>(&self, saga: S) -> Result<Started<S, St, H>, DurableError>
    where
        S: DurableSaga<Durable<St>>,
    {
        if !self.inner.registry.contains_key(S::NAME) {
            return Err(DurableError::NotRegistered { saga: S::NAME });
        }
        let input = saga
            .__sagaflow_encode_input()
            .map_err(|message| DurableError::Input {
                saga: S::NAME,
                message,
            })?;
        let id = SagaId::time_ordered();
        // Claimed before it exists in the store, so that a `recover` running at the
        // same time never takes it up too; held by the creation until the store
        // answers it, and then by the `Started` handle.
        let claim = Claim::new(&self.inner.claims, self.inner.store.clone(), id);
        let store = self.inner.store.clone();
        let new = NewSaga {
            id,
            saga_type: S::NAME.to_owned(),
            fingerprint: fingerprint_branched(S::STEPS, S::GROUPS, S::BRANCHES),
            input,
        };
        TrackedWrite::new(&claim, async move { store.create(new).await }).await?;
        Ok(Started::new(self.clone(), saga, claim))
    }

    /// Resumes every unfinished saga of the store that this executor is not
    /// already running, all at once, and returns what became of each.
    ///
    /// A saga that was moving forward goes on forward (a step whose intent was
    /// recorded without an outcome runs again, with the same idempotency key); a
    /// saga that was compensating goes on compensating. A saga whose type is not
    /// registered, whose definition changed, or whose resources are missing is
    /// refused and left as it is in the store. Safe to call twice, and while new
    /// sagas run.
    ///
    /// The future owns a clone of the executor, so it can be spawned
    /// (`tokio::spawn(executor.recover())`). Dropped midway, the sagas it had
    /// taken up stay claimed until their last write is durable; the next
    /// recovery finishes them.
    pub fn recover(
        &self,
    ) -> impl Future<Output = Result<RecoveryReport, StoreError>> + Send + use<St, H> {
        let executor = self.clone();
        async move { executor.recover_all().await }
    }

    async fn recover_all(&self) -> Result<RecoveryReport, StoreError> {
        let purged = self.apply_retention().await;
        let mut report = self.recover_running().await?;
        report.purged = purged;
        Ok(report)
    }

    async fn recover_running(&self) -> Result<RecoveryReport, StoreError> {
        let claims = &self.inner.claims;
        let released = lock(claims.set()).released;
        let records = self.inner.store.claim_unfinished().await?;
        let mut report = RecoveryReport::default();
        // Each claim is let go when its saga's run and writes end, or when
        // dropped with this future if `recover` is cancelled: the next recovery
        // takes it up.
        let mut claimed = Vec::new();
        for record in records {
            match Claim::try_new(claims, self.inner.store.clone(), record.id) {
                Some(claim) => claimed.push((claim, record)),
                None => report.already_running += 1,
            }
        }
        if claimed.is_empty() {
            return Ok(report);
        }
        // A run that held one of these ids and ended after the read began (in
        // `start`'s hands, or another recovery's) left a newer journal than the
        // one read, maybe a finished saga. If any run let go of its id since,
        // read again now that the ids are held, and drive each saga from its
        // journal as it is now. One read for all, not one per saga; and none in
        // the usual case (a recovery at startup, with nothing else running).
        // A run lets go only once its last write was answered, so the read
        // again sees all it wrote.
        if lock(claims.set()).released != released {
            let mut by_id: HashMap<SagaId, Arc<Claim<St>>> = claimed
                .into_iter()
                .map(|(claim, record)| (record.id, claim))
                .collect();
            let mut fresh = self.inner.store.with_status(SagaStatus::Running).await?;
            fresh.extend(self.inner.store.with_status(SagaStatus::Confirming).await?);
            claimed = fresh
                .into_iter()
                .filter_map(|record| Some((by_id.remove(&record.id)?, record)))
                .collect();
            // What is left finished (or was parked) since the first read.
        }
        let mut pending: FuturesUnordered<_> = claimed
            .into_iter()
            .map(|(claim, record)| self.recover_claimed(claim, record))
            .collect();
        while let Some(recovered) = pending.next().await {
            report.sagas.push(recovered);
        }
        Ok(report)
    }

    /// The claims of this executor (shared with every executor over its store).
    pub(crate) fn claims(&self) -> &Claims {
        &self.inner.claims
    }

    /// Resumes `record`, read after its id was claimed by this executor.
    pub(crate) fn recover_claimed(
        &self,
        claim: Arc<Claim<St>>,
        record: SagaRecord,
    ) -> Pin<Box<dyn Future<Output = Recovered> + Send>> {
        let registration = match self.inner.registry.get(record.saga_type.as_str()) {
            None => Err(format!(
                "saga {} is of type `{}`, which is not registered on this executor; register it with `Executor::register`",
                record.id, record.saga_type
            )),
            Some(reg) => match definition_change(reg.steps, reg.groups, reg.branches, &record) {
                Some(diff) => Err(format!(
                    "saga {} (`{}`) was started with another definition: {diff}; its record is left as it is",
                    record.id, record.saga_type
                )),
                None => Ok(reg),
            },
        };
        match registration {
            Err(reason) => {
                tracing::error!(saga = %record.saga_type, id = %record.id, %reason, "not recovered");
                Box::pin(core::future::ready(Recovered {
                    id: record.id,
                    saga: record.saga_type,
                    outcome: RecoveredOutcome::Refused(reason),
                }))
            }
            Ok(reg) => (reg.recover)(self.clone(), record, claim),
        }
    }

    /// The sagas whose compensation failed for good, waiting for a person.
    pub async fn parked(&self) -> Result<Vec<SagaRecord>, StoreError> {
        self.inner.store.with_status(SagaStatus::Parked).await
    }

    /// Sends a parked saga back to compensating: its failed compensations run
    /// again at the next [`recover`](Executor::recover), each with its whole
    /// retry budget. The note is kept in its history.
    pub async fn retry_compensations(&self, id: SagaId, note: &str) -> Result<(), DurableError> {
        self.intervene(id, true, note).await
    }

    /// Marks a parked saga resolved (repaired by hand), with a note for the record.
    pub async fn resolve(&self, id: SagaId, note: &str) -> Result<(), DurableError> {
        self.intervene(id, false, note).await
    }

    async fn intervene(&self, id: SagaId, retry: bool, note: &str) -> Result<(), DurableError> {
        // Checked and appended in one step of the store: of two people acting on
        // one parked saga at once, only one is heard.
        let entry = Entry::Intervention {
            retry,
            note: note.to_owned(),
        };
        match self
            .inner
            .store
            .append_if(id, SagaStatus::Parked, entry)
            .await?
        {
            Ok(()) => Ok(()),
            Err(None) => Err(DurableError::UnknownSaga { id }),
            Err(Some(status)) => Err(DurableError::NotParked { id, status }),
        }
    }

    /// Runs `saga` under `claim`, from `journal` (empty for a first run).
    pub(crate) async fn drive<S>(
        &self,
        saga: S,
        claim: Arc<Claim<St>>,
        journal: &[Entry],
    ) -> (Result<S::Output, SagaError<S::Error>>, Option<Stopped>)
    where
        S: DurableSaga<Durable<St>>,
    {
        let id = claim.id();
        let span = crate::saga::saga_span::<S>(id);
        let mut run = Run::with_journal(
            &*self.inner.hooks,
            Durable::new(self.inner.store.clone(), claim, journal),
            S::NAME,
            id,
            S::STEPS,
            &span,
            H::TIMED,
            false,
        );
        let outgoing = crate::outbox::sending::Outgoing::new(S::NAME, id, None);
        run.outgoing = Some(outgoing.clone());
        let drive = saga.__sagaflow_drive_with(&mut run);
        let drive = crate::outbox::sending::WithOutgoing::new(drive, Some(outgoing));
        let result = crate::run::InSpan::new(drive, &span).await;
        let stopped = match (run.take_refusal(), run.take_halt()) {
            (Some(reason), _) => Some(Stopped::Refused(reason)),
            (None, Some(error)) => Some(Stopped::Halted(error)),
            (None, None) => None,
        };
        (result, stopped)
    }
}

fn recover_one<S, St, H>(
    executor: Executor<St, H>,
    record: SagaRecord,
    claim: Arc<Claim<St>>,
) -> Pin<Box<dyn Future<Output = Recovered> + Send>>
where
    S: DurableSaga<Durable<St>>,
    St: Store + Clone,
    H: Hooks + Send + Sync + 'static,
{
    Box::pin(async move {
        let id = record.id;
        let saga = match S::__sagaflow_rebuild(&executor.inner.resources, &record.input) {
            Ok(saga) => saga,
            Err(message) => {
                return Recovered {
                    id,
                    saga: record.saga_type,
                    outcome: RecoveredOutcome::Refused(format!(
                        "saga {id} (`{}`) cannot be rebuilt: {message}; its record is left as it is",
                        S::NAME
                    )),
                };
            }
        };
        let (result, stopped) = executor.drive(saga, claim, &record.journal).await;
        Recovered {
            id,
            saga: record.saga_type,
            outcome: RecoveredOutcome::of(result, stopped),
        }
    })
}
