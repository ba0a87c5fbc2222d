//! The writer thread: group commit of every write in one transaction,
//! with a failing write retried out of the batch.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::apply::Batch;
use super::outbox::OutboxWrite;
use super::{now_millis, sql_error};
use crate::SagaId;
use crate::durable::store::{Entry, NewSaga, SagaStatus, StoreError};
use crate::outbox::ClaimedMessages;

/// The most writes committed in one transaction. Bounds the latency of the
/// first waiter of a batch and the size of one WAL append.
const MAX_BATCH: usize = 1024;

/// How many sagas' next sequence numbers the writer remembers before it starts
/// over (they are reloaded from the file on demand).
const SEQ_CACHE_LIMIT: usize = 100_000;

pub(super) enum Write {
    Create(NewSaga),
    Append(SagaId, Entry),
    AppendAll(SagaId, Vec<Entry>),
    /// An append if the saga has this status, checked in the same transaction.
    AppendIf(SagaId, SagaStatus, Entry),
    /// Deletes the finished sagas whose status last changed before this time
    /// (Unix milliseconds), with their journals and messages.
    Purge(i64),
    /// A relay's claim or settlement, or an operator's resend.
    Outbox(OutboxWrite),
}

/// What a write did, once committed.
#[derive(Debug)]
pub(super) enum Done {
    Written,
    /// A conditional append found the saga missing (`None`) or with another
    /// status, and wrote nothing.
    Skipped(Option<SagaStatus>),
    /// A purge deleted these sagas.
    Purged(Vec<SagaId>),
    /// A claim leased these messages.
    Claimed(ClaimedMessages),
    /// A resend found a dead message with the id (`true`) or none.
    Resent(bool),
}

pub(super) struct WriteRequest {
    pub(super) write: Write,
    pub(super) ack: oneshot::Sender<Result<Done, StoreError>>,
}

pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
    /// The file the connection opened, to notice when the path no longer
    /// names it (deleted or replaced): its commits would then be lost.
    pub(super) file: Option<FileId>,
    /// Set once that happened: every later write is refused with it.
    pub(super) gone: Option<StoreError>,
    /// The next journal sequence number of each saga the writer has touched and
    /// that has not finished: saves a lookup per append. Only committed state.
    pub(super) next_seq: HashMap<SagaId, i64>,
}

/// Why one write of a batch failed.
pub(super) enum Failure {
    /// Refused before anything was written (unknown saga, duplicate id): the
    /// rest of the transaction goes on.
    Refused(StoreError),
    /// A statement failed: the transaction is rolled back and the batch is tried
    /// again without this write, if the failure is its own (a constraint).
    Statement(StoreError, bool),
}

