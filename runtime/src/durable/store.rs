//! What a durable executor needs from storage, independent of the database.
//!
//! The embedded default is [`SqliteStore`](super::SqliteStore). The interface is
//! shaped so that a store shared by several worker processes (PostgreSQL, with
//! leases) fits without a rewrite: every write names its saga, every write is
//! durable when its future completes, and recovery asks for the sagas this
//! executor may take over ([`Store::claim_unfinished`]) rather than reading a
//! table it owns alone. A leasing store would record the owner and lease there and
//! refuse appends from a worker whose lease has passed.

use core::fmt;
use core::future::Future;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::SagaId;

pub use super::entry::{Entry, SagaStatus};

/// A saga about to start, as it is made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSaga {
    /// Its id.
    pub id: SagaId,
    /// The saga function's name (`Saga::NAME`).
    pub saga_type: String,
    /// A fingerprint of the step list, to refuse recovering a changed definition.
    pub fingerprint: String,
    /// The owned inputs, serialized.
    pub input: Vec<u8>,
}

/// A stored saga with its whole history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaRecord {
    /// Its id.
    pub id: SagaId,
    /// The saga function's name.
    pub saga_type: String,
    /// The fingerprint of its step list when it started.
    pub fingerprint: String,
    /// The owned inputs, serialized.
    pub input: Vec<u8>,
    /// Where it stands.
    pub status: SagaStatus,
    /// Every transition, in the order written.
    pub journal: Vec<Entry>,
}

/// Which sagas [`Store::list`] answers with. The default matches every saga.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SagaFilter {
    /// Only sagas with this status.
    pub status: Option<SagaStatus>,
    /// Only sagas of this type (`Saga::NAME`, exactly).
    pub saga_type: Option<String>,
    /// Only sagas started at or after this time.
    pub since: Option<SystemTime>,
    /// At most this many (the newest).
    pub limit: Option<usize>,
}

/// A stored saga with the times the store keeps: what an operator's view shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSaga {
    /// The saga and its journal.
    pub record: SagaRecord,
    /// When it was created, if the store records it.
    pub created_at: Option<SystemTime>,
    /// When its status last changed, if the store records it.
    pub updated_at: Option<SystemTime>,
    /// When each journal entry was written, in the journal's order; empty if
    /// the store does not record it.
    pub entry_times: Vec<SystemTime>,
}

impl StoredSaga {
    /// A record without times, for a store that keeps none.
    pub fn untimed(record: SagaRecord) -> Self {
        StoredSaga {
            record,
            created_at: None,
            updated_at: None,
            entry_times: Vec::new(),
        }
    }
}

/// A storage failure. Names the file (or server) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    message: String,
    lease_lost: bool,
}

impl StoreError {
    /// An error with this message; say which file and what is wrong with it.
    pub fn new(message: impl Into<String>) -> Self {
        StoreError {
            message: message.into(),
            lease_lost: false,
        }
    }

    /// A write refused because the writer no longer holds the saga's lease: a
    /// leasing store (several workers over one database) found that the saga
    /// was claimed by another worker since, or released, so its fencing token
    /// no longer matches. Nothing of the write was stored, and the writer must
    /// stop driving the saga: another worker has it. Say which saga and who
    /// holds it now, if known.
    pub fn lease_lost(message: impl Into<String>) -> Self {
        StoreError {
            message: message.into(),
            lease_lost: true,
        }
    }

