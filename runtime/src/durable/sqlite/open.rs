//! Opening a store: the checks on the path that give a person a clear error,
//! the lock that makes one store per file, the two connections, and the writer
//! and reader threads.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

use rusqlite::{Connection, OpenFlags};

use super::read::{ReadJob, Reader};
use super::schema::prepare_schema;
use super::writer::{FileId, WriteRequest, Writer};
use super::{BUSY_TIMEOUT, Durability, Inner, SqliteStore, sql_error};
use crate::durable::store::{Claims, StoreError};

/// The writer's and reader's threads and the channels to them.
struct Threads {
    writes: mpsc::Sender<WriteRequest>,
    reads: mpsc::Sender<ReadJob>,
    writer: thread::JoinHandle<()>,
    reader: thread::JoinHandle<()>,
}

impl SqliteStore {
    pub(super) fn open_with(
        path: &Path,
        durability: Durability,
        create: bool,
    ) -> Result<SqliteStore, StoreError> {
        check_path(path, create)?;
        // One store per file, in this process or any other: each writer numbers
        // the journal entries itself, and each recovery takes up every running
        // saga as its own.
        let lock = lock_file(path)?;
        let (write, read) = connect(path, durability, create)?;
        let threads = start_threads(path, write, read)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                durability,
                _lock: lock,
                claims: Claims::new(),
                writes: Some(threads.writes),
                reads: Some(threads.reads),
                writer: Some(threads.writer),
                reader: Some(threads.reader),
            }),
        })
    }
}

/// Refuses, with words that say what to do, a path that is a directory, an
/// empty or missing file for `open_existing`, or a new file in a directory
/// that does not exist.
fn check_path(path: &Path, create: bool) -> Result<(), StoreError> {
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
    Ok(())
}

/// The write connection (which brings the schema up to date) and the
/// read-only one.
fn connect(
    path: &Path,
    durability: Durability,
    create: bool,
) -> Result<(Connection, Connection), StoreError> {
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
    Ok((write, read))
}

fn start_threads(path: &Path, write: Connection, read: Connection) -> Result<Threads, StoreError> {
    let shown = path.display();
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
    Ok(Threads {
        writes,
        reads,
        writer,
        reader,
    })
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
