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

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, params};
use tokio::sync::oneshot;

use super::rows::{Records, encode};
use super::store::{
    Claims, Entry, NewSaga, SagaFilter, SagaRecord, SagaStatus, Store, StoreError, StoredSaga,
};
use crate::SagaId;

/// `PRAGMA application_id` of a sagaflow store: "SAGF" in ASCII.
const APPLICATION_ID: i32 = 0x5341_4746;

/// The marker stored under `application` in `sagaflow_meta`.
const APPLICATION_MARKER: &str = "sagaflow";

/// The most writes committed in one transaction. Bounds the latency of the
/// first waiter of a batch and the size of one WAL append.
const MAX_BATCH: usize = 1024;

/// How long a connection waits for a lock held by another connection (another
/// process opening the same file, or a checkpoint) before it reports the file
/// as locked.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many sagas' next sequence numbers the writer remembers before it starts
/// over (they are reloaded from the file on demand).
const SEQ_CACHE_LIMIT: usize = 100_000;

/// The schema migrations, in order: migration `i` takes the schema from version
/// `i` to version `i + 1`. Append only; never edit a released one.
const MIGRATIONS: &[&str] = &[
    // Version 1.
    "CREATE TABLE sagaflow_meta (
         key   TEXT PRIMARY KEY NOT NULL,
         value TEXT NOT NULL
     );
     INSERT INTO sagaflow_meta (key, value) VALUES ('application', 'sagaflow');
     CREATE TABLE sagas (
         id          TEXT PRIMARY KEY NOT NULL, -- 32 lowercase hex digits
         saga_type   TEXT NOT NULL,
         fingerprint TEXT NOT NULL,
         input       BLOB NOT NULL,
         status      TEXT NOT NULL,             -- SagaStatus::as_str
         created_at  INTEGER NOT NULL,          -- Unix milliseconds
         updated_at  INTEGER NOT NULL           -- when the status last changed
     );
     CREATE INDEX sagas_by_status ON sagas (status);
     CREATE TABLE journal (
         saga_id    TEXT NOT NULL,
         seq        INTEGER NOT NULL,           -- from 0, per saga, no gaps
         kind       TEXT NOT NULL,
         step_index INTEGER,
         attempt    INTEGER,
         payload    BLOB,                       -- step or saga output
         note       TEXT,                       -- error text, status, note
         at         INTEGER NOT NULL,           -- Unix milliseconds
         PRIMARY KEY (saga_id, seq)
     );",
];

