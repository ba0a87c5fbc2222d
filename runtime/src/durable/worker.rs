//! Worker mode: an executor that keeps taking up runnable sagas from its store,
//! for a service of several processes sharing one database, and the two calls
//! of a process that only hands work to the workers: submit, and wait.

use core::future::Future;
use core::pin::Pin;
use core::time::Duration;
use std::collections::HashSet;
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::watch;

use super::claim::{Claim, lock};
use super::executor::Executor;
use super::fingerprint::fingerprint_branched;
use super::journal::{Durable, Keep};
use super::outcome::{DurableError, Recovered, RecoveredOutcome};
use super::saga::DurableSaga;
use super::store::{Entry, NewSaga, SagaRecord, SagaStatus, Store, StoreError};
use crate::SagaId;
use crate::hooks::Hooks;

/// How a [`Worker`] takes up sagas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerConfig {
    /// The most sagas it drives at once.
    pub concurrency: usize,
    /// How long it waits before it asks the store again when there was
    /// nothing to take up, or it could take up nothing more.
    pub poll: Duration,
}

impl Default for WorkerConfig {
    /// 64 sagas at once, asking every 50 ms when idle.
    fn default() -> Self {
        WorkerConfig {
            concurrency: 64,
            poll: Duration::from_millis(50),
        }
    }
}

/// An executor in worker mode: [`run`](Worker::run) claims runnable sagas from
/// the store (on a leasing store such as `PgStore`, each under a lease of
/// its own) and drives up to `concurrency` of them at once, until
/// [`WorkerShutdown::shutdown`] is called; then it stops claiming, finishes the
/// sagas it is driving and lets go of their claims. A saga it was driving when
/// its process died is taken up by another worker once its lease expires.
///
/// ```no_run
/// # use sagaflow::durable::{Executor, SqliteStore, Durability, WorkerConfig};
/// # async fn run(executor: Executor<SqliteStore>) -> Result<(), sagaflow::durable::StoreError> {
/// let worker = executor.worker(WorkerConfig { concurrency: 16, ..WorkerConfig::default() });
/// let shutdown = worker.shutdown_handle();
/// let running = tokio::spawn(worker.run());
/// // .. on SIGTERM:
/// shutdown.shutdown();
/// let report = running.await.expect("the worker task")?;
/// println!("{} sagas ended here", report.sagas.len());
/// # Ok(()) }
/// ```
pub struct Worker<St: Store, H> {
    executor: Executor<St, H>,
    config: WorkerConfig,
    stop: watch::Sender<bool>,
}

/// Tells a [`Worker`] to stop claiming and finish what it drives. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WorkerShutdown(Arc<watch::Sender<bool>>);

impl WorkerShutdown {
    /// Asks the worker to stop: it claims nothing more, finishes the sagas it is
    /// driving, and then its `run` returns.
    pub fn shutdown(&self) {
        self.0.send_replace(true);
    }
}

/// What a worker's [`run`](Worker::run) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Each saga it drove, in the order they ended (or stopped).
    pub sagas: Vec<Recovered>,
}

type Driving = Pin<Box<dyn Future<Output = Recovered> + Send>>;

/// How often a worker applies its executor's retention.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

