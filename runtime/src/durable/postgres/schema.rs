//! The store's tables, in a PostgreSQL schema of its own: created, checked and
//! migrated on connect.
//!
//! Identifiers (the schema's name) cannot be statement parameters, so the name
//! is checked to be a plain lowercase identifier and quoted wherever it is put
//! into a statement; every value still goes in as a parameter.

use deadpool_postgres::Object;

use super::error::{Server, pg_error};
use crate::durable::store::StoreError;

/// The marker stored under `application` in `sagaflow_meta`.
const APPLICATION_MARKER: &str = "sagaflow";

/// The schema migrations, in order: migration `i` takes the schema from version
/// `i` to version `i + 1`. `{s}` is the quoted schema name. Append only; never
/// edit a released one.
const MIGRATIONS: &[&str] = &[
    // Version 1.
    "CREATE TABLE {s}.sagaflow_meta (
         key   text PRIMARY KEY,
         value text NOT NULL
     );
     INSERT INTO {s}.sagaflow_meta (key, value) VALUES ('application', 'sagaflow');
     CREATE TABLE {s}.sagas (
         id          text PRIMARY KEY,          -- 32 lowercase hex digits
         n           bigserial NOT NULL,        -- creation order
         saga_type   text NOT NULL,
         fingerprint text NOT NULL,
         input       bytea NOT NULL,
         status      text NOT NULL,             -- SagaStatus::as_str
         next_seq    bigint NOT NULL DEFAULT 0, -- the journal's next seq
         owner       text,                      -- the store holding the lease
         token       bigint NOT NULL DEFAULT 0, -- fencing token: +1 per claim
         lease_until timestamptz,               -- server time
         created_at  timestamptz NOT NULL,
         updated_at  timestamptz NOT NULL       -- when the status last changed
     );
     CREATE INDEX sagas_by_status ON {s}.sagas (status, n);
     CREATE TABLE {s}.journal (
         saga_id    text NOT NULL,
         seq        bigint NOT NULL,            -- from 0, per saga, no gaps
         kind       text NOT NULL,
         step_index bigint,
         attempt    bigint,
         payload    bytea,                      -- step or saga output
         note       text,                       -- error text, status, note
         at         timestamptz NOT NULL,
         PRIMARY KEY (saga_id, seq)
     );",
    // Version 2: the outbox (documented on `impl Outbox for PgStore`). Written to
    // be run again over itself, as a test that winds the version back does.
    "CREATE TABLE IF NOT EXISTS {s}.outbox (
         id           text PRIMARY KEY,         -- Message::id, unique in the store
         ord          bigserial NOT NULL,       -- the order messages were written in
         saga_id      text NOT NULL,
         seq          bigint NOT NULL,          -- journal seq of the `sent` entry
         n            bigint NOT NULL,          -- position in that entry, from 0
         destination  text NOT NULL,
         key          text,
         payload      bytea NOT NULL,           -- JSON
         created_ms   bigint NOT NULL,          -- Unix milliseconds, as made
         state        text NOT NULL,            -- MessageState::as_str
         attempts     bigint NOT NULL,
         available_at timestamptz NOT NULL,     -- not claimed before (backoff)
         lease_token  bigint,                   -- the claim holding it, if any
         lease_until  timestamptz,              -- server time
         last_error   text,
         delivered_at timestamptz
     );
     CREATE UNIQUE INDEX IF NOT EXISTS outbox_order ON {s}.outbox (saga_id, seq, n);
     CREATE INDEX IF NOT EXISTS outbox_pending ON {s}.outbox (saga_id, seq, n) WHERE state = 'pending';
     CREATE INDEX IF NOT EXISTS outbox_queue ON {s}.outbox (ord) WHERE state = 'pending';",
];

/// The schema version this code writes: the number of migrations.
pub(super) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Checks that `name` can name the store's schema: a plain lowercase SQL
/// identifier, so that quoting it is all it takes to put it into a statement.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if !first_ok
        || name.len() > 63
        || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!(
            "schema name {name:?} is not a plain identifier: use 1 to 63 lowercase ASCII \
             letters, digits and `_`, not starting with a digit"
        ));
    }
    Ok(())
}

/// What the schema holds, judged before anything is written to it.
enum Contents {
    /// No schema, or an empty one.
    Empty,
    /// A sagaflow store at this schema version.
    Sagaflow(i64),
    /// Something else, described.
    Foreign(String),
}