/// The schema version this code writes: the number of migrations.
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

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
    fn pragma(self) -> &'static str {
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

    fn open_with(
        path: &Path,
        durability: Durability,
        create: bool,
    ) -> Result<SqliteStore, StoreError> {
        let shown = path.display();
        if path.is_dir() {
            return Err(StoreError::new(format!(
                "sagaflow store {shown}: is a directory, not a file; give the path of the \
                 store's file (for example {shown}/sagas.db)"
            )));
        }
        // An empty file is what SQLite makes of a new database, so `open` takes
        // it as one; `open_existing` is for a store that was written, and an
        // empty file there is a wrong path or a file cut short.
        if !create && std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0) {
            return Err(StoreError::new(format!(
                "sagaflow store {shown}: file is empty, not a sagaflow store; check the path, \
                 or use SqliteStore::open to start a new store in it"
            )));
        }
        if !path.exists() {
            if !create {
                return Err(StoreError::new(format!(
                    "sagaflow store {shown}: file does not exist; check the path, or use \
                     SqliteStore::open to create a new store"
                )));
            }
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            if !dir.is_dir() {
                return Err(StoreError::new(format!(
                    "sagaflow store {shown}: cannot create the file: directory {} does not \
                     exist; create it first",
                    dir.display()
                )));
            }
        }

        // One store per file, in this process or any other: each writer numbers
        // the journal entries itself, and each recovery takes up every running
        // saga as its own.
        let lock = lock_file(path)?;

        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let mut write = Connection::open_with_flags(path, flags)
            .map_err(|e| sql_error(path, "cannot open the file", &e))?;
        prepare_schema(&mut write, path, durability)?;

        // The file now exists, in WAL mode, with the current schema.
        let read = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| sql_error(path, "cannot open the file for reading", &e))?;
        read.busy_timeout(BUSY_TIMEOUT)
            .and_then(|()| read.pragma_update(None, "query_only", true))
            .map_err(|e| sql_error(path, "cannot set up the read connection", &e))?;

        let (writes, write_rx) = mpsc::channel::<WriteRequest>();
        let writer_state = Writer {
            conn: write,
            path: path.to_path_buf(),
            file: FileId::of(path),
            gone: None,
            next_seq: HashMap::new(),
        };
        let writer = thread::Builder::new()
            .name("sagaflow-sqlite-writer".into())
            .spawn(move || writer_state.run(write_rx))
            .map_err(|e| {
                StoreError::new(format!(
                    "sagaflow store {shown}: cannot start the writer thread: {e}"
                ))
            })?;

        let (reads, read_rx) = mpsc::channel::<ReadJob>();
        let mut reader_state = Reader {
            conn: read,
            path: path.to_path_buf(),
        };
        let reader = thread::Builder::new()
            .name("sagaflow-sqlite-reader".into())
            .spawn(move || {
                while let Ok(job) = read_rx.recv() {
                    job(&mut reader_state);
                }
            });
        let reader = match reader {
            Ok(reader) => reader,
            Err(e) => {
                drop(writes);
                let _ = writer.join();
                return Err(StoreError::new(format!(
                    "sagaflow store {shown}: cannot start the reader thread: {e}"
                )));
            }
        };

        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                durability,
                _lock: lock,
                claims: Claims::new(),
                writes: Some(writes),
                reads: Some(reads),
                writer: Some(writer),
                reader: Some(reader),
            }),
        })
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
                Done::Written | Done::Purged(_) => Ok(()),
            },
        )
    }

    async fn claim_unfinished(&self) -> Result<Vec<SagaRecord>, StoreError> {
        // One process owns the file: every running saga is ours to resume.
        self.read(|r| r.by_status(SagaStatus::Running)).await
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
            Done::Written | Done::Skipped(_) => Ok(Vec::new()),
        }
    }
}

/// Takes the store's exclusive lock: an advisory lock (`flock`-style, through
/// `File::try_lock`) on `<file>.lock`, a file of its own next to the database.
/// Not on the database itself: SQLite holds POSIX locks on that, which the
/// operating system releases when any descriptor of the file is closed.
///
/// The lock file is created if missing and never removed (removing it while
/// another store waits to open it would let two stores hold "the" lock).
fn lock_file(path: &Path) -> Result<File, StoreError> {
    let shown = path.display();
    let mut name = OsString::from(path.as_os_str());
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| {
            StoreError::new(format!(
                "sagaflow store {shown}: cannot open its lock file {}: {e}; check that the \
                 directory is writable",
                lock_path.display()
            ))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::new(format!(
            "sagaflow store {shown}: another store has this file open (its lock file {} is \
             held, by another SqliteStore in this process or by another process); open one \
             store per file and share it by cloning, or stop the other process first",
            lock_path.display()
        ))),
        Err(TryLockError::Error(e)) => Err(StoreError::new(format!(
            "sagaflow store {shown}: cannot lock its lock file {}: {e}",
            lock_path.display()
        ))),
    }
}

// ---------------------------------------------------------------------------
// Errors

