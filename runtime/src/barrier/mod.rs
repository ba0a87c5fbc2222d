//! The barrier for a TCC participant: makes its try, confirm and cancel safe
//! against repeated calls, empty cancels and late tries.
//!
//! A try-confirm-cancel participant (the service that holds a seat, reserves
//! stock, freezes an amount) is called over a network by a coordinator that
//! retries. Three things then go wrong, as DTM and Seata found:
//!
//! - **a repeated phase**: a retried try, confirm or cancel arrives twice and
//!   reserves (or releases) twice;
//! - **an empty cancel**: the try never reached the participant (lost, or still
//!   on its way) and the coordinator cancels; there is nothing to release, and
//!   the cancel must do nothing;
//! - **a hanging try**: that try arrives *after* its cancel and reserves; no
//!   cancel will ever come again to release it.
//!
//! The barrier answers, for each call, whether the participant should do its
//! work now ([`Proceed::Run`]) or do nothing ([`Proceed::Skip`], with the
//! [`SkipReason`]). It writes one row per `(key, phase)` into a table of the
//! participant's own database, **inside the transaction that makes the
//! phase's effects**, so that the row and the effects commit together or not
//! at all:
//!
//! 1. begin a transaction on the participant's database;
//! 2. call `SqliteBarrier::try_phase` (or `confirm_phase`, `cancel_phase`,
//!    or the `PgBarrier` ones) with the step's idempotency key;
//! 3. on [`Proceed::Run`], make the phase's effects in that same transaction;
//!    on [`Proceed::Skip`], make none (answer the coordinator with success:
//!    the phase is done, or has nothing to do);
//! 4. commit.
//!
//! The key is the step's idempotency key, which the saga side carries to the
//! participant (for example `ctx.idempotency_key().to_string()` in a header,
//! see [`StepContext::idempotency_key`](crate::StepContext::idempotency_key)):
//! the same for a step's try, confirm and cancel and for every retry of them.
//!
//! # What it protects, and what not
//!
//! Only the effects made **in that same database transaction**. An email sent,
//! a call to a third service or a write to another database is not undone when
//! the transaction rolls back, and is repeated when the phase is; for those,
//! write an outbox row in the transaction instead (see [`outbox`](crate::outbox)).
//! A barrier call whose transaction rolls back leaves no row, so the retried
//! phase runs again, as it should.
//!
//! # The rules
//!
//! | call | rows already there for the key | answer | rows written |
//! |------|-------------------------------|--------|--------------|
//! | try | none | `Run` | `try` |
//! | try | `try` (from a try) | `Skip(Repeated)` | none |
//! | try | `try` (written by a cancel) | `Skip(TryAfterCancel)` | none |
//! | confirm | no `confirm` | `Run` | `confirm` |
//! | confirm | `confirm` | `Skip(Repeated)` | none |
//! | cancel | `try`, no `cancel` | `Run` | `cancel` |
//! | cancel | none | `Skip(EmptyCancel)` | `try` marker and `cancel` |
//! | cancel | `cancel` | `Skip(Repeated)` | none |
//!
//! Confirm is not checked against cancel: the coordinator decides one of them
//! for a key, never both (sagaflow records its decision before it confirms).
//!
//! # How the races are settled
//!
//! Each call is an `INSERT .. ON CONFLICT DO NOTHING` of its row, read by the
//! number of rows it inserted, as DTM does: two transactions inserting the
//! same `(key, phase)` serialize on the primary key. A cancel first inserts
//! the `try` row itself (marked as written by the cancel), then its own. So of
//! a try and a cancel racing for one key, exactly one inserts the `try` row:
//!
//! - the try did: it runs; the cancel, once the try committed, finds the row
//!   and runs too (it releases what the try reserved);
//! - the cancel did: it is empty, and the try, once the cancel committed,
//!   finds the marker and is refused.
//!
//! Never a try that runs with an empty cancel (a hanging reservation), never a
//! try refused with a cancel that releases something nobody reserved.
//!
//! On PostgreSQL this holds at `READ COMMITTED` (the default), where the
//! second insert waits for the first transaction and then does nothing; at
//! `REPEATABLE READ` or `SERIALIZABLE` the second transaction fails with a
//! serialization error instead (a [`BarrierError`]), to be retried whole. On
//! SQLite, where a write locks the whole database, begin the transaction with
//! `BEGIN IMMEDIATE` (`rusqlite::TransactionBehavior::Immediate`) and set a
//! busy timeout, so that a second writer waits instead of failing with
//! `SQLITE_BUSY` half-way.
//!
//! # The table
//!
//! The table defaults to [`DEFAULT_TABLE`] and is created by
//! `SqliteBarrier::ensure_table` or `PgBarrier::ensure_table`; for users
//! who migrate their schema themselves, the DDL is (SQLite, then PostgreSQL):
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS sagaflow_barrier (
//!     key        TEXT NOT NULL,
//!     phase      TEXT NOT NULL,          -- 'try', 'confirm' or 'cancel'
//!     reason     TEXT NOT NULL,          -- the phase whose call wrote the row
//!     created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
//!     PRIMARY KEY (key, phase)
//! );
//! CREATE TABLE IF NOT EXISTS sagaflow_barrier (
//!     key        TEXT NOT NULL,
//!     phase      TEXT NOT NULL,
//!     reason     TEXT NOT NULL,
//!     created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
//!     PRIMARY KEY (key, phase)
//! );
//! ```
//!
//! `reason` is what tells a repeated try from a try after its cancel. Rows are
//! never deleted by the barrier: delete old ones (by `created_at`) once no
//! phase of their keys can arrive any more, as long after as the coordinator
//! may still retry.
//!
//! # Mapping to DTM's barrier
//!
//! DTM's `dtm_barrier.barrier` table has a unique key over
//! `(gid, branch_id, op, barrier_id)` and a `reason` column; its
//! `BranchBarrier.Call` inserts the origin op (`try` for a `cancel`) and then
//! the op itself with `INSERT IGNORE` / `ON CONFLICT DO NOTHING`, skips a
//! cancel whose origin insert succeeded (empty compensation) and any op whose
//! own insert did not (repeated or hanging). Here `key` stands for
//! `(gid, branch_id, barrier_id)` (a sagaflow idempotency key names the saga,
//! the step and its call), `phase` for `op`, and the decision is returned to
//! the caller, who runs its work in the open transaction, instead of a
//! callback. Seata's `tcc_fence_log` table does the same with a status column.
//!
//! # Example
//!
//! A seat-holding participant on SQLite:
//!
//! ```
//! use rusqlite::{Connection, TransactionBehavior};
//! use sagaflow::barrier::{Proceed, SkipReason, SqliteBarrier};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut db = Connection::open_in_memory()?;
//! db.execute("CREATE TABLE holds (key TEXT PRIMARY KEY, seat TEXT NOT NULL)", [])?;
//! let barrier = SqliteBarrier::new();
//! barrier.ensure_table(&db)?;
//!
//! // The try: hold a seat, unless this key was tried or cancelled already.
//! let hold_seat = |db: &mut Connection, key: &str| -> Result<Proceed, Box<dyn std::error::Error>> {
//!     let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
//!     let proceed = barrier.try_phase(&tx, key)?;
//!     if proceed.should_run() {
//!         tx.execute("INSERT INTO holds (key, seat) VALUES (?1, '12A')", [key])?;
//!     }
//!     tx.commit()?;
//!     Ok(proceed)
//! };
//! // The cancel: release the hold, if there is one to release.
//! let release_seat = |db: &mut Connection, key: &str| -> Result<Proceed, Box<dyn std::error::Error>> {
//!     let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
//!     let proceed = barrier.cancel_phase(&tx, key)?;
//!     if proceed.should_run() {
//!         tx.execute("DELETE FROM holds WHERE key = ?1", [key])?;
//!     }
//!     tx.commit()?;
//!     Ok(proceed)
//! };
//!
//! // A try, retried, then cancelled: it holds once and is released once.
//! assert_eq!(hold_seat(&mut db, "trip-1/hold_seat")?, Proceed::Run);
//! assert_eq!(hold_seat(&mut db, "trip-1/hold_seat")?, Proceed::Skip(SkipReason::Repeated));
//! assert_eq!(release_seat(&mut db, "trip-1/hold_seat")?, Proceed::Run);
//!
//! // A cancel that overtook its try: empty, and the late try is refused.
//! assert_eq!(release_seat(&mut db, "trip-2/hold_seat")?, Proceed::Skip(SkipReason::EmptyCancel));
//! assert_eq!(hold_seat(&mut db, "trip-2/hold_seat")?, Proceed::Skip(SkipReason::TryAfterCancel));
//!
//! let holds: i64 = db.query_row("SELECT count(*) FROM holds", [], |row| row.get(0))?;
//! assert_eq!(holds, 0);
//! # Ok(())
//! # }
//! ```

use std::fmt;

mod error;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PgBarrier;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteBarrier;

pub use error::BarrierError;
use error::DatabaseError;

/// The barrier table's name when none is given: `sagaflow_barrier`.
pub const DEFAULT_TABLE: &str = "sagaflow_barrier";

/// Whether the participant should do a phase's work now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "the phase's work must be done only on `Proceed::Run`"]
pub enum Proceed {
    /// Do the phase's work, in the same transaction, then commit.
    Run,
    /// Do nothing (and commit, so that what the barrier recorded stays):
    /// answer the coordinator with success.
    Skip(SkipReason),
}

impl Proceed {
    /// Whether this is [`Proceed::Run`].
    pub fn should_run(self) -> bool {
        self == Proceed::Run
    }
}

/// Why a phase is to do nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// This phase of this key was recorded already (by a committed call, or
    /// earlier in this transaction): it is a retry.
    Repeated,
    /// A cancel with no try recorded before it: the try never reached this
    /// participant, or has not yet; there is nothing to release. The barrier
    /// recorded a `try` marker, so that a late try is refused.
    EmptyCancel,
    /// A try after its key was cancelled: running it would leave a
    /// reservation that no cancel releases.
    TryAfterCancel,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::Repeated => "the phase was done already",
            SkipReason::EmptyCancel => "a cancel with no try before it",
            SkipReason::TryAfterCancel => "a try after its cancel",
        })
    }
}