    /// Whether this is a [`lease_lost`](Self::lease_lost) error: the write was
    /// fenced off, not failed, so retrying it can never succeed.
    pub fn is_lease_lost(&self) -> bool {
        self.lease_lost
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}

/// The ids of the sagas being run in this process over one store: an executor
/// takes a saga's id here before it runs the saga and lets it go after, and
/// recovery leaves alone a saga whose id is taken. Cheap to clone; clones share
/// one set.
///
/// A store that is a handle (its clones share one storage, as
/// [`SqliteStore`](super::SqliteStore)'s do) keeps one and hands it out from
/// [`Store::claims`], so that every executor over it shares it: then two
/// executors over one store never run one saga at once.
#[derive(Debug, Clone, Default)]
pub struct Claims(Arc<Mutex<Running>>);

/// What [`Claims`] holds.
#[derive(Debug, Default)]
pub(crate) struct Running {
    /// The ids taken.
    pub(crate) ids: HashSet<SagaId>,
    /// How many ids were let go so far: if it has not moved between a read of
    /// the store and the claims that follow it, no run ended in between.
    pub(crate) released: u64,
}

impl Claims {
    /// An empty set.
    pub fn new() -> Self {
        Claims::default()
    }

    pub(crate) fn set(&self) -> &Mutex<Running> {
        &self.0
    }
}

/// Durable storage of sagas and their transitions.
///
/// Every write is durable (to the store's durability level) when its future
/// completes; the executor does not go on before that. Implementations batch
/// concurrent writes into one commit where they can: that is where the speed is.
pub trait Store: Send + Sync + 'static {
    /// Makes a new saga and its input durable, with status `Running`.
    fn create(&self, saga: NewSaga) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Appends one transition to a saga's journal. A [`Entry::Finished`] also sets
    /// the saga's status; an [`Entry::Decided`] sets it to `Confirming`; an
    /// [`Entry::Intervention`] sets it to `Running` (retry) or `Resolved`.
    fn append(
        &self,
        id: SagaId,
        entry: Entry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Appends several transitions of one saga in one commit: all or none.
    ///
    /// The default appends them one by one; a store that can, commits them together.
    fn append_all(
        &self,
        id: SagaId,
        entries: Vec<Entry>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            for entry in entries {
                self.append(id, entry).await?;
            }
            Ok(())
        }
    }

    /// Appends `entry` to saga `id` only if the saga's status is `status`, and
    /// answers what it found: `Ok(Ok(()))` appended; `Ok(Err(None))` no such
    /// saga; `Ok(Err(Some(other)))` the saga's status is `other`, and nothing
    /// was appended. For a person's intervention on a parked saga: of two at
    /// once, one is appended and the other learns the status the first left.
    ///
    /// The check and the append must be one atomic step against every other
    /// writer of the store. The default reads the saga with
    /// [`get`](Store::get), then appends: atomic only if nothing else writes
    /// to that saga in between. A store shared by several executors or
    /// processes overrides it ([`SqliteStore`](super::SqliteStore) checks inside
    /// the transaction that appends).
    fn append_if(
        &self,
        id: SagaId,
        status: SagaStatus,
        entry: Entry,
    ) -> impl Future<Output = Result<Result<(), Option<SagaStatus>>, StoreError>> + Send {
        async move {
            match self.get(id).await? {
                None => Ok(Err(None)),
                Some(record) if record.status != status => Ok(Err(Some(record.status))),
                Some(_) => self.append(id, entry).await.map(Ok),
            }
        }
    }

    /// The sagas with status `Running` that this executor should resume, with their
    /// journals. A single-process store returns them all; a shared store would
    /// lease them to the caller.
    fn claim_unfinished(&self) -> impl Future<Output = Result<Vec<SagaRecord>, StoreError>> + Send;

    /// Up to `limit` sagas that this store may run now, with their journals:
    /// like [`claim_unfinished`](Store::claim_unfinished), for a worker that
    /// takes work in portions of what it can drive at once. A leasing store
    /// leases each one it returns, and returns none leased to anyone else.
    ///
    /// The default claims every unfinished saga, leaves out those run in this
    /// process already (the store's [`claims`](Store::claims)), and keeps the
    /// first `limit`.
    fn claim_runnable(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<SagaRecord>, StoreError>> + Send {
        async move {
            let mut records = self.claim_unfinished().await?;
            // Not the sagas already run here: they would fill the portion,
            // and the caller cannot take them up anyway.
            if let Some(claims) = self.claims() {
                let running = &super::claim::lock(claims.set()).ids;
                records.retain(|r| !running.contains(&r.id));
            }
            records.truncate(limit);
            Ok(records)
        }
    }

    /// Makes a new saga durable, with status `Running`, for whichever worker
    /// claims it: unlike [`create`](Store::create), it takes no lease, so the
    /// caller does not run it (a process that only submits work).
    ///
    /// The default is `create`: for a store with no leases the two are the same.
    fn submit(&self, saga: NewSaga) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.create(saga)
    }

