//! The embedded default store: one SQLite file on the local disk, no server.
//!
//! SQLite is compiled in (`rusqlite` with `bundled`), so nothing has to be
//! installed. The file is in WAL mode: one writer and any number of readers at
//! once, and a commit appends to the log instead of rewriting pages.
//!
//! # Group commit
//!
//! A commit costs one `fsync` whatever it holds: measured here, SQLite commits
//! about 9k single records a second but about 300k a second at 64 records per
//! commit. So one writer thread owns the write connection; every `create` and
//! `append` is sent to it with a oneshot channel for its answer, and the writer
//! takes everything that is waiting (up to [`MAX_BATCH`]) into one transaction,
//! commits it, then answers every waiter. While one commit is syncing, the next
//! batch piles up: the busier the store, the bigger the batches.
//!
//! Reads go to a second connection on a thread of its own, so that neither a
//! long recovery query nor a commit blocks an async executor thread, and reads
//! never wait for the writer (WAL gives each read a consistent snapshot).
//!
//! # Schema
//!
//! Versioned: `sagaflow_meta` holds an application marker and the schema version;
//! the same version is in `PRAGMA user_version` and the file carries a fixed
//! `PRAGMA application_id`, so that `file(1)`-style tools and this code can tell a
//! sagaflow store from any other SQLite file. Migrations are an ordered list,
//! applied in one transaction on open. A file written by a newer version is
//! refused, not modified.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode};
use tokio::sync::oneshot;

mod apply;
mod open;
mod outbox;
mod read;
mod schema;
mod writer;

use self::read::{ReadJob, Reader};
use self::writer::{Done, Write, WriteRequest};
use super::store::{
    Claims, Entry, NewSaga, SagaFilter, SagaRecord, SagaStatus, Store, StoreError, StoredSaga,
};
use crate::SagaId;

/// How long a connection waits for a lock held by another connection (another
/// process opening the same file, or a checkpoint) before it reports the file
/// as locked.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How hard a commit tries to survive a crash before the store answers.
///
/// Both levels keep the file consistent after any crash; they differ in which
/// of the last commits may be missing afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Durability {
    /// `synchronous=FULL`: every commit is synced to the disk (`fsync`) before
    /// the write is acknowledged. An acknowledged transition survives a crash of
    /// the process, of the operating system and a power loss. The default.
    #[default]
    Full,
    /// `synchronous=NORMAL` (in WAL mode): a commit is handed to the operating
    /// system but synced only at checkpoints. An acknowledged transition survives
    /// a crash of the process, but a power loss or an operating-system crash may
    /// lose the last commits (the file stays consistent: it goes back to an
    /// earlier state). Then a step that ran may run again on recovery, which
    /// idempotency keys must absorb anyway. Use it when that is acceptable and
    /// the disk's sync is slow.
    Normal,
}

impl Durability {
    /// The `PRAGMA synchronous` value.
    pub(super) fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

/// The embedded durable store: sagas and their journals in one SQLite file.
///
/// Cheap to clone (an [`Arc`] inside); all clones share one file, one writer
/// thread and one reader thread. The threads stop, after committing whatever was
/// sent to them, when the last clone is dropped; dropping blocks until then,
/// which is at most one commit.
///
/// Concurrent `create` and `append` calls, from any number of tasks, are
/// committed together in one transaction (group commit); each call returns when
/// its write is durable to the [`Durability`] level chosen at open. A call whose
/// future is dropped after it was first polled may still be committed.
///
/// One `SqliteStore` per file: a store holds an exclusive lock on the file
/// `<file>.lock` next to the database for as long as it (or a clone) lives, and
/// a second [`open`](Self::open) of the same file, in this process or another,
/// fails while it does. Each store's writer numbers the journal entries and
/// each store's recovery takes up every running saga as its own, so two at once
/// would run one saga twice.
///
/// After each commit the writer checks that the path still names the file it
/// opened. If the file was deleted or replaced meanwhile, that commit and every
/// later write fail with an error naming the file, and, if the path is free,
/// what the store held is first written back to it (`VACUUM INTO`), so that
/// what was acknowledged before is not lost with the file.
///
/// ```no_run
/// use sagaflow::durable::{Durability, SqliteStore};
///
/// # fn main() -> Result<(), sagaflow::durable::StoreError> {
/// let store = SqliteStore::open("sagas.db", Durability::Full)?;
/// let shared = store.clone(); // same file, same writer
/// # let _ = shared;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    durability: Durability,
    /// `<file>.lock`, locked exclusively for the store's lifetime. Dropped after
    /// the threads are joined, so the file is closed before another store may
    /// open it.
    _lock: File,
    /// The sagas being run by the executors over this store.
    claims: Claims,
    /// `Some` until drop: dropping it tells the writer to finish.
    writes: Option<mpsc::Sender<WriteRequest>>,
    /// `Some` until drop: dropping it tells the reader to finish.
    reads: Option<mpsc::Sender<ReadJob>>,
    writer: Option<thread::JoinHandle<()>>,
    reader: Option<thread::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channels ends the threads' loops once they have drained
        // what was already sent; joining makes sure the file is closed (and its
        // WAL checkpointed) when the store is gone, so it can be reopened at once.
        drop(self.writes.take());
        drop(self.reads.take());
        for handle in [self.writer.take(), self.reader.take()]
            .into_iter()
            .flatten()
        {
            // A panicked thread has already failed its waiters (their oneshot
            // senders were dropped); there is nobody left to tell.
            let _ = handle.join();
        }
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("durability", &self.inner.durability)
            .finish()
    }
}

