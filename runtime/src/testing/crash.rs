//! The crash sweep of the test kit: a saga killed at every persisted
//! transition, then recovered, over SQLite files or stores of your own.

use core::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{
    Plan, RunSummary, SagaTest, SweepFailure, SweepReport, paused_runtime, quiet_injected_panics,
};
use crate::durable::{
    Durability, Durable, DurableSaga, Entry, Executor, NewSaga, RecoveredOutcome, SagaRecord,
    SagaStatus, SqliteStore, Store, StoreError,
};
use crate::outbox::{ClaimedMessages, MessageFilter, Outbox, Settlement, StoredMessage};
use crate::{FailedCompensation, Saga, SagaId};

/// The store of a crash sweep: a store (a temporary SQLite file, or the one
/// [`crash_sweep_on`](SagaTest::crash_sweep_on) is given) that, when armed,
/// fails every write after a given number, as if the process had died right
/// after that transition became durable.
#[derive(Clone, Debug)]
pub struct CrashStore<St = SqliteStore> {
    inner: St,
    remaining: Arc<AtomicUsize>,
}

impl<St> CrashStore<St> {
    fn pass(&self) -> Result<(), StoreError> {
        let left = self.remaining.load(Ordering::SeqCst);
        if left == 0 {
            return Err(StoreError::new("crash sweep: the process died here"));
        }
        self.remaining.store(left - 1, Ordering::SeqCst);
        Ok(())
    }

    /// The store underneath.
    pub fn inner(&self) -> &St {
        &self.inner
    }

    /// Refuses a write once the process has "died", without counting one.
    fn alive(&self) -> Result<(), StoreError> {
        match self.remaining.load(Ordering::SeqCst) {
            0 => Err(StoreError::new("crash sweep: the process died here")),
            _ => Ok(()),
        }
    }
}

/// The outbox of the store underneath, so that a sweep can run over an outbox
/// store and check its messages. A relay's claims and settlements are not
/// crash points (the sweep kills the saga at its transitions), but once the
/// process has "died" they are refused like every other write; reads go on.
impl<St: Outbox + Clone> Outbox for CrashStore<St> {
    async fn claim_messages(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<ClaimedMessages, StoreError> {
        self.alive()?;
        self.inner.claim_messages(limit, lease).await
    }

    async fn settle_messages(
        &self,
        token: u64,
        settlements: Vec<Settlement>,
    ) -> Result<(), StoreError> {
        self.alive()?;
        self.inner.settle_messages(token, settlements).await
    }

    async fn messages(&self, filter: MessageFilter) -> Result<Vec<StoredMessage>, StoreError> {
        self.inner.messages(filter).await
    }

    async fn resend(&self, id: &str) -> Result<bool, StoreError> {
        self.alive()?;
        self.inner.resend(id).await
    }
}

impl<St: Store + Clone> Store for CrashStore<St> {
    async fn create(&self, saga: NewSaga) -> Result<(), StoreError> {
        self.pass()?;
        self.inner.create(saga).await
    }

    async fn append(&self, id: SagaId, entry: Entry) -> Result<(), StoreError> {
        self.pass()?;
        self.inner.append(id, entry).await
    }

    async fn append_all(&self, id: SagaId, entries: Vec<Entry>) -> Result<(), StoreError> {
        // One commit is one transition's worth of crash point, as in the real store.
        self.pass()?;
        self.inner.append_all(id, entries).await
    }

    async fn append_if(
        &self,
        id: SagaId,
        status: SagaStatus,
        entry: Entry,
    ) -> Result<Result<(), Option<SagaStatus>>, StoreError> {
        self.pass()?;
        self.inner.append_if(id, status, entry).await
    }

    async fn claim_unfinished(&self) -> Result<Vec<SagaRecord>, StoreError> {
        self.inner.claim_unfinished().await
    }

    fn claims(&self) -> Option<&crate::durable::Claims> {
        self.inner.claims()
    }

    fn release(&self, id: SagaId) {
        self.inner.release(id)
    }

    async fn get(&self, id: SagaId) -> Result<Option<SagaRecord>, StoreError> {
        self.inner.get(id).await
    }