impl Writer {
    pub(super) fn run(mut self, requests: mpsc::Receiver<WriteRequest>) {
        // Ends when every sender is gone (the store was dropped) and every
        // request already sent has been committed and answered.
        while let Ok(first) = requests.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
        }
    }

    fn commit_batch(&mut self, batch: Vec<WriteRequest>) {
        let mut results: Vec<Option<Result<Done, StoreError>>> =
            batch.iter().map(|_| None).collect();
        // Each round either commits or settles at least one more request, so
        // this ends.
        loop {
            match self.try_batch(&batch, &mut results) {
                Ok(()) => break,
                Err(None) => continue,
                Err(Some(error)) => {
                    for result in results.iter_mut().filter(|r| r.is_none()) {
                        *result = Some(Err(error.clone()));
                    }
                    break;
                }
            }
        }
        for (request, result) in batch.into_iter().zip(results) {
            let result = result.unwrap_or_else(|| {
                Err(StoreError::new(
                    "sagaflow sqlite writer: write left unanswered (a bug)",
                ))
            });
            // The waiter may have gone away; the write stands regardless.
            let _ = request.ack.send(result);
        }
    }

    /// One transaction over the requests not yet settled in `results`. `Ok`: all
    /// settled. `Err(None)`: one more request was settled, try again. `Err(Some)`:
    /// the transaction failed as a whole with this error.
    fn try_batch(
        &mut self,
        batch: &[WriteRequest],
        results: &mut [Option<Result<Done, StoreError>>],
    ) -> Result<(), Option<StoreError>> {
        if let Some(error) = &self.gone {
            return Err(Some(error.clone()));
        }
        let path = self.path.as_path();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| Some(sql_error(path, "cannot begin a transaction", &e)))?;
        let now = now_millis();
        // Sequence numbers as this transaction leaves them; merged on commit.
        let mut pending: HashMap<SagaId, Option<i64>> = HashMap::new();
        let mut applied = Vec::new();
        for (i, request) in batch.iter().enumerate() {
            if results[i].is_some() {
                continue;
            }
            let outcome = Batch {
                tx: &tx,
                path,
                cache: &self.next_seq,
                pending: &mut pending,
                now,
            }
            .apply(&request.write);
            match outcome {
                Ok(done) => applied.push((i, done)),
                Err(Failure::Refused(error)) => results[i] = Some(Err(error)),
                Err(Failure::Statement(error, own)) => {
                    // Dropping the transaction rolls it back.
                    drop(tx);
                    if own {
                        results[i] = Some(Err(error));
                        return Err(None);
                    }
                    return Err(Some(error));
                }
            }
        }
        tx.commit()
            .map_err(|e| Some(sql_error(path, "cannot commit", &e)))?;
        // A commit is durable only if the path still names the file it went to.
        if let Some(file) = self.file
            && FileId::of(path) != Some(file)
        {
            let error = self.file_gone();
            return Err(Some(error));
        }
        for (i, done) in applied {
            results[i] = Some(Ok(done));
        }
        if self.next_seq.len() + pending.len() > SEQ_CACHE_LIMIT {
            self.next_seq.clear();
        }
        for (id, next) in pending {
            match next {
                Some(next) => self.next_seq.insert(id, next),
                None => self.next_seq.remove(&id),
            };
        }
        Ok(())
    }
}

impl Writer {
    /// The store's file was deleted or replaced under it: the commits since went
    /// to a file without a name, lost when the store closes. If the path is
    /// free, everything committed so far is written back to it (`VACUUM INTO`,
    /// at the connection's `synchronous` level, then synced), so that what was
    /// acknowledged before survives; from now on every write is refused.
    #[cold]
    fn file_gone(&mut self) -> StoreError {
        let path = self.path.as_path();
        let shown = path.display();
        let restored = if path.exists() {
            format!("another file is at {shown} now, left as it is")
        } else {
            let written = self
                .conn
                .execute("VACUUM INTO ?1", [path.to_string_lossy()])
                .map_err(|e| e.to_string())
                .and_then(|_| {
                    let synced = File::open(path).and_then(|f| f.sync_all());
                    let dir = match path.parent() {
                        Some(dir) if !dir.as_os_str().is_empty() => dir,
                        _ => Path::new("."),
                    };
                    synced
                        .and_then(|()| File::open(dir).and_then(|d| d.sync_all()))
                        .map_err(|e| e.to_string())
                });
            match written {
                Ok(()) => format!(
                    "what the store held, this last commit included, was written back to {shown}"
                ),
                Err(e) => format!("it could not be written back ({e}); sagas were lost"),
            }
        };
        let error = StoreError::new(format!(
            "sagaflow store {shown}: the file was deleted or replaced while the store was \
             open, so this write is not durable; {restored}; this store refuses every \
             write from now on: drop it and open the file again"
        ));
        tracing::error!(%error, "sagaflow store file gone");
        self.gone = Some(error.clone());
        error
    }
}

/// Which file a path names: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileId(u64, u64);

impl FileId {
    /// The file at `path` now, or `None` if there is none (or this platform
    /// cannot tell; then nothing is checked).
    #[cfg(unix)]
    pub(super) fn of(path: &Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path)
            .ok()
            .map(|m| FileId(m.dev(), m.ino()))
    }

    #[cfg(not(unix))]
    pub(super) fn of(_: &Path) -> Option<FileId> {
        None
    }
}