/// A SQLite error as a `StoreError` that names the file, says what was being
/// done and, for the failures a person can act on, what to do.
fn sql_error(path: &Path, doing: &str, error: &rusqlite::Error) -> StoreError {
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

// ---------------------------------------------------------------------------
// Opening: identity, WAL, migrations

/// What a file holds, judged before anything is written to it.
enum Contents {
    /// No schema at all: a new file.
    Empty,
    /// A sagaflow store at this schema version.
    Sagaflow(i64),
    /// Something else, described.
    Foreign(String),
}

fn inspect(conn: &Connection, path: &Path) -> Result<Contents, StoreError> {
    let fail = |e: rusqlite::Error| sql_error(path, "cannot read the file's header and schema", &e);
    let application_id: i64 = conn
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .map_err(fail)?;
    let user_version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(fail)?;
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
        .map_err(fail)?;
    let has_meta: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'sagaflow_meta'",
            [],
            |row| row.get::<_, i64>(0),
        )
        .map_err(fail)?
        > 0;

    if objects == 0 && application_id == 0 && user_version == 0 {
        return Ok(Contents::Empty);
    }
    if application_id != 0 && application_id != i64::from(APPLICATION_ID) {
        return Ok(Contents::Foreign(format!(
            "its application_id is {application_id:#x}, not sagaflow's {APPLICATION_ID:#x}"
        )));
    }
    if !has_meta {
        return Ok(Contents::Foreign(format!(
            "it has {objects} tables or indexes but no sagaflow_meta table"
        )));
    }
    let meta = |key: &str| -> Result<Option<String>, StoreError> {
        conn.query_row(
            "SELECT value FROM sagaflow_meta WHERE key = ?1",
            [key],
            |row| row.get(0),
        )
        .optional()
        .map_err(|e| sql_error(path, "cannot read table sagaflow_meta", &e))
    };
    if meta("application")?.as_deref() != Some(APPLICATION_MARKER) {
        return Ok(Contents::Foreign(
            "its sagaflow_meta table lacks the sagaflow marker".into(),
        ));
    }
    let stored = meta("schema_version")?;
    let version = match stored.as_deref().map(str::parse::<i64>) {
        Some(Ok(version)) if version >= 0 => version,
        _ => {
            return Err(StoreError::new(format!(
                "sagaflow store {}: file is damaged: sagaflow_meta has schema_version {:?}, \
                 not a version number; restore the file from a backup",
                path.display(),
                stored
            )));
        }
    };
    // The two copies of the version should agree; if either says newer, the
    // file is newer (a migration may have been interrupted halfway by a bug).
    Ok(Contents::Sagaflow(version.max(user_version)))
}

/// Checks that the file is (or can become) a sagaflow store, switches it to WAL,
/// and brings its schema to [`SCHEMA_VERSION`].
fn prepare_schema(
    conn: &mut Connection,
    path: &Path,
    durability: Durability,
) -> Result<(), StoreError> {
    let shown = path.display();
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| sql_error(path, "cannot set the busy timeout", &e))?;

    // Judge the file before changing anything in it: a foreign or newer file is
    // refused untouched (switching it to WAL would already be a change).
    check_contents(inspect(conn, path)?, path)?;

    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| sql_error(path, "cannot switch the file to WAL mode", &e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::new(format!(
            "sagaflow store {shown}: SQLite refused WAL mode (journal_mode is {mode}); the \
             file must be on a local file system that supports shared memory"
        )));
    }
    conn.pragma_update(None, "synchronous", durability.pragma())
        .map_err(|e| sql_error(path, "cannot set synchronous", &e))?;
    // Checkpoint less often (every ~40 MiB of WAL instead of ~4 MiB) and keep more
    // pages cached: with many sagas in flight each commit touches many index
    // pages, and frequent checkpoints were a large share of the writer's time.
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)
        .and_then(|()| conn.pragma_update(None, "cache_size", -65_536))
        .map_err(|e| sql_error(path, "cannot tune the cache", &e))?;

    // Migrate under the write lock, judging the file again inside the
    // transaction: another process may have created or migrated it meanwhile.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| sql_error(path, "cannot lock the file to check its schema", &e))?;
    let from = match check_contents(inspect(&tx, path)?, path)? {
        Some(version) => version,
        None => return Ok(()),
    };
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        tx.execute_batch(migration).map_err(|e| {
            sql_error(
                path,
                &format!("migration to schema version {}", index + 1),
                &e,
            )
        })?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO sagaflow_meta (key, value) VALUES ('schema_version', ?1)",
        [SCHEMA_VERSION.to_string()],
    )
    .and_then(|_| tx.pragma_update(None, "user_version", SCHEMA_VERSION))
    .and_then(|()| tx.pragma_update(None, "application_id", APPLICATION_ID))
    .map_err(|e| sql_error(path, "cannot record the schema version", &e))?;
    tx.commit()
        .map_err(|e| sql_error(path, "cannot commit the schema migration", &e))
}