/// A phase, as written in the table's `phase` and `reason` columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
enum Phase {
    Try,
    Confirm,
    Cancel,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Try => "try",
            Phase::Confirm => "confirm",
            Phase::Cancel => "cancel",
        }
    }
}

/// What both databases share: the checked table name, its quoted form, the
/// statements, and the decision from the rows inserted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
struct Table {
    name: String,
    insert: String,
    reason: String,
}

#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
impl Table {
    /// Checks `name`: one or two (`schema.table`) plain lowercase identifiers,
    /// so that quoting each part is all it takes to put it into a statement.
    ///
    /// `param` starts a numbered parameter: `$` on PostgreSQL, `?` on SQLite.
    fn new(name: &str, param: char) -> Result<Table, BarrierError> {
        let parts: Vec<&str> = name.split('.').collect();
        if parts.len() > 2 || !parts.iter().all(|part| is_plain_identifier(part)) {
            return Err(BarrierError::invalid_table(
                name,
                "not a table name: use `table` or `schema.table`, each part 1 to 63 lowercase \
                 ASCII letters, digits and `_`, not starting with a digit",
            ));
        }
        let quoted = quote(name);
        Ok(Table {
            name: name.to_owned(),
            insert: format!(
                "INSERT INTO {quoted} (key, phase, reason) VALUES ({param}1, {param}2, {param}3) \
                 ON CONFLICT (key, phase) DO NOTHING"
            ),
            reason: format!("SELECT reason FROM {quoted} WHERE key = {param}1 AND phase = 'try'"),
        })
    }

