//! A stock reservation as a try-confirm-cancel step: the warehouse holds the
//! items (the try), ships them once the saga has charged the card (the
//! confirm), or puts them back if it could not (the cancel). The warehouse is
//! a participant with a database of its own (SQLite here), and makes each
//! phase safe against retries, empty cancels and late tries with
//! [`SqliteBarrier`], inside the transaction that changes its stock.
//!
//! | step | kind | on rollback | on commit |
//! |---|---|---|---|
//! | `Warehouse::reserve_stock` | `tcc` | `Warehouse::release_stock` | `Warehouse::ship_stock` |
//! | `Card::charge` | `pivot` | | |
//!
//! ```
//! use sagaflow_examples::stock::{Card, Order, Warehouse, reserve_and_charge};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let warehouse = Warehouse::with_stock("lamp", 10);
//! let order = Order { id: "o-1".into(), sku: "lamp".into(), quantity: 3 };
//! reserve_and_charge(&warehouse, &Card::new(), order).await.unwrap();
//! assert_eq!(warehouse.left("lamp"), 7);
//! assert_eq!(warehouse.holds(), [("lamp".to_owned(), 3, "shipped".to_owned())]);
//! # }
//! ```

use std::fmt;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use sagaflow::barrier::{Proceed, SqliteBarrier};
use sagaflow::{StepContext, saga};

/// An order for `quantity` of `sku`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Order {
    /// The order's id.
    pub id: String,
    /// What is ordered.
    pub sku: String,
    /// How many.
    pub quantity: u32,
}

/// Why a step of the saga failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockError(pub String);

impl fmt::Display for StockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<rusqlite::Error> for StockError {
    fn from(e: rusqlite::Error) -> Self {
        StockError(format!("the warehouse's database: {e}"))
    }
}

impl From<sagaflow::barrier::BarrierError> for StockError {
    fn from(e: sagaflow::barrier::BarrierError) -> Self {
        StockError(e.to_string())
    }
}

/// What the try returned: the hold's key at the warehouse.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reservation {
    /// The step's idempotency key, the hold's key.
    pub key: String,
}

/// The warehouse: its stock and holds in a database of its own, guarded by
/// the barrier's table in the same database.
pub struct Warehouse {
    db: Mutex<Connection>,
    barrier: SqliteBarrier,
}

fn lock(db: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    db.lock().unwrap_or_else(|e| e.into_inner())
}

/// The idempotency key of the running phase: the same for the try, its
/// confirm and its cancel, which the barrier tells apart.
fn key() -> String {
    StepContext::current()
        .map(|cx| cx.idempotency_key().to_string())
        .unwrap_or_else(|| "outside-a-saga".to_owned())
}

impl Warehouse {
    /// A warehouse (in memory) with `count` of `sku`.
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
            db: Mutex::new(db),
            barrier,
        }
    }

    /// How many of `sku` are on the shelf (neither held nor shipped).
    pub fn left(&self, sku: &str) -> u32 {
        lock(&self.db)
            .query_row("SELECT count FROM stock WHERE sku = ?1", [sku], |r| {
                r.get(0)
            })
            .unwrap_or(0)
    }

    /// Every hold: its sku, quantity and state (`held`, `shipped`, `released`).
    pub fn holds(&self) -> Vec<(String, u32, String)> {
        let db = lock(&self.db);
        let mut query = db
            .prepare("SELECT sku, quantity, state FROM holds ORDER BY key")
            .expect("a query");
        query
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("the holds")
            .collect::<Result<_, _>>()
            .expect("the holds")
    }
}

#[sagaflow::steps]
impl Warehouse {
    /// The try: takes the items off the shelf and holds them under the key.
    #[step(tcc(confirm = Self::ship_stock, cancel = Self::release_stock), timeout = "2s")]
    pub async fn reserve_stock(&self, order: &Order) -> Result<Reservation, StockError> {
        let key = key();
        let mut db = lock(&self.db);
        let tx = db.transaction()?;
        if self.barrier.try_phase(&tx, &key)? == Proceed::Run {
            let left: u32 = tx.query_row(
                "SELECT count FROM stock WHERE sku = ?1",
                [&order.sku],
                |r| r.get(0),
            )?;
            if left < order.quantity {
                // Dropped without a commit: the barrier's row goes too.
                return Err(StockError(format!(
                    "only {left} {} left, {} ordered",
                    order.sku, order.quantity
                )));
            }
            tx.execute(
                "UPDATE stock SET count = count - ?1 WHERE sku = ?2",
                params![order.quantity, order.sku],
            )?;
            tx.execute(
                "INSERT INTO holds VALUES (?1, ?2, ?3, 'held')",
                params![key, order.sku, order.quantity],
            )?;
        }
        tx.commit()?;
        Ok(Reservation { key })
    }

    /// The confirm: the held items are shipped.
    pub async fn ship_stock(&self, order: &Order, hold: &Reservation) -> Result<(), StockError> {
        let _ = order;
        let mut db = lock(&self.db);
        let tx = db.transaction()?;
        if self.barrier.confirm_phase(&tx, &hold.key)? == Proceed::Run {
            tx.execute(
                "UPDATE holds SET state = 'shipped' WHERE key = ?1",
                [&hold.key],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The cancel: the held items go back on the shelf. With `None` (the try
    /// failed, timed out or panicked) it looks the hold up by the key; if no
    /// try reached the warehouse, the barrier records an empty cancel, which
    /// also refuses a try that arrives after it.
    pub async fn release_stock(
        &self,
        order: &Order,
        hold: Option<&Reservation>,
    ) -> Result<(), StockError> {
        let _ = (order, hold);
        let key = key();
        let mut db = lock(&self.db);
        let tx = db.transaction()?;
        if self.barrier.cancel_phase(&tx, &key)? == Proceed::Run {
            let held: Option<(String, u32)> = tx
                .query_row(
                    "SELECT sku, quantity FROM holds WHERE key = ?1 AND state = 'held'",
                    [&key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((sku, quantity)) = held {
                tx.execute(
                    "UPDATE stock SET count = count + ?1 WHERE sku = ?2",
                    params![quantity, sku],
                )?;
                tx.execute("UPDATE holds SET state = 'released' WHERE key = ?1", [&key])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// The payment service: charges a card, or declines.
#[derive(Default)]
pub struct Card {
    declines: bool,
}

impl Card {
    /// A card that pays.
    pub fn new() -> Self {
        Card { declines: false }
    }

    /// A card that is declined.
    pub fn declining() -> Self {
        Card { declines: true }
    }
}

#[sagaflow::steps]
impl Card {
    /// The pivot: once the card is charged, the saga commits, and the stock
    /// is shipped.
    #[step(pivot)]
    pub async fn charge(&self, order: &Order) -> Result<(), StockError> {
        if self.declines {
            return Err(StockError(format!(
                "the card was declined for {}",
                order.id
            )));
        }
        Ok(())
    }
}

/// Holds the stock, charges the card, and ships the stock once it is paid.
#[saga]
pub async fn reserve_and_charge(
    warehouse: &Warehouse,
    card: &Card,
    order: Order,
) -> Result<Reservation, StockError> {
    let reservation = warehouse.reserve_stock(&order).await?;
    card.charge(&order).await?;
    Ok(reservation)
}