/// `Err` for a file that must not be touched; otherwise the schema version to
/// migrate from, or `None` if it is current.
fn check_contents(contents: Contents, path: &Path) -> Result<Option<i64>, StoreError> {
    let shown = path.display();
    match contents {
        Contents::Empty => Ok(Some(0)),
        Contents::Foreign(why) => Err(StoreError::new(format!(
            "sagaflow store {shown}: file is a SQLite database but not a sagaflow store \
             ({why}); it was left untouched: give the store a path of its own"
        ))),
        Contents::Sagaflow(version) if version > SCHEMA_VERSION => Err(StoreError::new(format!(
            "sagaflow store {shown}: file has schema version {version}, written by a newer \
             sagaflow; this version knows schema versions up to {SCHEMA_VERSION}; it was \
             left untouched: upgrade sagaflow to use it"
        ))),
        Contents::Sagaflow(version) if version == SCHEMA_VERSION => Ok(None),
        Contents::Sagaflow(version) => Ok(Some(version)),
    }
}

/// The id as stored: 32 lowercase hex digits, as `SagaId` displays itself.
fn id_text(id: SagaId) -> String {
    id.to_string()
}

fn now_millis() -> i64 {
    millis(SystemTime::now())
}

/// `time` in Unix milliseconds, as stored (0 before 1970).
fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The time stored as `millis` (clamped to 1970 if negative).
fn time_of(millis: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

/// The ids of the finished sagas whose status last changed before `before`
/// (Unix milliseconds), oldest first: what a purge deletes.
fn finished_before(conn: &Connection, path: &Path, before: i64) -> Result<Vec<SagaId>, StoreError> {
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

// ---------------------------------------------------------------------------
// The writer

enum Write {
    Create(NewSaga),
    Append(SagaId, Entry),
    AppendAll(SagaId, Vec<Entry>),
    /// An append if the saga has this status, checked in the same transaction.
    AppendIf(SagaId, SagaStatus, Entry),
    /// Deletes the finished sagas whose status last changed before this time
    /// (Unix milliseconds).
    Purge(i64),
}

/// What a write did, once committed.
#[derive(Debug)]
enum Done {
    Written,
    /// A conditional append found the saga missing (`None`) or with another
    /// status, and wrote nothing.
    Skipped(Option<SagaStatus>),
    /// A purge deleted these sagas.
    Purged(Vec<SagaId>),
}

struct WriteRequest {
    write: Write,
    ack: oneshot::Sender<Result<Done, StoreError>>,
}

struct Writer {
    conn: Connection,
    path: PathBuf,
    /// The file the connection opened, to notice when the path no longer
    /// names it (deleted or replaced): its commits would then be lost.
    file: Option<FileId>,
    /// Set once that happened: every later write is refused with it.
    gone: Option<StoreError>,
    /// The next journal sequence number of each saga the writer has touched and
    /// that has not finished: saves a lookup per append. Only committed state.
    next_seq: HashMap<SagaId, i64>,
}

/// Why one write of a batch failed.
enum Failure {
    /// Refused before anything was written (unknown saga, duplicate id): the
    /// rest of the transaction goes on.
    Refused(StoreError),
    /// A statement failed: the transaction is rolled back and the batch is tried
    /// again without this write, if the failure is its own (a constraint).
    Statement(StoreError, bool),
}

impl Writer {
    fn run(mut self, requests: mpsc::Receiver<WriteRequest>) {
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
            match apply(&tx, path, &self.next_seq, &mut pending, &request.write, now) {
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
struct FileId(u64, u64);

impl FileId {
    /// The file at `path` now, or `None` if there is none (or this platform
    /// cannot tell; then nothing is checked).
    #[cfg(unix)]
    fn of(path: &Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path)
            .ok()
            .map(|m| FileId(m.dev(), m.ino()))
    }

    #[cfg(not(unix))]
    fn of(_: &Path) -> Option<FileId> {
        None
    }
}

/// The next sequence number of saga `id`, or `None` if it does not exist: from
/// this transaction, else from the cache, else from the file.
fn next_seq(
    tx: &Transaction<'_>,
    path: &Path,
    cache: &HashMap<SagaId, i64>,
    pending: &HashMap<SagaId, Option<i64>>,
    id: SagaId,
) -> Result<Option<i64>, Failure> {
    if let Some(&next) = pending.get(&id) {
        if next.is_some() {
            return Ok(next);
        }
        // Finished in this transaction: not cached, but it exists; look it up.
    } else if let Some(&next) = cache.get(&id) {
        return Ok(Some(next));
    }
    let found: Option<Option<i64>> = tx
        .prepare_cached(
            "SELECT (SELECT max(seq) FROM journal WHERE saga_id = ?1) FROM sagas WHERE id = ?1",
        )
        .and_then(|mut stmt| stmt.query_row([id_text(id)], |row| row.get(0)).optional())
        .map_err(|e| {
            Failure::Statement(
                sql_error(path, &format!("cannot look up saga {id}"), &e),
                false,
            )
        })?;
    Ok(found.map(|max| max.map_or(0, |max| max + 1)))
}

fn apply(
    tx: &Transaction<'_>,
    path: &Path,
    cache: &HashMap<SagaId, i64>,
    pending: &mut HashMap<SagaId, Option<i64>>,
    write: &Write,
    now: i64,
) -> Result<Done, Failure> {
    let statement = |doing: String| {
        move |e: rusqlite::Error| {
            let own = matches!(
                e.sqlite_error_code(),
                Some(ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch)
            );
            Failure::Statement(sql_error(path, &doing, &e), own)
        }
    };
    match write {
        Write::AppendAll(id, entries) => {
            for entry in entries {
                apply(
                    tx,
                    path,
                    cache,
                    pending,
                    &Write::Append(*id, entry.clone()),
                    now,
                )?;
            }
        }
        Write::AppendIf(id, expected, entry) => {
            // Sees this transaction's earlier writes: of two conditional appends
            // in one batch, the second finds the status the first left.
            let found: Option<String> = tx
                .prepare_cached("SELECT status FROM sagas WHERE id = ?1")
                .and_then(|mut stmt| stmt.query_row([id_text(*id)], |row| row.get(0)).optional())
                .map_err(|e| {
                    Failure::Statement(
                        sql_error(path, &format!("cannot look up saga {id}"), &e),
                        false,
                    )
                })?;
            let Some(word) = found else {
                return Ok(Done::Skipped(None));
            };
            let status = SagaStatus::parse(&word).ok_or_else(|| {
                Failure::Refused(StoreError::new(format!(
                    "sagaflow store {}: saga {id} has unknown status {word:?}; the file is \
                     damaged or was written by a newer sagaflow",
                    path.display()
                )))
            })?;
            if status != *expected {
                return Ok(Done::Skipped(Some(status)));
            }
            return apply(
                tx,
                path,
                cache,
                pending,
                &Write::Append(*id, entry.clone()),
                now,
            );
        }
        Write::Purge(before) => {
            let ids =
                finished_before(tx, path, *before).map_err(|e| Failure::Statement(e, false))?;
            for id in &ids {
                for table in [
                    "DELETE FROM journal WHERE saga_id = ?1",
                    "DELETE FROM sagas WHERE id = ?1",
                ] {
                    tx.prepare_cached(table)
                        .and_then(|mut stmt| stmt.execute([id_text(*id)]))
                        .map_err(statement(format!("cannot purge saga {id}")))?;
                }
                pending.insert(*id, None);
            }
            return Ok(Done::Purged(ids));
        }
        Write::Create(saga) => {
            let id = saga.id;
            if next_seq(tx, path, cache, pending, id)?.is_some() {
                return Err(Failure::Refused(StoreError::new(format!(
                    "sagaflow store {}: saga {id} already exists; a saga id is created once",
                    path.display()
                ))));
            }
            tx.prepare_cached(
                "INSERT INTO sagas (id, saga_type, fingerprint, input, status, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    id_text(id),
                    saga.saga_type,
                    saga.fingerprint,
                    saga.input,
                    SagaStatus::Running.as_str(),
                    now
                ])
            })
            .map_err(statement(format!("cannot create saga {id}")))?;
            pending.insert(id, Some(0));
        }
        Write::Append(id, entry) => {
            let id = *id;
            let Some(seq) = next_seq(tx, path, cache, pending, id)? else {
                return Err(Failure::Refused(StoreError::new(format!(
                    "sagaflow store {}: cannot append to saga {id}: no such saga in this store",
                    path.display()
                ))));
            };
            let new_status = match entry {
                Entry::Finished { status, .. } => Some(*status),
                Entry::Intervention { retry: true, .. } => Some(SagaStatus::Running),
                Entry::Intervention { retry: false, .. } => Some(SagaStatus::Resolved),
                _ => None,
            };
            let row = encode(entry.clone());
            tx.prepare_cached(
                "INSERT INTO journal (saga_id, seq, kind, step_index, attempt, payload, note, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    id_text(id),
                    seq,
                    row.kind,
                    row.step_index,
                    row.attempt,
                    row.payload,
                    row.note,
                    now
                ])
            })
            .map_err(statement(format!("cannot append entry {seq} to saga {id}")))?;
            if let Some(status) = new_status {
                tx.prepare_cached("UPDATE sagas SET status = ?2, updated_at = ?3 WHERE id = ?1")
                    .and_then(|mut stmt| stmt.execute(params![id_text(id), status.as_str(), now]))
                    .map_err(statement(format!("cannot set the status of saga {id}")))?;
            }
            // A finished saga is rarely written again: forget it rather than
            // keep one cache entry per saga ever run. A retried one is reloaded.
            let keep = !matches!(entry, Entry::Finished { .. });
            pending.insert(id, keep.then_some(seq + 1));
        }
    }
    Ok(Done::Written)
}