impl SqliteStore {
    /// Opens the store in the file at `path`, creating it (and its schema) if it
    /// does not exist; an older schema is migrated. The file's directory must
    /// exist.
    ///
    /// Fails, naming the file and what to do, if the file is not a SQLite
    /// database, is a SQLite database of some other application, was written by a
    /// newer version of sagaflow, is corrupt, or cannot be opened.
    ///
    /// Takes an exclusive advisory lock on `<path>.lock` (created if missing,
    /// never removed) for the store's lifetime: while this store or a clone of
    /// it lives, another `open` of the same file, in this process or another,
    /// fails with an error that names the file and says another store has it
    /// open. The lock goes when the last clone is dropped, or with the process.
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> Result<SqliteStore, StoreError> {
        Self::open_with(path.as_ref(), durability, true)
    }

    /// Opens the existing store at `path`, like [`open`](Self::open), but fails
    /// if the file does not exist instead of creating it: for tools and for
    /// recovery, where a missing file means a wrong path rather than a new store.
    pub fn open_existing(
        path: impl AsRef<Path>,
        durability: Durability,
    ) -> Result<SqliteStore, StoreError> {
        Self::open_with(path.as_ref(), durability, false)
    }

    /// The file this store is in, as given to `open`.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The durability level chosen at open.
    pub fn durability(&self) -> Durability {
        self.inner.durability
    }

    /// Reads the whole file and checks its structure (`PRAGMA integrity_check`).
    ///
    /// Opening only reads the file's header and schema, so a file damaged
    /// further in is found when a read reaches the damage; this finds it now.
    /// Takes time proportional to the size of the file.
    pub async fn verify(&self) -> Result<(), StoreError> {
        self.read(|r| r.verify()).await
    }

    fn stopped(&self, which: &str) -> StoreError {
        StoreError::new(format!(
            "sagaflow store {}: the {which} thread has stopped; drop this store and open \
             the file again",
            self.inner.path.display()
        ))
    }

    /// Sends one write to the writer and waits until it is committed.
    async fn write(&self, write: Write) -> Result<Done, StoreError> {
        let (ack, done) = oneshot::channel();
        let sender = self
            .inner
            .writes
            .as_ref()
            .ok_or_else(|| self.stopped("writer"))?;
        sender
            .send(WriteRequest { write, ack })
            .map_err(|_| self.stopped("writer"))?;
        done.await.map_err(|_| self.stopped("writer"))?
    }

    /// Runs `query` on the reader thread and waits for its answer.
    async fn read<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Reader) -> Result<T, StoreError> + Send + 'static,
    {
        let (answer, done) = oneshot::channel();
        let job: ReadJob = Box::new(move |reader| {
            // The caller may have gone away; then nobody wants the answer.
            let _ = answer.send(query(reader));
        });
        let sender = self
            .inner
            .reads
            .as_ref()
            .ok_or_else(|| self.stopped("reader"))?;
        sender.send(job).map_err(|_| self.stopped("reader"))?;
        done.await.map_err(|_| self.stopped("reader"))?
    }
}

impl Store for SqliteStore {
    async fn create(&self, saga: NewSaga) -> Result<(), StoreError> {
        self.write(Write::Create(saga)).await.map(drop)
    }

    async fn append_all(&self, id: SagaId, entries: Vec<Entry>) -> Result<(), StoreError> {
        self.write(Write::AppendAll(id, entries)).await.map(drop)
    }

    async fn append(&self, id: SagaId, entry: Entry) -> Result<(), StoreError> {
        self.write(Write::Append(id, entry)).await.map(drop)
    }

    /// Checked inside the writer's transaction, so no other write of this store
    /// comes between the check and the append.
    async fn append_if(
        &self,
        id: SagaId,
        status: SagaStatus,
        entry: Entry,
    ) -> Result<Result<(), Option<SagaStatus>>, StoreError> {
        Ok(
            match self.write(Write::AppendIf(id, status, entry)).await? {
                Done::Skipped(found) => Err(found),
                _ => Ok(()),
            },
        )
    }