impl<St: Store + Clone, H: Hooks + Send + Sync + 'static> Worker<St, H> {
    pub(crate) fn new(executor: Executor<St, H>, config: WorkerConfig) -> Self {
        Worker {
            executor,
            config: WorkerConfig {
                concurrency: config.concurrency.max(1),
                ..config
            },
            stop: watch::channel(false).0,
        }
    }

    /// The handle that stops this worker.
    pub fn shutdown_handle(&self) -> WorkerShutdown {
        WorkerShutdown(Arc::new(self.stop.clone()))
    }

    /// Claims and drives sagas until shut down. Fails only if the store does
    /// when asked for work; a saga whose run stops on a store error (its lease
    /// lost to another worker, the server gone) is in the report as `Halted`
    /// and stays in the store for whoever takes it up next.
    pub async fn run(self) -> Result<WorkerReport, StoreError> {
        let mut stop = self.stop.subscribe();
        let mut driving: FuturesUnordered<Driving> = FuturesUnordered::new();
        let mut report = WorkerReport::default();
        let mut purged_at: Option<tokio::time::Instant> = None;
        // Sagas this worker cannot run (type not registered, definition
        // changed): refused once, reported once, then left to a worker that can.
        let mut refused: HashSet<SagaId> = HashSet::new();
        let result = loop {
            if *stop.borrow() {
                break Ok(());
            }
            if purged_at.is_none_or(|at| at.elapsed() >= RETENTION_EVERY) {
                self.executor.apply_retention().await;
                purged_at = Some(tokio::time::Instant::now());
            }
            let free = self.config.concurrency.saturating_sub(driving.len());
            let mut took = 0;
            if free > 0 {
                match self.take_up(free, &refused).await {
                    Ok(sagas) => {
                        took = sagas.len();
                        driving.extend(sagas);
                    }
                    Err(e) => break Err(e),
                }
            }
            // Ask again at once while there is room and work came; otherwise
            // after `poll`, or as soon as a saga ends.
            let full = driving.len() >= self.config.concurrency;
            let delay = if took > 0 && !full {
                Duration::ZERO
            } else {
                self.config.poll
            };
            tokio::select! {
                Some(done) = driving.next(), if !driving.is_empty() => {
                    self.ended(done, &mut refused, &mut report);
                }
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => {}
            }
        };
        // Stop claiming; finish what runs, so that its claims (and leases) go.
        while let Some(done) = driving.next().await {
            self.ended(done, &mut refused, &mut report);
        }
        result.map(|()| report)
    }

    /// Notes a saga's end in the report; a refusal only the first time.
    fn ended(&self, done: Recovered, refused: &mut HashSet<SagaId>, report: &mut WorkerReport) {
        log_lost_lease(&done);
        if matches!(done.outcome, RecoveredOutcome::Refused(_)) && !refused.insert(done.id) {
            return;
        }
        report.sagas.push(done);
    }

    /// Claims up to `limit` runnable sagas, leaving out those it refused
    /// before, and returns their runs.
    async fn take_up(
        &self,
        limit: usize,
        refused: &HashSet<SagaId>,
    ) -> Result<Vec<Driving>, StoreError> {
        let executor = &self.executor;
        let claims = executor.claims();
        let released = lock(claims.set()).released;
        // The refused ones are asked for too, so that they cannot fill the
        // portion; claimed and let go of at once, they go back to the store.
        let records = executor
            .store()
            .claim_runnable(limit.saturating_add(refused.len()))
            .await?;
        let mut claimed: Vec<(Arc<Claim<St>>, SagaRecord)> = records
            .into_iter()
            .filter_map(|record| {
                let claim = Claim::try_new(claims, executor.store().clone(), record.id)?;
                Some((claim, record))
            })
            .filter(|(_, record)| !refused.contains(&record.id))
            .take(limit)
            .collect();
        // As in `recover`: a run here that ended since the read left a newer
        // journal than the one read; read those sagas again.
        if lock(claims.set()).released != released {
            let mut fresh = Vec::with_capacity(claimed.len());
            for (claim, record) in claimed {
                match executor.store().get(record.id).await? {
                    Some(now) if now.status.is_resumable() => fresh.push((claim, now)),
                    _ => {}
                }
            }
            claimed = fresh;
        }
        Ok(claimed
            .into_iter()
            .map(|(claim, record)| executor.recover_claimed(claim, record))
            .collect())
    }
}

fn log_lost_lease(done: &Recovered) {
    if let RecoveredOutcome::Halted(error) = &done.outcome {
        if error.is_lease_lost() {
            tracing::warn!(saga = %done.saga, id = %done.id, %error, "lease lost: another worker has this saga now; stopped driving it");
        } else {
            tracing::error!(saga = %done.saga, id = %done.id, %error, "the store failed; the saga stays for the next worker");
        }
    }
}