// ---------------------------------------------------------------------------
// The reader

type ReadJob = Box<dyn FnOnce(&mut Reader) + Send>;

struct Reader {
    conn: Connection,
    path: PathBuf,
}

/// Columns of the one query every read uses: each saga with its journal rows, in
/// one statement so that a read sees one snapshot of the file.
const SELECT_SAGAS: &str = "
    SELECT s.id, s.saga_type, s.fingerprint, s.input, s.status,
           j.seq, j.kind, j.step_index, j.attempt, j.payload, j.note,
           s.created_at, s.updated_at, j.at
    FROM sagas AS s LEFT JOIN journal AS j ON j.saga_id = s.id";

/// The statuses [`Store::purge`] may delete, as stored.
const FINISHED: &str = "('committed', 'compensated', 'resolved')";

impl Reader {
    fn get(&mut self, id: SagaId) -> Result<Option<SagaRecord>, StoreError> {
        let sql = format!("{SELECT_SAGAS} WHERE s.id = ?1 ORDER BY j.seq");
        Ok(self.query(&sql, id_text(id))?.pop())
    }

    /// Oldest first: rowids grow with insertion (a purge deletes rows, but a
    /// new row's rowid is still above every remaining one).
    fn by_status(&mut self, status: SagaStatus) -> Result<Vec<SagaRecord>, StoreError> {
        let sql = format!("{SELECT_SAGAS} WHERE s.status = ?1 ORDER BY s.rowid, j.seq");
        self.query(&sql, status.as_str().to_owned())
    }

