//! The barrier in a tokio-postgres transaction.

use tokio_postgres::{GenericClient, Transaction};

use super::{
    BarrierError, DEFAULT_TABLE, Phase, Proceed, SkipReason, Table, cancel_decision, refused_try,
};

/// The barrier over a PostgreSQL database (tokio-postgres): see
/// [the module](super).
///
/// Each phase takes the participant's open [`Transaction`] (a
/// `deadpool_postgres` transaction derefs to one), in which it then makes the
/// phase's effects on [`Proceed::Run`]. Keep the default isolation,
/// `READ COMMITTED`: a racing call then waits for the other's transaction and
/// reads its row.
///
/// ```no_run
/// use sagaflow::barrier::{PgBarrier, Proceed};
///
/// /// The cancel of a seat hold: releases it, if this key's try held one.
/// async fn release_seat(
///     db: &mut tokio_postgres::Client,
///     barrier: &PgBarrier,
///     key: &str,
/// ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///     let tx = db.transaction().await?;
///     if barrier.cancel_phase(&tx, key).await? == Proceed::Run {
///         tx.execute("DELETE FROM holds WHERE key = $1", &[&key]).await?;
///     }
///     tx.commit().await?;
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBarrier {
    table: Table,
}

impl Default for PgBarrier {
    fn default() -> Self {
        Self::new()
    }
}

impl PgBarrier {
    /// The barrier over the table [`DEFAULT_TABLE`] (`sagaflow_barrier`), in
    /// the connection's `search_path`.
    pub fn new() -> Self {
        PgBarrier {
            table: Table::new(DEFAULT_TABLE, '$').expect("the default table name is plain"),
        }
    }

    /// The barrier over table `name`: `table` or `schema.table`, each part a
    /// plain lowercase identifier.
    pub fn with_table(name: &str) -> Result<Self, BarrierError> {
        Ok(PgBarrier {
            table: Table::new(name, '$')?,
        })
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table.name
    }

    /// The `CREATE TABLE IF NOT EXISTS` statement, for users who migrate
    /// their schema themselves.
    pub fn create_table_sql(&self) -> String {
        self.table.create("TIMESTAMPTZ NOT NULL DEFAULT now()")
    }

    /// Creates the table if it does not exist, through a client or a
    /// transaction.
    pub async fn ensure_table(&self, db: &impl GenericClient) -> Result<(), BarrierError> {
        db.batch_execute(&self.create_table_sql())
            .await
            .map_err(|e| {
                BarrierError::database(&self.table.name, None, None, "creating the table", e)
            })
    }

    /// A try: [`Proceed::Run`] the first time for `key`;
    /// [`SkipReason::Repeated`] after a try, [`SkipReason::TryAfterCancel`]
    /// after a cancel.
    pub async fn try_phase(
        &self,
        tx: &Transaction<'_>,
        key: &str,
    ) -> Result<Proceed, BarrierError> {
        if self.insert(tx, key, Phase::Try, Phase::Try).await? > 0 {
            return Ok(Proceed::Run);
        }
        let row = tx
            .query_opt(&self.table.reason, &[&key])
            .await
            .map_err(|e| {
                self.table
                    .error(key, Phase::Try, "reading the try's row", e)
            })?;
        let reason: Option<String> = row.map(|row| row.get(0));
        Ok(refused_try(reason.as_deref()))
    }

    /// A confirm: [`Proceed::Run`] the first time for `key`, then
    /// [`SkipReason::Repeated`].
    pub async fn confirm_phase(
        &self,
        tx: &Transaction<'_>,
        key: &str,
    ) -> Result<Proceed, BarrierError> {
        Ok(
            match self.insert(tx, key, Phase::Confirm, Phase::Confirm).await? {
                0 => Proceed::Skip(SkipReason::Repeated),
                _ => Proceed::Run,
            },
        )
    }

    /// A cancel: [`Proceed::Run`] the first time for a key that was tried;
    /// [`SkipReason::EmptyCancel`] for one that was not (after recording a
    /// `try` marker that refuses a late try); [`SkipReason::Repeated`] after a
    /// cancel.
    pub async fn cancel_phase(
        &self,
        tx: &Transaction<'_>,
        key: &str,
    ) -> Result<Proceed, BarrierError> {
        let marker = self.insert(tx, key, Phase::Try, Phase::Cancel).await?;
        let own = self.insert(tx, key, Phase::Cancel, Phase::Cancel).await?;
        Ok(cancel_decision(marker, own))
    }

    /// Inserts row `(key, phase)` written by a call of `by`; the rows inserted.
    async fn insert(
        &self,
        tx: &Transaction<'_>,
        key: &str,
        phase: Phase,
        by: Phase,
    ) -> Result<u64, BarrierError> {
        self.table.check_key(key, by)?;
        tx.execute(&self.table.insert, &[&key, &phase.as_str(), &by.as_str()])
            .await
            .map_err(|e| {
                let doing = format!("inserting the {} row", phase.as_str());
                self.table.error(key, by, &doing, e)
            })
    }
}
