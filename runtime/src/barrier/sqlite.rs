//! The barrier in a rusqlite transaction.

use rusqlite::{Connection, OptionalExtension, Transaction};

use super::{
    BarrierError, DEFAULT_TABLE, Phase, Proceed, SkipReason, Table, cancel_decision, refused_try,
};

/// The barrier over a SQLite database (rusqlite): see [the module](super).
///
/// Each phase takes the participant's open [`Transaction`], in which it then
/// makes the phase's effects on [`Proceed::Run`]. Begin it with
/// [`TransactionBehavior::Immediate`](rusqlite::TransactionBehavior::Immediate)
/// and set a [busy timeout](Connection::busy_timeout), so that two writers
/// wait for each other instead of failing with `SQLITE_BUSY`.
///
/// ```
/// use rusqlite::{Connection, TransactionBehavior};
/// use sagaflow::barrier::{Proceed, SkipReason, SqliteBarrier};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A table of its own name, created by the participant's own migration.
/// let barrier = SqliteBarrier::with_table("seat_barrier")?;
/// let mut db = Connection::open_in_memory()?;
/// db.execute_batch(&barrier.create_table_sql())?;
///
/// let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
/// assert_eq!(barrier.confirm_phase(&tx, "trip-1/hold_seat")?, Proceed::Run);
/// assert_eq!(
///     barrier.confirm_phase(&tx, "trip-1/hold_seat")?,
///     Proceed::Skip(SkipReason::Repeated),
/// );
/// tx.commit()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteBarrier {
    table: Table,
}

impl Default for SqliteBarrier {
    fn default() -> Self {
        Self::new()
    }
}

impl SqliteBarrier {
    /// The barrier over the table [`DEFAULT_TABLE`] (`sagaflow_barrier`).
    pub fn new() -> Self {
        SqliteBarrier {
            table: Table::new(DEFAULT_TABLE, '?').expect("the default table name is plain"),
        }
    }

    /// The barrier over table `name`: `table` or `schema.table` (an attached
    /// database), each part a plain lowercase identifier.
    pub fn with_table(name: &str) -> Result<Self, BarrierError> {
        Ok(SqliteBarrier {
            table: Table::new(name, '?')?,
        })
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table.name
    }

    /// The `CREATE TABLE IF NOT EXISTS` statement, for users who migrate
    /// their schema themselves.
    pub fn create_table_sql(&self) -> String {
        self.table.create("TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP")
    }

    /// Creates the table if it does not exist (a [`Transaction`] is a
    /// connection too).
    pub fn ensure_table(&self, db: &Connection) -> Result<(), BarrierError> {
        db.execute_batch(&self.create_table_sql()).map_err(|e| {
            BarrierError::database(&self.table.name, None, None, "creating the table", e)
        })
    }

    /// A try: [`Proceed::Run`] the first time for `key`;
    /// [`SkipReason::Repeated`] after a try,
    /// [`SkipReason::TryAfterCancel`]
    /// after a cancel.
    pub fn try_phase(&self, tx: &Transaction<'_>, key: &str) -> Result<Proceed, BarrierError> {
        if self.insert(tx, key, Phase::Try, Phase::Try)? > 0 {
            return Ok(Proceed::Run);
        }
        let reason: Option<String> = tx
            .query_row(&self.table.reason, [key], |row| row.get(0))
            .optional()
            .map_err(|e| {
                self.table
                    .error(key, Phase::Try, "reading the try's row", e)
            })?;
        Ok(refused_try(reason.as_deref()))
    }

    /// A confirm: [`Proceed::Run`] the first time for `key`, then
    /// [`SkipReason::Repeated`].
    pub fn confirm_phase(&self, tx: &Transaction<'_>, key: &str) -> Result<Proceed, BarrierError> {
        Ok(
            match self.insert(tx, key, Phase::Confirm, Phase::Confirm)? {
                0 => Proceed::Skip(SkipReason::Repeated),
                _ => Proceed::Run,
            },
        )
    }

    /// A cancel: [`Proceed::Run`] the first time for a key that was tried;
    /// [`SkipReason::EmptyCancel`] for one
    /// that was not (after recording a `try` marker that refuses a late try);
    /// [`SkipReason::Repeated`] after a cancel.
    pub fn cancel_phase(&self, tx: &Transaction<'_>, key: &str) -> Result<Proceed, BarrierError> {
        let marker = self.insert(tx, key, Phase::Try, Phase::Cancel)?;
        let own = self.insert(tx, key, Phase::Cancel, Phase::Cancel)?;
        Ok(cancel_decision(marker, own))
    }

    /// Inserts row `(key, phase)` written by a call of `by`; the rows inserted.
    fn insert(
        &self,
        tx: &Transaction<'_>,
        key: &str,
        phase: Phase,
        by: Phase,
    ) -> Result<u64, BarrierError> {
        self.table.check_key(key, by)?;
        let inserted = tx
            .execute(&self.table.insert, [key, phase.as_str(), by.as_str()])
            .map_err(|e| {
                let doing = format!("inserting the {} row", phase.as_str());
                self.table.error(key, by, &doing, e)
            })?;
        Ok(inserted as u64)
    }
}