    /// The claims shared by every executor over this store (and its clones), if
    /// the store keeps them. The default, `None`, gives each executor a set of
    /// its own: then two executors over one store may run one saga at once, so
    /// use one executor per store.
    fn claims(&self) -> Option<&Claims> {
        None
    }

    /// Tells the store that this process's run of saga `id` has ended: the
    /// executor calls it once per claim (a `start`, or a saga taken up by
    /// recovery), after every write made under that claim has been answered,
    /// however the run ended (finished, stopped by a store error, or its future
    /// dropped). A leasing store gives up the saga's lease here, so that another
    /// worker can take it up at once instead of at the lease's expiry.
    ///
    /// Called from a `Drop`, so it must not block: a store with work to do
    /// queues it. The default does nothing.
    fn release(&self, id: SagaId) {
        let _ = id;
    }

    /// The sagas that match `filter`, newest first, with their journals and
    /// times: for tools that show a store to a person, not for the executor.
    ///
    /// The default reads [`with_status`](Store::with_status) for each status
    /// asked for, without times; it refuses a `since` filter, which needs
    /// times. A store that records times overrides it.
    fn list(
        &self,
        filter: SagaFilter,
    ) -> impl Future<Output = Result<Vec<StoredSaga>, StoreError>> + Send {
        async move {
            if filter.since.is_some() {
                return Err(StoreError::new(
                    "this store does not record when sagas started, so it cannot filter by time",
                ));
            }
            let statuses = match filter.status {
                Some(status) => vec![status],
                None => SagaStatus::ALL.to_vec(),
            };
            let mut found = Vec::new();
            for status in statuses {
                let records = self.with_status(status).await?;
                found.extend(
                    records
                        .into_iter()
                        .filter(|r| filter.saga_type.as_ref().is_none_or(|t| *t == r.saga_type))
                        .map(StoredSaga::untimed),
                );
            }
            // Oldest first per status: reversed, the newest of each come first.
            found.reverse();
            if let Some(limit) = filter.limit {
                found.truncate(limit);
            }
            Ok(found)
        }
    }

    /// One saga with its journal and times. The default is [`get`](Store::get)
    /// without times.
    fn history(
        &self,
        id: SagaId,
    ) -> impl Future<Output = Result<Option<StoredSaga>, StoreError>> + Send {
        async move { Ok(self.get(id).await?.map(StoredSaga::untimed)) }
    }

    /// Deletes the finished sagas (committed, compensated, resolved) whose
    /// status last changed before `finished_before`, and answers their ids;
    /// with `dry_run`, deletes nothing and answers what it would delete.
    /// Running and parked sagas are never deleted.
    ///
    /// The default refuses: a store that does not record when a saga finished
    /// cannot tell which are old.
    fn purge(
        &self,
        finished_before: SystemTime,
        dry_run: bool,
    ) -> impl Future<Output = Result<Vec<SagaId>, StoreError>> + Send {
        let _ = (finished_before, dry_run);
        async {
            Err(StoreError::new(
                "this store does not record when sagas finished, so it cannot purge old ones",
            ))
        }
    }

    /// One saga with its journal.
    fn get(
        &self,
        id: SagaId,
    ) -> impl Future<Output = Result<Option<SagaRecord>, StoreError>> + Send;