    fn history(&mut self, id: SagaId) -> Result<Option<StoredSaga>, StoreError> {
        let sql = format!("{SELECT_SAGAS} WHERE s.id = ?1 ORDER BY j.seq");
        Ok(self.query_timed(&sql, &[&id_text(id)])?.pop())
    }

    /// Newest first; the limit counts sagas, not journal rows.
    fn list(&mut self, filter: &SagaFilter) -> Result<Vec<StoredSaga>, StoreError> {
        let mut conditions = Vec::new();
        let mut values: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(status) = filter.status {
            values.push(status.as_str().to_owned().into());
            conditions.push(format!("status = ?{}", values.len()));
        }
        if let Some(saga_type) = &filter.saga_type {
            values.push(saga_type.clone().into());
            conditions.push(format!("saga_type = ?{}", values.len()));
        }
        if let Some(since) = filter.since {
            values.push(millis(since).into());
            conditions.push(format!("created_at >= ?{}", values.len()));
        }
        let limit = filter
            .limit
            .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        values.push(limit.into());
        let condition = match conditions.is_empty() {
            true => String::new(),
            false => format!("WHERE {}", conditions.join(" AND ")),
        };
        let sql = format!(
            "{SELECT_SAGAS} WHERE s.id IN (SELECT id FROM sagas {condition} \
             ORDER BY rowid DESC LIMIT ?{}) ORDER BY s.rowid DESC, j.seq",
            values.len()
        );
        let params: Vec<&dyn rusqlite::ToSql> =
            values.iter().map(|v| v as &dyn rusqlite::ToSql).collect();
        self.query_timed(&sql, &params)
    }