    /// The DDL, with `created_at`'s type and default for the database.
    fn create(&self, created_at: &str) -> String {
        let quoted = quote(&self.name);
        format!(
            "CREATE TABLE IF NOT EXISTS {quoted} (\n    \
                 key        TEXT NOT NULL,\n    \
                 phase      TEXT NOT NULL,\n    \
                 reason     TEXT NOT NULL,\n    \
                 created_at {created_at},\n    \
                 PRIMARY KEY (key, phase)\n\
             )"
        )
    }

    /// Refuses an empty key before anything is written.
    fn check_key(&self, key: &str, phase: Phase) -> Result<(), BarrierError> {
        if key.is_empty() {
            return Err(BarrierError::empty_key(&self.name, phase));
        }
        Ok(())
    }

    fn error(
        &self,
        key: &str,
        phase: Phase,
        doing: &str,
        source: impl DatabaseError,
    ) -> BarrierError {
        BarrierError::database(&self.name, Some(key), Some(phase), doing, source)
    }
}

/// What a cancel's two inserts mean: `marker` is the rows its `try` marker
/// inserted, `own` those of its `cancel` row.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
fn cancel_decision(marker: u64, own: u64) -> Proceed {
    if own == 0 {
        Proceed::Skip(SkipReason::Repeated)
    } else if marker > 0 {
        Proceed::Skip(SkipReason::EmptyCancel)
    } else {
        Proceed::Run
    }
}

/// What a try that inserted nothing meets: the `reason` of the `try` row.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
fn refused_try(reason: Option<&str>) -> Proceed {
    if reason == Some(Phase::Cancel.as_str()) {
        Proceed::Skip(SkipReason::TryAfterCancel)
    } else {
        Proceed::Skip(SkipReason::Repeated)
    }
}

/// `name`, checked by [`Table::new`], with each part quoted.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
fn quote(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{part}\""))
        .collect::<Vec<_>>()
        .join(".")
}

fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        for good in ["sagaflow_barrier", "app.barrier", "_b2"] {
            assert!(Table::new(good, '$').is_ok(), "{good}");
        }
        for bad in [
            "",
            "Barrier",
            "2b",
            "a.b.c",
            "a;drop",
            "a.",
            "\"x\"",
            &"x".repeat(64),
        ] {
            let error = Table::new(bad, '?').unwrap_err();
            assert_eq!(error.table(), bad);
            assert!(error.to_string().contains("not a table name"), "{error}");
        }
    }

    #[test]
    fn decisions_follow_the_rows_inserted() {
        assert_eq!(cancel_decision(0, 1), Proceed::Run);
        assert_eq!(
            cancel_decision(1, 1),
            Proceed::Skip(SkipReason::EmptyCancel)
        );
        assert_eq!(cancel_decision(0, 0), Proceed::Skip(SkipReason::Repeated));
        assert_eq!(
            refused_try(Some("cancel")),
            Proceed::Skip(SkipReason::TryAfterCancel)
        );
        assert_eq!(
            refused_try(Some("try")),
            Proceed::Skip(SkipReason::Repeated)
        );
    }

    #[test]
    fn errors_name_the_table_the_phase_and_the_key() {
        let table = Table::new("holds_barrier", '?').unwrap();
        let error = table.check_key("", Phase::Cancel).unwrap_err();
        assert_eq!(
            error.to_string(),
            "barrier table \"holds_barrier\", cancel phase of key \"\": the key is empty: \
             pass the step's idempotency key"
        );
    }
}