    async fn with_status(&self, status: SagaStatus) -> Result<Vec<SagaRecord>, StoreError> {
        self.inner.with_status(status).await
    }
}

impl<'a, S> SagaTest<'a, S>
where
    S: DurableSaga<Plan>,
{
    /// Runs the saga on a durable executor over a temporary store once per
    /// persisted transition, "killing" the process right after that transition
    /// (the store refuses every later write, so nothing more happens), then
    /// recovers it with a fresh executor and checks that it reached a final state
    /// (committed, compensated, or parked) and that the invariant holds.
    ///
    /// `executor` builds an executor over the given store with the saga
    /// registered and its resources added. Recovery hands the saga those
    /// resources, so they should share state with the ones `make` passes (handles
    /// such as `Arc`-backed clients do).
    ///
    /// The store is a new SQLite file for each run, and the clock is tokio's
    /// paused one, so retries and timeouts take no real time.
    pub fn crash_sweep(
        &mut self,
        executor: impl Fn(CrashStore) -> Executor<CrashStore>,
    ) -> Result<SweepReport, SweepFailure>
    where
        S: DurableSaga<Durable<CrashStore>>,
    {
        let runtime = paused_runtime()?;
        let dir = std::env::temp_dir().join(format!("sagaflow-crash-sweep-{}", SagaId::random()));
        std::fs::create_dir_all(&dir).map_err(|e| SweepFailure {
            message: format!("crash sweep: cannot create {}: {e}", dir.display()),
        })?;
        let stores = |run: usize| {
            let path = dir.join(format!("run-{run}.db"));
            async move { SqliteStore::open(&path, Durability::Normal).map_err(|e| e.to_string()) }
        };
        let result = runtime.block_on(self.sweep(stores, executor));
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    /// [`crash_sweep`](Self::crash_sweep) over stores of your own: `stores`
    /// makes the store for each run (run 1, 2, ..), for example a `PgStore` on
    /// a test server. Each run's saga has an id of its own, so one store may
    /// serve every run. The sweep runs on a runtime of its own with the real
    /// clock, since a store that talks to a server must not see tokio's paused
    /// clock jump: the saga's retries and timeouts take their real time. Must be
    /// called outside a tokio runtime.
    pub fn crash_sweep_on<St, Mk, Fut>(
        &mut self,
        stores: Mk,
        executor: impl Fn(CrashStore<St>) -> Executor<CrashStore<St>>,
    ) -> Result<SweepReport, SweepFailure>
    where
        St: Store + Clone,
        Mk: FnMut(usize) -> Fut,
        Fut: Future<Output = Result<St, String>>,
        S: DurableSaga<Durable<CrashStore<St>>>,
    {
        quiet_injected_panics();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SweepFailure {
                message: format!("could not start the sweep's runtime: {e}"),
            })?;
        runtime.block_on(self.sweep(stores, executor))
    }

    /// Every input's crash sweep, in turn.
    async fn sweep<St, Mk, Fut>(
        &mut self,
        mut stores: Mk,
        executor: impl Fn(CrashStore<St>) -> Executor<CrashStore<St>>,
    ) -> Result<SweepReport, SweepFailure>
    where
        St: Store + Clone,
        Mk: FnMut(usize) -> Fut,
        Fut: Future<Output = Result<St, String>>,
        S: DurableSaga<Durable<CrashStore<St>>>,
    {
        self.start_sweep();
        let mut report = SweepReport::default();
        for input in 0..self.inputs {
            self.input = input;
            self.sweep_input(&mut stores, &executor, &mut report)
                .await?;
        }
        self.end_sweep("crash sweep", report)
    }

    /// One input's runs: killed after each transition of its path in turn.
    async fn sweep_input<St, Mk, Fut>(
        &mut self,
        stores: &mut Mk,
        executor: &impl Fn(CrashStore<St>) -> Executor<CrashStore<St>>,
        report: &mut SweepReport,
    ) -> Result<(), SweepFailure>
    where
        St: Store + Clone,
        Mk: FnMut(usize) -> Fut,
        Fut: Future<Output = Result<St, String>>,
        S: DurableSaga<Durable<CrashStore<St>>>,
    {
        let failure = |message: String| SweepFailure { message };
        let sweep = "crash sweep";
        let prefix = self.input_prefix();
        for crash_after in 1usize.. {
            let inner = stores(report.runs() + 1)
                .await
                .map_err(|e| failure(format!("{sweep}: {e}")))?;
            let store = CrashStore {
                inner: inner.clone(),
                remaining: Arc::new(AtomicUsize::new(crash_after)),
            };
            let first = executor(store.clone());
            let started = first
                .start((self.make)(self.input))
                .await
                .map_err(|e| failure(format!("{sweep}: could not start: {e}")))?;
            let id = started.id();
            let outcome = started.outcome().await;
            let crashed = outcome.is_err();
            let record = inner
                .get(id)
                .await
                .map_err(|e| failure(format!("{sweep}: {e}")))?
                .ok_or_else(|| failure(format!("{sweep}: saga {id} was lost")))?;
            let last = describe_cut::<S>(&record.journal);
            let case = if crashed {
                format!("{prefix}killed after transition {crash_after} ({last})")
            } else {
                format!("{prefix}ran to its end")
            };
            report.cases.push(case.clone());
            let run = report.runs();
            let wrong = |what: String| SweepFailure {
                message: format!("{sweep}, run {run} ({case}): {what}"),
            };
            let summary = if crashed {
                store.remaining.store(usize::MAX, Ordering::SeqCst);
                let second = executor(store.clone());
                let recovered = second
                    .recover()
                    .await
                    .map_err(|e| wrong(format!("recovery failed: {e}")))?;
                let Some(saga) = recovered.sagas.iter().find(|s| s.id == id) else {
                    return Err(wrong("recovery did not take the saga up".to_owned()));
                };
                recovered_summary(&case, &saga.outcome).map_err(wrong)?
            } else {
                match outcome {
                    Ok(result) => RunSummary::of(case.clone(), &result),
                    Err(e) => return Err(wrong(format!("the store failed: {e}"))),
                }
            };
            let record = inner
                .get(id)
                .await
                .map_err(|e| wrong(e.to_string()))?
                .ok_or_else(|| wrong(format!("saga {id} was lost")))?;
            self.taken
                .extend(record.journal.iter().filter_map(|e| match e {
                    Entry::Arm { branch, arm } => Some((*branch, *arm)),
                    _ => None,
                }));
            if record.status.is_resumable() {
                return Err(wrong(format!(
                    "the saga is still {} after recovery",
                    record.status.as_str()
                )));
            }
            // What the store holds for the outbox, after recovery: each
            // message once, a body's messages only if the saga committed.
            let stored = stored_messages(&record.journal);
            let summary = summary.with_messages(stored);
            self.check(sweep, run, &summary)?;
            if !crashed {
                break;
            }
        }
        Ok(())
    }
}

fn summary_of(
    case: String,
    committed: bool,
    failed_step: Option<String>,
    undone: Vec<String>,
    failed_compensations: Vec<FailedCompensation>,
) -> RunSummary {
    RunSummary {
        case,
        committed,
        failed_step,
        undone,
        failed_compensations,
        report: None,
        messages: Vec::new(),
    }
}

/// What the last transition of `journal` was; when it was the outcome of a
/// `sagaflow::join!` member, also the siblings that had started and had no
/// outcome yet: the process died between the members' outcomes.
fn describe_cut<S: Saga>(journal: &[Entry]) -> String {
    let Some(last) = journal.last() else {
        return "its input was stored".to_owned();
    };
    let mut text = describe(last);
    let (Entry::StepSucceeded { index, .. } | Entry::StepFailed { index, .. }) = last else {
        return text;
    };
    let Some(group) = S::GROUPS.iter().find(|r| r.contains(index)) else {
        return text;
    };
    let ended = |i: u32| {
        journal.iter().any(|e| {
            matches!(e, Entry::StepSucceeded { index, .. } | Entry::StepFailed { index, .. } if *index == i)
        })
    };
    let started = |i: u32| {
        journal
            .iter()
            .any(|e| matches!(e, Entry::StepStarted { index, .. } if *index == i))
    };
    let open: Vec<&str> = group
        .clone()
        .filter(|&i| started(i) && !ended(i))
        .map(|i| S::STEPS[i as usize].name())
        .collect();
    if !open.is_empty() {
        text.push_str(&format!(
            "; {}, in its group, had no outcome yet",
            super::sweeps::names(&open)
        ));
    }
    text
}

fn describe(entry: &Entry) -> String {
    match entry {
        Entry::StepStarted { index, attempt } => format!("step {index} attempt {attempt} began"),
        Entry::StepSucceeded { index, .. } => format!("step {index} succeeded"),
        Entry::StepFailed { index, .. } => format!("step {index} failed"),
        Entry::CompensationStarted { index, attempt } => {
            format!("compensation {index} attempt {attempt} began")
        }
        Entry::CompensationSucceeded { index } => format!("compensation {index} succeeded"),
        Entry::CompensationFailed { index, .. } => format!("compensation {index} failed"),
        Entry::Decided => "the saga decided to commit".to_owned(),
        Entry::ConfirmStarted { index, attempt } => {
            format!("confirm {index} attempt {attempt} began")
        }
        Entry::Confirmed { index } => format!("confirm {index} succeeded"),
        Entry::Finished { status, .. } => format!("the saga finished {status}"),
        Entry::Intervention { .. } => "a person intervened".to_owned(),
        Entry::Sent { messages } => format!("{} message(s) were sent", messages.len()),
        Entry::Arm { branch, arm } => format!("branch {branch} took arm {arm}"),
    }
}

/// What a recovered saga's outcome says of the run, or why it is wrong.
fn recovered_summary(case: &str, outcome: &RecoveredOutcome) -> Result<RunSummary, String> {
    let case = case.to_owned();
    Ok(match outcome {
        RecoveredOutcome::Committed => summary_of(case, true, None, vec![], vec![]),
        RecoveredOutcome::Compensated {
            failed_step,
            undone,
        } => summary_of(
            case,
            false,
            Some(failed_step.clone()),
            undone.clone(),
            vec![],
        ),
        RecoveredOutcome::Parked {
            failed_step,
            failed,
        } => summary_of(
            case,
            false,
            Some(failed_step.clone()),
            vec![],
            failed.clone(),
        ),
        RecoveredOutcome::Halted(e) => return Err(format!("recovery stopped: {e}")),
        RecoveredOutcome::Refused(reason) => {
            return Err(format!("recovery refused the saga: {reason}"));
        }
    })
}

/// Every message a journal holds for the outbox, in order.
fn stored_messages(journal: &[Entry]) -> Vec<crate::outbox::Message> {
    journal
        .iter()
        .filter_map(|e| match e {
            Entry::Sent { messages } => Some(messages.iter().cloned()),
            _ => None,
        })
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Message;

    #[test]
    fn the_outbox_is_forwarded_until_the_process_dies() {
        let runtime = paused_runtime().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let inner = SqliteStore::open(dir.path().join("s.db"), Durability::Normal).unwrap();
            let store = CrashStore {
                inner,
                remaining: Arc::new(AtomicUsize::new(2)),
            };
            let id = SagaId::random();
            let saga = NewSaga {
                id,
                saga_type: "s".into(),
                fingerprint: "f".into(),
                input: b"{}".to_vec(),
            };
            store.create(saga).await.unwrap();
            let message = Message {
                id: format!("{id}-end-0"),
                destination: "audit".into(),
                key: None,
                payload: b"{}".to_vec(),
                created_ms: 0,
            };
            let sent = Entry::Sent {
                messages: vec![message],
            };
            store.append(id, sent).await.unwrap();
            // Two writes were allowed: the process is dead now.
            let lease = Duration::from_secs(30);
            assert!(store.claim_messages(10, lease).await.is_err());
            assert!(store.resend("x").await.is_err());
            assert_eq!(
                store
                    .messages(MessageFilter::default())
                    .await
                    .unwrap()
                    .len(),
                1
            );
            // Recovery's store lives again; claims do not count as crash points.
            store.remaining.store(1, Ordering::SeqCst);
            let claim = store.claim_messages(10, lease).await.unwrap();
            assert_eq!(claim.messages.len(), 1);
            let settled = vec![Settlement::Delivered {
                id: format!("{id}-end-0"),
            }];
            store.settle_messages(claim.token, settled).await.unwrap();
            assert_eq!(store.remaining.load(Ordering::SeqCst), 1);
        });
    }
}