async fn inspect(
    tx: &deadpool_postgres::Transaction<'_>,
    server: &Server,
) -> Result<Contents, StoreError> {
    let schema = server.schema();
    let fail = |e: tokio_postgres::Error| pg_error(server, "cannot read the schema's tables", &e);
    let tables: Vec<String> = tx
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        )
        .await
        .map_err(fail)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if tables.is_empty() {
        return Ok(Contents::Empty);
    }
    if !tables.iter().any(|t| t == "sagaflow_meta") {
        return Ok(Contents::Foreign(format!(
            "it has {} tables ({}) but no sagaflow_meta table",
            tables.len(),
            tables.join(", ")
        )));
    }
    let sql = format!(
        "SELECT key, value FROM {}.sagaflow_meta WHERE key IN ('application', 'schema_version')",
        server.quoted_schema()
    );
    let rows = tx
        .query(sql.as_str(), &[])
        .await
        .map_err(|e| pg_error(server, "cannot read table sagaflow_meta", &e))?;
    let meta = |key: &str| -> Option<String> {
        rows.iter()
            .find(|row| row.get::<_, &str>(0) == key)
            .map(|row| row.get(1))
    };
    if meta("application").as_deref() != Some(APPLICATION_MARKER) {
        return Ok(Contents::Foreign(
            "its sagaflow_meta table lacks the sagaflow marker".into(),
        ));
    }
    let stored = meta("schema_version");
    match stored.as_deref().map(str::parse::<i64>) {
        Some(Ok(version)) if version >= 0 => Ok(Contents::Sagaflow(version)),
        _ => Err(StoreError::new(format!(
            "{server}: the store is damaged: sagaflow_meta has schema_version {stored:?}, not \
             a version number; restore the database from a backup"
        ))),
    }
}

/// Brings the store's schema to [`SCHEMA_VERSION`], creating it if needed, or
/// refuses, untouched, a schema that is not a sagaflow store or is newer.
///
/// Runs under a transaction-level advisory lock, so that two stores connecting
/// at once do not both create or migrate it.
pub(super) async fn prepare(client: &mut Object, server: &Server) -> Result<(), StoreError> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| pg_error(server, "cannot begin the schema check", &e))?;
    // One lock per schema name, held until this transaction ends.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('sagaflow schema ' || $1))",
        &[&server.schema()],
    )
    .await
    .map_err(|e| pg_error(server, "cannot lock the schema to check it", &e))?;
    let from = match inspect(&tx, server).await? {
        Contents::Empty => 0,
        Contents::Foreign(why) => {
            return Err(StoreError::new(format!(
                "{server}: schema {:?} of database {:?} is not a sagaflow store ({why}); it was \
                 left untouched: give the store a schema of its own (`PgConfig::schema`)",
                server.schema(),
                server.database()
            )));
        }
        Contents::Sagaflow(version) if version > SCHEMA_VERSION => {
            return Err(StoreError::new(format!(
                "{server}: schema {:?} of database {:?} has sagaflow schema version {version}, \
                 written by a newer sagaflow; this version knows schema versions up to \
                 {SCHEMA_VERSION}; it was left untouched: upgrade sagaflow to use it",
                server.schema(),
                server.database()
            )));
        }
        Contents::Sagaflow(version) if version == SCHEMA_VERSION => return Ok(()),
        Contents::Sagaflow(version) => version,
    };
    let quoted = server.quoted_schema();
    tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {quoted}"))
        .await
        .map_err(|e| pg_error(server, "cannot create the schema", &e))?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        tx.batch_execute(&migration.replace("{s}", &quoted))
            .await
            .map_err(|e| {
                pg_error(
                    server,
                    &format!("migration to schema version {}", index + 1),
                    &e,
                )
            })?;
    }
    let sql = format!(
        "INSERT INTO {quoted}.sagaflow_meta (key, value) VALUES ('schema_version', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    );
    tx.execute(sql.as_str(), &[&SCHEMA_VERSION.to_string()])
        .await
        .map_err(|e| pg_error(server, "cannot record the schema version", &e))?;
    tx.commit()
        .await
        .map_err(|e| pg_error(server, "cannot commit the schema migration", &e))
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["sagaflow", "_x", "t_1_b", &"a".repeat(63)] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "1a",
            "Sagaflow",
            "a-b",
            "a b",
            "a\"b",
            &"a".repeat(64),
            "é",
        ] {
            let error = check_name(bad).unwrap_err();
            assert!(error.contains("not a plain identifier"), "{bad}: {error}");
        }
    }
}
