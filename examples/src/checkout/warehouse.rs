//! The warehouse: a TCC participant with a database of its own (SQLite here).
//! It holds stock under a key (the try), ships what it holds (the confirm) or
//! puts it back on the shelf (the cancel), and makes each phase safe against a
//! retried call, a cancel for a try that never arrived, and a try that lands
//! after its cancel with [`SqliteBarrier`], inside the transaction that changes
//! its stock. The barrier protects only what that same transaction does.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};
use sagaflow::barrier::{Proceed, SqliteBarrier};

use super::CheckoutError;

impl From<rusqlite::Error> for CheckoutError {
    fn from(e: rusqlite::Error) -> Self {
        CheckoutError::Warehouse(format!("the warehouse's database: {e}"))
    }
}

impl From<sagaflow::barrier::BarrierError> for CheckoutError {
    fn from(e: sagaflow::barrier::BarrierError) -> Self {
        CheckoutError::Warehouse(e.to_string())
    }
}

/// The warehouse: its stock and holds in a database of its own, guarded by
/// the barrier's table in the same database. A handle: its clones share one
/// warehouse.
#[derive(Clone)]
pub struct Warehouse {
    db: Arc<Mutex<Connection>>,
    barrier: SqliteBarrier,
}

impl fmt::Debug for Warehouse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Warehouse")
            .field("barrier", &self.barrier)
            .finish_non_exhaustive()
    }
}

impl Warehouse {
    /// A warehouse (its database in memory) with `count` of `sku`.
    pub fn with_stock(sku: &str, count: u32) -> Self {
        let db = Connection::open_in_memory().expect("an in-memory database");
        db.execute_batch(
            "CREATE TABLE stock (sku TEXT PRIMARY KEY, count INTEGER NOT NULL);
             CREATE TABLE holds (key TEXT PRIMARY KEY, sku TEXT NOT NULL,
                                 quantity INTEGER NOT NULL, state TEXT NOT NULL);",
        )
        .expect("the warehouse's tables");
        db.execute("INSERT INTO stock VALUES (?1, ?2)", params![sku, count])
            .expect("the stock");
        let barrier = SqliteBarrier::new();
        barrier.ensure_table(&db).expect("the barrier's table");
        Warehouse {
            db: Arc::new(Mutex::new(db)),
            barrier,
        }
    }

    fn db(&self) -> MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many of `sku` are on the shelf (neither held nor shipped).
    pub fn left(&self, sku: &str) -> u32 {
        self.db()
            .query_row("SELECT count FROM stock WHERE sku = ?1", [sku], |r| {
                r.get(0)
            })
            .optional()
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    /// Every hold, by key: its sku, quantity and state (`held`, `shipped`,
    /// `released`).
    pub fn holds(&self) -> Vec<(String, u32, String)> {
        let db = self.db();
        let mut query = db
            .prepare("SELECT sku, quantity, state FROM holds ORDER BY key")
            .expect("a query");
        query
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("the holds")
            .collect::<Result<_, _>>()
            .expect("the holds")
    }

    /// The try: takes `quantity` of `sku` off the shelf and holds them under
    /// `key`. A repeated try, or one that arrives after its cancel, does
    /// nothing.
    pub fn hold(&self, key: &str, sku: &str, quantity: u32) -> Result<(), CheckoutError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        if self.barrier.try_phase(&tx, key)? == Proceed::Run {
            let left: u32 = tx
                .query_row("SELECT count FROM stock WHERE sku = ?1", [sku], |r| {
                    r.get(0)
                })
                .optional()?
                .unwrap_or(0);
            if left < quantity {
                // Dropped without a commit: the barrier's row goes too, so a
                // cancel that follows finds no try and does nothing.
                return Err(CheckoutError::OutOfStock {
                    sku: sku.to_owned(),
                    left,
                });
            }
            tx.execute(
                "UPDATE stock SET count = count - ?1 WHERE sku = ?2",
                params![quantity, sku],
            )?;
            tx.execute(
                "INSERT INTO holds VALUES (?1, ?2, ?3, 'held')",
                params![key, sku, quantity],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The confirm: what is held under `key` is shipped. A repeated confirm
    /// does nothing.
    pub fn ship(&self, key: &str) -> Result<(), CheckoutError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        if self.barrier.confirm_phase(&tx, key)? == Proceed::Run {
            tx.execute("UPDATE holds SET state = 'shipped' WHERE key = ?1", [key])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The cancel: what is held under `key` goes back on the shelf. If no try
    /// reached the warehouse, the barrier records an empty cancel, which also
    /// refuses a try that arrives after it.
    pub fn release(&self, key: &str) -> Result<(), CheckoutError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        if self.barrier.cancel_phase(&tx, key)? == Proceed::Run {
            let held: Option<(String, u32)> = tx
                .query_row(
                    "SELECT sku, quantity FROM holds WHERE key = ?1 AND state = 'held'",
                    [key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((sku, quantity)) = held {
                tx.execute(
                    "UPDATE stock SET count = count + ?1 WHERE sku = ?2",
                    params![quantity, sku],
                )?;
                tx.execute("UPDATE holds SET state = 'released' WHERE key = ?1", [key])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