    /// The sagas with this status, oldest first, with their journals.
    fn with_status(
        &self,
        status: SagaStatus,
    ) -> impl Future<Output = Result<Vec<SagaRecord>, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store that keeps sagas in memory and overrides nothing it need not,
    /// to test the trait's defaults.
    #[derive(Default)]
    struct Memory(Mutex<Vec<SagaRecord>>);

    impl Store for Memory {
        async fn create(&self, saga: NewSaga) -> Result<(), StoreError> {
            self.0.lock().unwrap().push(SagaRecord {
                id: saga.id,
                saga_type: saga.saga_type,
                fingerprint: saga.fingerprint,
                input: saga.input,
                status: SagaStatus::Running,
                journal: Vec::new(),
            });
            Ok(())
        }

        async fn append(&self, id: SagaId, entry: Entry) -> Result<(), StoreError> {
            let mut sagas = self.0.lock().unwrap();
            let saga = sagas.iter_mut().find(|s| s.id == id).unwrap();
            if let Entry::Finished { status, .. } = &entry {
                saga.status = *status;
            }
            saga.journal.push(entry);
            Ok(())
        }

        async fn claim_unfinished(&self) -> Result<Vec<SagaRecord>, StoreError> {
            self.with_status(SagaStatus::Running).await
        }

        async fn get(&self, id: SagaId) -> Result<Option<SagaRecord>, StoreError> {
            Ok(self.0.lock().unwrap().iter().find(|s| s.id == id).cloned())
        }

        async fn with_status(&self, status: SagaStatus) -> Result<Vec<SagaRecord>, StoreError> {
            let sagas = self.0.lock().unwrap();
            Ok(sagas
                .iter()
                .filter(|s| s.status == status)
                .cloned()
                .collect())
        }
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn the_defaults_list_without_times_and_refuse_what_needs_them() {
        block_on(async {
            let store = Memory::default();
            let mut ids = Vec::new();
            for (saga_type, finish) in [
                ("a", None),
                ("b", Some(SagaStatus::Committed)),
                ("a", Some(SagaStatus::Parked)),
            ] {
                let id = SagaId::random();
                ids.push(id);
                let saga = NewSaga {
                    id,
                    saga_type: saga_type.into(),
                    fingerprint: String::new(),
                    input: Vec::new(),
                };
                store.create(saga).await.unwrap();
                if let Some(status) = finish {
                    store
                        .append(
                            id,
                            Entry::Finished {
                                status,
                                output: None,
                            },
                        )
                        .await
                        .unwrap();
                }
            }
            let listed = |filter| async {
                store
                    .list(filter)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|s| s.record.id)
                    .collect::<Vec<_>>()
            };
            let all = listed(SagaFilter::default()).await;
            assert_eq!(all.len(), 3);
            let of_a = listed(SagaFilter {
                saga_type: Some("a".into()),
                ..SagaFilter::default()
            })
            .await;
            assert_eq!(of_a.len(), 2);
            assert!(!of_a.contains(&ids[1]));
            let parked = listed(SagaFilter {
                status: Some(SagaStatus::Parked),
                ..SagaFilter::default()
            })
            .await;
            assert_eq!(parked, [ids[2]]);
            let one = listed(SagaFilter {
                limit: Some(1),
                ..SagaFilter::default()
            })
            .await;
            assert_eq!(one.len(), 1);

            let history = store.history(ids[1]).await.unwrap().unwrap();
            assert_eq!(history.created_at, None);
            assert!(history.entry_times.is_empty());
            assert_eq!(history.record.journal.len(), 1);

            let since = SagaFilter {
                since: Some(SystemTime::now()),
                ..SagaFilter::default()
            };
            assert!(
                store
                    .list(since)
                    .await
                    .unwrap_err()
                    .message()
                    .contains("cannot filter by time")
            );
            let purge = store.purge(SystemTime::now(), true).await.unwrap_err();
            assert!(purge.message().contains("cannot purge"), "{purge}");
            assert_eq!(store.0.lock().unwrap().len(), 3);
        });
    }
}