    /// The ids of the finished sagas whose status last changed before `before`
    /// (Unix milliseconds), oldest first.
    fn finished_before(&mut self, before: i64) -> Result<Vec<SagaId>, StoreError> {
        let path = self.path.as_path();
        finished_before(&self.conn, path, before)
    }

    fn query(&mut self, sql: &str, param: String) -> Result<Vec<SagaRecord>, StoreError> {
        let sagas = self.query_timed(sql, &[&param])?;
        Ok(sagas.into_iter().map(|s| s.record).collect())
    }

    fn query_timed(
        &mut self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<StoredSaga>, StoreError> {
        let path = self.path.as_path();
        let fail = |e: rusqlite::Error| sql_error(path, "cannot read sagas", &e);
        let mut stmt = self.conn.prepare_cached(sql).map_err(fail)?;
        let mut rows = stmt.query(params).map_err(fail)?;
        let store = format!("sagaflow store {}", path.display());
        let mut records = Records::new(&store, "file");
        // The times, saga by saga, beside the records the shared builder makes.
        let mut times: Vec<(SystemTime, SystemTime, Vec<SystemTime>)> = Vec::new();
        while let Some(row) = rows.next().map_err(fail)? {
            let id_text: String = row.get(0).map_err(fail)?;
            if records.is_new(&id_text) {
                let status: String = row.get(4).map_err(fail)?;
                records.saga(
                    &id_text,
                    &status,
                    row.get(1).map_err(fail)?,
                    row.get(2).map_err(fail)?,
                    row.get(3).map_err(fail)?,
                )?;
                times.push((
                    time_of(row.get(11).map_err(fail)?),
                    time_of(row.get(12).map_err(fail)?),
                    Vec::new(),
                ));
            }
            let Some(seq) = row.get::<_, Option<i64>>(5).map_err(fail)? else {
                continue; // LEFT JOIN: a saga with no entries yet
            };
            let fields = (|| -> rusqlite::Result<_> {
                Ok((
                    row.get(6)?,
                    row.get(7)?,
                    row.get(8)?,
                    row.get(9)?,
                    row.get(10)?,
                ))
            })()
            .map_err(|e| e.to_string());
            records.entry(seq, fields)?;
            let at: i64 = row.get(13).map_err(fail)?;
            if let Some((_, _, entry_times)) = times.last_mut() {
                entry_times.push(time_of(at));
            }
        }
        Ok(records
            .done()
            .into_iter()
            .zip(times)
            .map(|(record, (created, updated, entry_times))| StoredSaga {
                record,
                created_at: Some(created),
                updated_at: Some(updated),
                entry_times,
            })
            .collect())
    }

    fn verify(&mut self) -> Result<(), StoreError> {
        let path = self.path.as_path();
        let mut problems = Vec::new();
        self.conn
            .pragma_query(None, "integrity_check", |row| {
                problems.push(row.get::<_, String>(0)?);
                Ok(())
            })
            .map_err(|e| sql_error(path, "integrity check", &e))?;
        if problems.len() == 1 && problems[0] == "ok" {
            return Ok(());
        }
        Err(StoreError::new(format!(
            "sagaflow store {}: file is corrupt: {}; restore it from a backup",
            path.display(),
            problems.join("; ")
        )))
    }
}
