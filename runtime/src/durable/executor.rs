//! The durable executor: starts sagas once their input is durable, and resumes
//! every unfinished saga after a restart.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tracing::Instrument;

use super::journal::{Durable, Resources};
use super::saga::DurableSaga;
use super::store::{Claims, Entry, NewSaga, Running, SagaRecord, SagaStatus, Store, StoreError};
use crate::hooks::{Hooks, NoHooks};
use crate::run::Run;
use crate::{FailedCompensation, SagaError, SagaId, StepInfo};

type RecoverFn<St, H> =
    for<'a> fn(&'a Executor<St, H>, SagaRecord) -> Pin<Box<dyn Future<Output = Recovered> + 'a>>;

struct Registration<St, H> {
    steps: &'static [StepInfo],
    recover: RecoverFn<St, H>,
}

/// Runs sagas durably over a [`Store`]: each saga's input is persisted before it
/// starts and each transition before it goes on, so that a process that dies
/// mid-saga loses nothing; [`recover`](Executor::recover) resumes every
/// unfinished saga, forward or compensating.
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
///     .resource(Bank)                // `&Bank` parameters get this one
///     .register::<PaySaga>();        // so that recovery knows how to resume it
///
/// // After a restart: finish what the last process left.
/// let report = executor.recover().await?;
/// println!("{report}");
///
/// let started = executor.start(PaySaga::new(&Bank, 1200)).await?; // input is durable now
/// println!("started {}", started.id());
/// let paid = started.outcome().await??;
/// # let _ = paid; Ok(()) }
/// ```
pub struct Executor<St, H = NoHooks> {
    store: St,
    resources: Resources,
    hooks: H,
    registry: HashMap<&'static str, Registration<St, H>>,
    /// Shared with every executor over the same store, if the store keeps it.
    running: Claims,
}

impl<St: fmt::Debug, H> fmt::Debug for Executor<St, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sagas: Vec<_> = self.registry.keys().collect();
        sagas.sort();
        f.debug_struct("Executor")
            .field("store", &self.store)
            .field("resources", &self.resources)
            .field("sagas", &sagas)
            .finish()
    }
}

impl<St: Store + Clone> Executor<St, NoHooks> {
    /// An executor over `store`, with no resources, no registered sagas, no hooks.
    pub fn new(store: St) -> Self {
        let running = store.claims().cloned().unwrap_or_default();
        Executor {
            store,
            resources: Resources::new(),
            hooks: NoHooks,
            registry: HashMap::new(),
            running,
        }
    }
}

impl<St: Store + Clone, H: Hooks> Executor<St, H> {
    /// The same executor telling `hooks` of every transition of every saga it runs.
    ///
    /// Sagas registered before this call must be registered again.
    pub fn with_hooks<H2: Hooks>(self, hooks: H2) -> Executor<St, H2> {
        Executor {
            store: self.store,
            resources: self.resources,
            hooks,
            registry: HashMap::new(),
            running: self.running,
        }
    }

    /// Adds the resource handed to every saga parameter of type `&T`.
    pub fn resource<T: core::any::Any + Send + Sync>(mut self, value: T) -> Self {
        self.resources.insert(value);
        self
    }

    /// Registers saga type `S`, so that recovery can resume it by its name.
    pub fn register<S>(mut self) -> Self
    where
        S: DurableSaga<Durable<St>>,
    {
        self.registry.insert(
            S::NAME,
            Registration {
                steps: S::STEPS,
                recover: recover_one::<S, St, H>,
            },
        );
        self
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.store
    }