    async fn claim_unfinished(&self) -> Result<Vec<SagaRecord>, StoreError> {
        // One process owns the file: every running or confirming saga is
        // ours to resume.
        self.read(|r| r.resumable()).await
    }

    async fn get(&self, id: SagaId) -> Result<Option<SagaRecord>, StoreError> {
        self.read(move |r| r.get(id)).await
    }

    /// One set for every clone: with one store per file, every executor over
    /// the file in this process shares it.
    fn claims(&self) -> Option<&Claims> {
        Some(&self.inner.claims)
    }

    async fn with_status(&self, status: SagaStatus) -> Result<Vec<SagaRecord>, StoreError> {
        self.read(move |r| r.by_status(status)).await
    }

    async fn list(&self, filter: SagaFilter) -> Result<Vec<StoredSaga>, StoreError> {
        self.read(move |r| r.list(&filter)).await
    }

    async fn history(&self, id: SagaId) -> Result<Option<StoredSaga>, StoreError> {
        self.read(move |r| r.history(id)).await
    }

    /// The delete is one transaction of the writer, so a saga retried or
    /// resolved at the same moment is either purged as it was or kept as it is.
    async fn purge(
        &self,
        finished_before: SystemTime,
        dry_run: bool,
    ) -> Result<Vec<SagaId>, StoreError> {
        let before = millis(finished_before);
        if dry_run {
            return self.read(move |r| r.finished_before(before)).await;
        }
        match self.write(Write::Purge(before)).await? {
            Done::Purged(ids) => Ok(ids),
            _ => Ok(Vec::new()),
        }
    }
}

// ---------------------------------------------------------------------------
// Errors

/// A SQLite error as a `StoreError` that names the file, says what was being
/// done and, for the failures a person can act on, what to do.
pub(super) fn sql_error(path: &Path, doing: &str, error: &rusqlite::Error) -> StoreError {
    let shown = path.display();
    let advice = match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => {
            return StoreError::new(format!(
                "sagaflow store {shown}: file is not a database (not a SQLite file, or \
                 encrypted); it is not a sagaflow store: check the path, or move the file \
                 away to start a new store ({error})"
            ));
        }
        Some(ErrorCode::DatabaseCorrupt) => {
            return StoreError::new(format!(
                "sagaflow store {shown}: file is corrupt ({doing}: {error}); restore it \
                 from a backup (`sqlite3 {shown} .recover` may save part of it)"
            ));
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "; the file is locked by another connection: is another process using this store?"
        }
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            "; check that the file and its directory exist and are readable and writable"
        }
        Some(ErrorCode::ReadOnly) => "; the file or its directory is read-only",
        Some(ErrorCode::DiskFull) => "; the disk is full",
        Some(ErrorCode::SystemIoFailure) => "; the disk reported an I/O error",
        _ => "",
    };
    StoreError::new(format!("sagaflow store {shown}: {doing}: {error}{advice}"))
}

/// The id as stored: 32 lowercase hex digits, as `SagaId` displays itself.
pub(super) fn id_text(id: SagaId) -> String {
    id.to_string()
}

pub(super) fn now_millis() -> i64 {
    millis(SystemTime::now())
}

/// `time` in Unix milliseconds, as stored (0 before 1970).
pub(super) fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The time stored as `millis` (clamped to 1970 if negative).
pub(super) fn time_of(millis: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

/// The statuses [`Store::purge`](crate::durable::Store::purge) may delete, as stored.
const FINISHED: &str = "('committed', 'compensated', 'resolved')";

/// The ids of the finished sagas whose status last changed before `before`
/// (Unix milliseconds), oldest first: what a purge deletes.
pub(super) fn finished_before(
    conn: &Connection,
    path: &Path,
    before: i64,
) -> Result<Vec<SagaId>, StoreError> {
    let fail = |e: rusqlite::Error| sql_error(path, "cannot look up finished sagas", &e);
    let sql = format!(
        "SELECT id FROM sagas WHERE status IN {FINISHED} AND updated_at < ?1 ORDER BY rowid"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(fail)?;
    let ids = stmt
        .query_map([before], |row| row.get::<_, String>(0))
        .map_err(fail)?
        .collect::<Result<Vec<String>, _>>()
        .map_err(fail)?;
    ids.iter()
        .map(|text| {
            text.parse::<SagaId>().map_err(|_| {
                StoreError::new(format!(
                    "sagaflow store {}: saga id {text:?} is not 32 hex digits; the file is damaged",
                    path.display()
                ))
            })
        })
        .collect()
}
