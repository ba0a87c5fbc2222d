//! The file's identity and schema: a sagaflow store is told from any other
//! SQLite file, switched to WAL, and migrated on open.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::{BUSY_TIMEOUT, Durability, sql_error};
use crate::durable::store::StoreError;

/// `PRAGMA application_id` of a sagaflow store: "SAGF" in ASCII.
const APPLICATION_ID: i32 = 0x5341_4746;

/// The marker stored under `application` in `sagaflow_meta`.
const APPLICATION_MARKER: &str = "sagaflow";

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
    // Version 2.
    super::outbox::MIGRATION,
];

/// The schema version this code writes: the number of migrations.
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

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
pub(super) fn prepare_schema(
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