    /// The resources.
    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    /// Makes `saga`'s input durable and returns a handle to run it. Until the
    /// handle's [`outcome`](Started::outcome) is awaited, the saga waits; if the
    /// handle is dropped or the process dies, [`recover`](Executor::recover) runs it.
    pub async fn start<S>(&self, saga: S) -> Result<Started<'_, S, St, H>, DurableError>
    where
        S: DurableSaga<Durable<St>>,
    {
        if !self.registry.contains_key(S::NAME) {
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
        // same time never takes it up too. The claim is let go when this future is
        // dropped before it returns (the creation may still commit: then recovery
        // takes the saga up), or later with the `Started` handle.
        let claim = Claim::new(self.running.set(), id);
        self.store
            .create(NewSaga {
                id,
                saga_type: S::NAME.to_owned(),
                fingerprint: fingerprint(S::STEPS),
                input,
            })
            .await?;
        Ok(Started {
            executor: self,
            saga: Some(saga),
            claim,
        })
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
    pub async fn recover(&self) -> Result<RecoveryReport, StoreError> {
        let released = lock(self.running.set()).released;
        let records = self.store.claim_unfinished().await?;
        let mut report = RecoveryReport::default();
        // Each claim is let go when its saga's future ends, or when dropped with
        // this future if `recover` is cancelled: the next recovery takes it up.
        let mut claimed = Vec::new();
        for record in records {
            match Claim::try_new(self.running.set(), record.id) {
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
        if lock(self.running.set()).released != released {
            let mut claims: HashMap<SagaId, Claim<'_>> = claimed
                .into_iter()
                .map(|(claim, record)| (record.id, claim))
                .collect();
            let fresh = self.store.with_status(SagaStatus::Running).await?;
            claimed = fresh
                .into_iter()
                .filter_map(|record| Some((claims.remove(&record.id)?, record)))
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

    /// Resumes `record`, read after its id was claimed by this executor.
    async fn recover_claimed(&self, claim: Claim<'_>, record: SagaRecord) -> Recovered {
        let _claim = claim;
        let registration = match self.registry.get(record.saga_type.as_str()) {
            None => Err(format!(
                "saga {} is of type `{}`, which is not registered on this executor; register it with `Executor::register`",
                record.id, record.saga_type
            )),
            Some(reg) => match definition_change(reg.steps, &record) {
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
                Recovered {
                    id: record.id,
                    saga: record.saga_type,
                    outcome: RecoveredOutcome::Refused(reason),
                }
            }
            Ok(reg) => (reg.recover)(self, record).await,
        }
    }

    /// The sagas whose compensation failed for good, waiting for a person.
    pub async fn parked(&self) -> Result<Vec<SagaRecord>, StoreError> {
        self.store.with_status(SagaStatus::Parked).await
    }

    /// Sends a parked saga back to compensating: its failed compensations run
    /// again at the next [`recover`](Executor::recover). The note is kept in its history.
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
        match self.store.append_if(id, SagaStatus::Parked, entry).await? {
            Ok(()) => Ok(()),
            Err(None) => Err(DurableError::UnknownSaga { id }),
            Err(Some(status)) => Err(DurableError::NotParked { id, status }),
        }
    }

    async fn drive<S>(
        &self,
        saga: S,
        id: SagaId,
        journal: &[Entry],
    ) -> (Result<S::Output, SagaError<S::Error>>, Option<Stopped>)
    where
        S: DurableSaga<Durable<St>>,
    {
        let span = tracing::info_span!("saga", saga = S::NAME, id = %id);
        let mut run = Run::with_journal(
            &self.hooks,
            Durable::new(self.store.clone(), id, journal),
            S::NAME,
            id,
            S::STEPS,
            span.clone(),
            H::TIMED,
            false,
        );
        let result = saga.__sagaflow_drive_with(&mut run).instrument(span).await;
        let stopped = match (run.take_refusal(), run.take_halt()) {
            (Some(reason), _) => Some(Stopped::Refused(reason)),
            (None, Some(error)) => Some(Stopped::Halted(error)),
            (None, None) => None,
        };
        (result, stopped)
    }
}

fn recover_one<S, St, H>(
    executor: &Executor<St, H>,
    record: SagaRecord,
) -> Pin<Box<dyn Future<Output = Recovered> + '_>>
where
    S: DurableSaga<Durable<St>>,
    St: Store + Clone,
    H: Hooks,
{
    Box::pin(async move {
        let id = record.id;
        let saga = match S::__sagaflow_rebuild(&executor.resources, &record.input) {
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
        let (result, stopped) = executor.drive(saga, id, &record.journal).await;
        Recovered {
            id,
            saga: record.saga_type,
            outcome: RecoveredOutcome::of(result, stopped),
        }
    })
}

/// A saga id this executor runs: in `running` from its making until its drop, so
/// that no other run of this executor takes the saga up meanwhile, and out of it
/// however the run ends (finished, failed, or its future dropped).
struct Claim<'a> {
    running: &'a Mutex<Running>,
    id: SagaId,
}

impl<'a> Claim<'a> {
    /// Claims `id`, which nothing else of this executor can hold (a new id).
    fn new(running: &'a Mutex<Running>, id: SagaId) -> Self {
        lock(running).ids.insert(id);
        Claim { running, id }
    }

    /// Claims `id`, or `None` if a run of this executor holds it.
    fn try_new(running: &'a Mutex<Running>, id: SagaId) -> Option<Self> {
        let claimed = lock(running).ids.insert(id);
        // Not `then_some`: a `Claim` made and dropped would let go of the id.
        claimed.then(|| Claim { running, id })
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut running = lock(self.running);
        running.ids.remove(&self.id);
        running.released = running.released.wrapping_add(1);
    }
}

fn lock(running: &Mutex<Running>) -> std::sync::MutexGuard<'_, Running> {
    // Plain ids and a count, each updated in one step: a panic elsewhere cannot
    // leave them half-updated.
    running
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The stored shape of a saga's definition: each step's name, kind and
/// compensation, in order. Retry and timeout policies may change between a
/// saga's start and its recovery; these may not.
pub fn fingerprint(steps: &[StepInfo]) -> String {
    steps
        .iter()
        .map(|s| match s.compensation() {
            Some(c) => format!("{}:{}={}", s.name(), s.kind().keyword(), c),
            None => format!("{}:{}", s.name(), s.kind().keyword()),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// How the stored definition differs from the code's, if it does.
fn definition_change(steps: &[StepInfo], record: &SagaRecord) -> Option<String> {
    let now = fingerprint(steps);
    if now == record.fingerprint {
        return None;
    }
    let then: Vec<&str> = record
        .fingerprint
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    let now: Vec<&str> = now.split(' ').collect();
    for (i, (a, b)) in then.iter().zip(&now).enumerate() {
        if a != b {
            return Some(format!("step {} was `{a}` and is now `{b}`", i + 1));
        }
    }
    Some(format!(
        "it had {} steps and the code now has {}",
        then.len(),
        now.len()
    ))
}

/// A saga whose input is durable, not yet run. Await [`outcome`](Started::outcome)
/// to run it; drop it to leave it to [`Executor::recover`].
pub struct Started<'e, S, St, H = NoHooks> {
    executor: &'e Executor<St, H>,
    saga: Option<S>,
    /// Held until the handle is dropped (after `outcome`, once the run ended).
    claim: Claim<'e>,
}

impl<S, St, H> fmt::Debug for Started<'_, S, St, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Started")
            .field("id", &self.claim.id)
            .finish()
    }
}

impl<S, St, H> Started<'_, S, St, H>
where
    S: DurableSaga<Durable<St>>,
    St: Store + Clone,
    H: Hooks,
{
    /// The saga's id: stable across restarts, the root of its idempotency keys.
    pub fn id(&self) -> SagaId {
        self.claim.id
    }

    /// Runs the saga to its end. The outer `Err` is a store failure, after which
    /// the saga stopped where it was and stays in the store for recovery.
    pub async fn outcome(mut self) -> Result<Result<S::Output, SagaError<S::Error>>, StoreError> {
        let Some(saga) = self.saga.take() else {
            return Err(StoreError::new("this saga was already run"));
        };
        let (result, stopped) = self.executor.drive(saga, self.claim.id, &[]).await;
        match stopped {
            Some(Stopped::Halted(error)) => Err(error),
            // Nothing is replayed on a first run, so nothing can be refused.
            Some(Stopped::Refused(reason)) => Err(StoreError::new(reason)),
            None => Ok(result),
        }
    }
}

/// Why a run stopped before its end, writing nothing more.
enum Stopped {
    /// The store failed.
    Halted(StoreError),
    /// What the journal holds cannot be resumed by this code (a stored step
    /// output no longer reads as its type).
    Refused(String),
}

/// What became of one recovered saga.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Its id.
    pub id: SagaId,
    /// Its saga type's name.
    pub saga: String,
    /// How it ended.
    pub outcome: RecoveredOutcome,
}

/// How a recovered saga ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveredOutcome {
    /// Every step succeeded.
    Committed,
    /// A step failed and every completed step was undone.
    Compensated {
        /// The failed step.
        failed_step: String,
        /// The steps undone, in the order their compensations ran (during this
        /// run or before the restart).
        undone: Vec<String>,
    },
    /// A compensation failed for good: the saga is parked for a person.
    Parked {
        /// The failed step.
        failed_step: String,
        /// The compensations that failed.
        failed: Vec<FailedCompensation>,
    },
    /// The store failed while it ran; it stays unfinished in the store.
    Halted(StoreError),
    /// It was not run, or stopped before it wrote anything: unknown type,
    /// changed definition (including a stored step output that no longer reads
    /// as the step's output type), or missing resource. Its record is untouched.
    Refused(String),
}

impl RecoveredOutcome {
    fn of<T, E>(result: Result<T, SagaError<E>>, stopped: Option<Stopped>) -> Self {
        match stopped {
            Some(Stopped::Halted(error)) => return RecoveredOutcome::Halted(error),
            Some(Stopped::Refused(reason)) => return RecoveredOutcome::Refused(reason),
            None => {}
        }
        match result {
            Ok(_) => RecoveredOutcome::Committed,
            Err(e) if e.is_compensated() => RecoveredOutcome::Compensated {
                failed_step: e.failed_step().to_owned(),
                undone: e.undone().iter().map(|s| (*s).to_owned()).collect(),
            },
            Err(e) => RecoveredOutcome::Parked {
                failed_step: e.failed_step().to_owned(),
                failed: e.failed_compensations().to_vec(),
            },
        }
    }
}

/// What [`Executor::recover`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Each saga it took up, in the order they ended.
    pub sagas: Vec<Recovered>,
    /// Unfinished sagas it left alone because this executor (or another over the
    /// same store, if the store shares its [`Claims`]) was already running them.
    pub already_running: usize,
}

impl RecoveryReport {
    /// How many sagas ended with an outcome matching `f`.
    pub fn count(&self, f: impl Fn(&RecoveredOutcome) -> bool) -> usize {
        self.sagas.iter().filter(|s| f(&s.outcome)).count()
    }
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sagas.is_empty() {
            writeln!(f, "recovery: nothing unfinished")?;
        } else {
            writeln!(f, "recovery: {} unfinished saga(s)", self.sagas.len())?;
        }
        for s in &self.sagas {
            write!(f, "  {} {}: ", s.saga, s.id)?;
            match &s.outcome {
                RecoveredOutcome::Committed => writeln!(f, "finished, committed")?,
                RecoveredOutcome::Compensated {
                    failed_step,
                    undone,
                } => writeln!(
                    f,
                    "`{failed_step}` had failed; compensated ({})",
                    if undone.is_empty() {
                        "nothing to undo".to_owned()
                    } else {
                        format!("undone: {}", undone.join(", "))
                    }
                )?,
                RecoveredOutcome::Parked {
                    failed_step,
                    failed,
                } => {
                    write!(f, "`{failed_step}` had failed; parked, needs a person:")?;
                    for c in failed {
                        write!(f, " {c};")?;
                    }
                    writeln!(f)?;
                }
                RecoveredOutcome::Halted(e) => writeln!(f, "stopped again: {e}")?,
                RecoveredOutcome::Refused(reason) => writeln!(f, "refused: {reason}")?,
            }
        }
        if self.already_running > 0 {
            writeln!(f, "  ({} already running here)", self.already_running)?;
        }
        Ok(())
    }
}

/// Why the executor could not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DurableError {
    /// The store failed.
    Store(StoreError),
    /// The saga type is not registered, so it could not be recovered after a crash.
    NotRegistered {
        /// The saga's name.
        saga: &'static str,
    },
    /// The saga's input could not be serialized.
    Input {
        /// The saga's name.
        saga: &'static str,
        /// What went wrong.
        message: String,
    },
    /// No saga has this id.
    UnknownSaga {
        /// The id asked for.
        id: SagaId,
    },
    /// The saga is not parked, so there is nothing to retry or resolve.
    NotParked {
        /// Its id.
        id: SagaId,
        /// Where it stands.
        status: SagaStatus,
    },
}

impl fmt::Display for DurableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurableError::Store(e) => e.fmt(f),
            DurableError::NotRegistered { saga } => write!(
                f,
                "saga `{saga}` is not registered on this executor, so it could not be recovered after a crash; add `.register::<…Saga>()`"
            ),
            DurableError::Input { saga, message } => {
                write!(
                    f,
                    "the input of saga `{saga}` could not be persisted: {message}"
                )
            }
            DurableError::UnknownSaga { id } => write!(f, "no saga {id} in the store"),
            DurableError::NotParked { id, status } => {
                write!(f, "saga {id} is {status}, not parked")
            }
        }
    }
}

impl std::error::Error for DurableError {}

impl From<StoreError> for DurableError {
    fn from(e: StoreError) -> Self {
        DurableError::Store(e)
    }
}