/// How a saga waited for with [`Executor::wait`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waited<T> {
    /// Every step succeeded; the saga's output.
    Committed(T),
    /// A step failed and everything was undone.
    Compensated {
        /// The step that failed.
        failed_step: String,
        /// Its error's text.
        error: String,
    },
    /// A compensation failed for good: parked, waiting for a person.
    Parked {
        /// The step that failed.
        failed_step: String,
        /// Its error's text.
        error: String,
    },
    /// Parked, then marked resolved by a person.
    Resolved,
}

impl<St: Store + Clone, H: Hooks + Send + Sync + 'static> Executor<St, H> {
    /// This executor in worker mode: see [`Worker`].
    pub fn worker(&self, config: WorkerConfig) -> Worker<St, H> {
        Worker::new(self.clone(), config)
    }

    /// Makes `saga`'s input durable for whichever worker takes it up, and
    /// returns its id; this process does not run it. For a process that only
    /// hands work to workers (a web front end). On a store without leases a
    /// submitted saga is an unfinished saga like any other: the next
    /// `recover()` or worker over the store runs it.
    pub async fn submit<S>(&self, saga: S) -> Result<SagaId, DurableError>
    where
        S: DurableSaga<Durable<St>>,
    {
        let input = saga
            .__sagaflow_encode_input()
            .map_err(|message| DurableError::Input {
                saga: S::NAME,
                message,
            })?;
        let id = SagaId::time_ordered();
        self.store()
            .submit(NewSaga {
                id,
                saga_type: S::NAME.to_owned(),
                fingerprint: fingerprint_branched(S::STEPS, S::GROUPS, S::BRANCHES),
                input,
            })
            .await?;
        Ok(id)
    }

    /// Waits, asking the store every `poll`, until saga `id` of type `S` has
    /// ended (or is parked), whichever process ran it, and says how.
    pub async fn wait<S>(
        &self,
        id: SagaId,
        poll: Duration,
    ) -> Result<Waited<S::Output>, DurableError>
    where
        S: DurableSaga<Durable<St>>,
        Durable<St>: Keep<S::Output>,
    {
        loop {
            let record = self
                .store()
                .get(id)
                .await?
                .ok_or(DurableError::UnknownSaga { id })?;
            if record.saga_type != S::NAME {
                return Err(DurableError::Stored {
                    id,
                    message: format!("it is a `{}`, not a `{}`", record.saga_type, S::NAME),
                });
            }
            if let Some(waited) = waited::<S, St>(&record)? {
                return Ok(waited);
            }
            tokio::time::sleep(poll).await;
        }
    }
}

/// How `record` ended, if it has.
fn waited<S, St>(record: &SagaRecord) -> Result<Option<Waited<S::Output>>, DurableError>
where
    S: DurableSaga<Durable<St>>,
    St: Store + Clone,
    Durable<St>: Keep<S::Output>,
{
    let failure = || {
        record
            .journal
            .iter()
            .find_map(|e| match e {
                Entry::StepFailed { index, error } => Some((
                    S::STEPS
                        .get(*index as usize)
                        .map(|s| s.name().to_owned())
                        .unwrap_or_else(|| format!("step {}", index + 1)),
                    error.clone(),
                )),
                _ => None,
            })
            .unwrap_or_default()
    };
    Ok(Some(match record.status {
        SagaStatus::Running | SagaStatus::Confirming => return Ok(None),
        SagaStatus::Resolved => Waited::Resolved,
        SagaStatus::Compensated => {
            let (failed_step, error) = failure();
            Waited::Compensated { failed_step, error }
        }
        SagaStatus::Parked => {
            let (failed_step, error) = failure();
            Waited::Parked { failed_step, error }
        }
        SagaStatus::Committed => {
            let output = record.journal.iter().rev().find_map(|e| match e {
                Entry::Finished { output, .. } => Some(output.clone()),
                _ => None,
            });
            let Some(Some(bytes)) = output else {
                return Err(DurableError::Stored {
                    id: record.id,
                    message: "it committed without a stored output".to_owned(),
                });
            };
            let value = <Durable<St> as Keep<S::Output>>::decode(&bytes).map_err(|message| {
                DurableError::Stored {
                    id: record.id,
                    message: format!("its stored output does not read: {message}"),
                }
            })?;
            Waited::Committed(value)
        }
    }))
}
