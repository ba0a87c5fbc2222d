//! Checking out an order: take the payment, hold the stock, book the
//! shipment, and tell the rest of the company, through the outbox, only what
//! really happened.
//!
//! | step | kind | undone by | on commit | sends (committed with the step) |
//! |---|---|---|---|---|
//! | [`take_payment`] | compensatable | [`refund_payment`] | | `payments`: "payment taken"; the refund sends "payment refunded" |
//! | [`reserve_stock`] | try-confirm-cancel | [`release_stock`] (the cancel) | [`ship_stock`] (the confirm) | nothing |
//! | [`book_shipment`] | pivot | (the point of no return) | | nothing |
//!
//! The stock is a TCC step: the [`Warehouse`] is a participant with a database
//! of its own, which holds the items under the step's idempotency key (the
//! try), ships them once the saga has decided to commit (the confirm, after the
//! shipment is booked), or puts them back (the cancel, also run with `None`
//! when the try failed, timed out or panicked). Each phase is guarded by
//! [`sagaflow::barrier::SqliteBarrier`] in the warehouse's own transaction, so
//! a retried try holds once, a cancel whose try never arrived does nothing, and
//! a try that arrives after its cancel holds nothing.
//!
//! The saga body sends two messages with `sagaflow::send!`: an [`AuditEvent`]
//! to `audit` and a [`Notice`] to `notifications`, keyed by the order. They are
//! part of the saga's final commit: they leave only if the saga commits, and
//! then they always leave, even if the process dies right after. A checkout
//! whose stock runs out refunds the payment, and the world hears of the payment
//! and its refund, never of an order that did not happen.
//!
//! [`Payments`] and [`Carrier`] are in-memory fakes that can be told to fail
//! and remember what happened to them; the [`Warehouse`] keeps its stock in an
//! in-memory SQLite database.
//!
//! ```
//! use sagaflow::Runner;
//! use sagaflow::outbox::MemorySink;
//! use sagaflow_examples::checkout::{Carrier, CheckoutSaga, Order, Payments, Warehouse};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let (payments, carrier) = (Payments::new(), Carrier::new());
//! let warehouse = Warehouse::with_stock("lamp", 1);
//! let sink = MemorySink::new();
//! let runner = Runner::new().with_sink(sink.clone());
//!
//! let saga = CheckoutSaga::new(&payments, &warehouse, &carrier, Order::new("o-1", "lamp", 1, 4_900));
//! assert!(runner.run(saga).await.is_ok());
//! let sent: Vec<String> = sink.messages().into_iter().map(|m| m.destination).collect();
//! assert_eq!(sent, ["payments", "audit", "notifications"]);
//!
//! assert_eq!(warehouse.holds(), [("lamp".to_owned(), 1, "shipped".to_owned())]);
//!
//! // The lamp is gone: the second order is refunded, and nobody is told it shipped.
//! let saga = CheckoutSaga::new(&payments, &warehouse, &carrier, Order::new("o-2", "lamp", 1, 4_900));
//! assert!(runner.run(saga).await.is_err());
//! let sent: Vec<String> = sink.messages().into_iter().map(|m| m.destination).collect();
//! assert_eq!(sent, ["payments", "audit", "notifications", "payments", "payments"]);
//! assert_eq!(warehouse.holds().len(), 1);
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sagaflow::outbox::SendError;
use sagaflow::{StepContext, saga, step};
use serde::{Deserialize, Serialize};

mod warehouse;

pub use warehouse::Warehouse;

/// Locks a fake's state; a panic in another test thread does not make it unusable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An order to check out: the saga's owned input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The order's id; also the messages' key.
    pub id: String,
    /// What is bought.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// What it costs, in cents.
    pub amount_cents: u64,
}

impl Order {
    /// An order of `quantity` × `sku` for `amount_cents`.
    pub fn new(id: &str, sku: &str, quantity: u32, amount_cents: u64) -> Self {
        Order {
            id: id.to_owned(),
            sku: sku.to_owned(),
            quantity,
            amount_cents,
        }
    }
}

/// Why a checkout step failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutError {
    /// The card was declined.
    Declined(String),
    /// Not enough stock.
    OutOfStock {
        /// The item.
        sku: String,
        /// How many were left.
        left: u32,
    },
    /// The carrier could not take the parcel.
    NoCarrier(String),
    /// The warehouse's database or its barrier failed.
    Warehouse(String),
    /// A message could not be sent.
    Outbox(SendError),
}

impl fmt::Display for CheckoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckoutError::Declined(why) => write!(f, "the card was declined: {why}"),
            CheckoutError::OutOfStock { sku, left } => {
                write!(f, "not enough `{sku}` in stock ({left} left)")
            }
            CheckoutError::NoCarrier(why) => write!(f, "no carrier: {why}"),
            CheckoutError::Warehouse(why) => write!(f, "the warehouse: {why}"),
            CheckoutError::Outbox(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CheckoutError {}

impl From<SendError> for CheckoutError {
    fn from(e: SendError) -> Self {
        CheckoutError::Outbox(e)
    }
}

/// A taken payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// The payment provider's id for it.
    pub id: String,
    /// How much, in cents.
    pub amount_cents: u64,
}

/// Stock held for an order: what the try returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The hold's key at the warehouse: the step's idempotency key, which
    /// its confirm and its cancel share with the try.
    pub key: String,
}

/// A booked shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    /// The tracking number.
    pub tracking: String,
}

/// What the saga returns when it commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The order.
    pub order: String,
    /// The payment.
    pub payment: String,
    /// The tracking number.
    pub tracking: String,
}

/// The fake payment provider: takes and refunds payments, once per
/// idempotency key. A handle: its clones share one provider.
#[derive(Debug, Default, Clone)]
pub struct Payments {
    taken: Arc<Mutex<HashMap<String, Payment>>>,
    refunded: Arc<Mutex<Vec<String>>>,
    declines: Arc<Mutex<bool>>,
}

impl Payments {
    /// A provider that takes every payment.
    pub fn new() -> Self {
        Payments::default()
    }

    /// A provider that declines every card.
    pub fn declining() -> Self {
        let payments = Payments::default();
        *lock(&payments.declines) = true;
        payments
    }

    /// The payments taken and not refunded.
    pub fn kept(&self) -> Vec<Payment> {
        let refunded = lock(&self.refunded).clone();
        let mut kept: Vec<Payment> = lock(&self.taken)
            .values()
            .filter(|p| !refunded.contains(&p.id))
            .cloned()
            .collect();
        kept.sort_by(|a, b| a.id.cmp(&b.id));
        kept
    }

    /// The ids of the payments refunded, in order.
    pub fn refunded(&self) -> Vec<String> {
        lock(&self.refunded).clone()
    }
}

/// The fake carrier. A handle: its clones share one carrier.
#[derive(Debug, Default, Clone)]
pub struct Carrier {
    booked: Arc<Mutex<Vec<String>>>,
    down: Arc<Mutex<bool>>,
}

impl Carrier {
    /// A carrier that takes every parcel.
    pub fn new() -> Self {
        Carrier::default()
    }

    /// A carrier that takes none.
    pub fn down() -> Self {
        let carrier = Carrier::default();
        *lock(&carrier.down) = true;
        carrier
    }

    /// The tracking numbers booked, in order.
    pub fn booked(&self) -> Vec<String> {
        lock(&self.booked).clone()
    }
}

fn key() -> String {
    StepContext::current()
        .map(|cx| cx.idempotency_key().to_string())
        .unwrap_or_else(|| "no-saga".to_owned())
}

/// The payments service's event about a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentEvent {
    /// `"payment taken"` or `"payment refunded"`.
    pub event: String,
    /// The order.
    pub order: String,
    /// The payment.
    pub payment: String,
    /// How much, in cents.
    pub amount_cents: u64,
}

/// Takes the payment; tells `payments` it did, in the same commit as its outcome.
#[step(compensate = refund_payment)]
pub async fn take_payment(payments: &Payments, order: &Order) -> Result<Payment, CheckoutError> {
    if *lock(&payments.declines) {
        return Err(CheckoutError::Declined("insufficient funds".into()));
    }
    let key = key();
    let payment = lock(&payments.taken)
        .entry(key.clone())
        .or_insert_with(|| Payment {
            id: format!("pay-{}", &key[key.len().saturating_sub(8)..]),
            amount_cents: order.amount_cents,
        })
        .clone();
    StepContext::send_keyed(
        "payments",
        &order.id,
        &PaymentEvent {
            event: "payment taken".into(),
            order: order.id.clone(),
            payment: payment.id.clone(),
            amount_cents: payment.amount_cents,
        },
    )?;
    Ok(payment)
}

/// Refunds the payment; tells `payments` it did, committed with the refund.
pub async fn refund_payment(
    payments: &Payments,
    order: &Order,
    payment: &Payment,
) -> Result<(), CheckoutError> {
    let mut refunded = lock(&payments.refunded);
    if !refunded.contains(&payment.id) {
        refunded.push(payment.id.clone());
    }
    StepContext::send_keyed(
        "payments",
        &order.id,
        &PaymentEvent {
            event: "payment refunded".into(),
            order: order.id.clone(),
            payment: payment.id.clone(),
            amount_cents: payment.amount_cents,
        },
    )?;
    Ok(())
}

/// The try: holds the order's stock at the warehouse, under the step's
/// idempotency key.
#[step(tcc(confirm = ship_stock, cancel = release_stock), timeout = "2s")]
pub async fn reserve_stock(
    warehouse: &Warehouse,
    order: &Order,
) -> Result<Reservation, CheckoutError> {
    let key = key();
    warehouse.hold(&key, &order.sku, order.quantity)?;
    Ok(Reservation { key })
}

/// The confirm, once the saga has decided to commit: the held stock ships.
pub async fn ship_stock(
    warehouse: &Warehouse,
    _order: &Order,
    reservation: &Reservation,
) -> Result<(), CheckoutError> {
    warehouse.ship(&reservation.key)
}

/// The cancel: the held stock goes back on the shelf. With `None` (the try
/// failed, timed out or panicked) it goes by the key, which is the try's; if
/// no try reached the warehouse, its barrier makes this an empty cancel.
pub async fn release_stock(
    warehouse: &Warehouse,
    _order: &Order,
    _reservation: Option<&Reservation>,
) -> Result<(), CheckoutError> {
    warehouse.release(&key())
}

/// Books the shipment: once the carrier has the parcel, there is no going back.
#[step(pivot)]
pub async fn book_shipment(carrier: &Carrier, order: &Order) -> Result<Shipment, CheckoutError> {
    if *lock(&carrier.down) {
        return Err(CheckoutError::NoCarrier("the depot is closed".into()));
    }
    let tracking = format!("TRK-{}", order.id);
    let mut booked = lock(&carrier.booked);
    if !booked.contains(&tracking) {
        booked.push(tracking.clone());
    }
    Ok(Shipment { tracking })
}

/// What the audit log hears of a checkout that happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// `"checkout"`.
    pub event: String,
    /// The order.
    pub order: String,
    /// The payment.
    pub payment: String,
    /// The tracking number.
    pub tracking: String,
}

impl AuditEvent {
    /// The audit event of a committed checkout.
    pub fn checkout(order: &Order, payment: &Payment, shipment: &Shipment) -> Self {
        AuditEvent {
            event: "checkout".into(),
            order: order.id.clone(),
            payment: payment.id.clone(),
            tracking: shipment.tracking.clone(),
        }
    }
}

/// What the customer is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The order.
    pub order: String,
    /// The text.
    pub text: String,
}

impl Notice {
    /// The notice of a paid and shipped order.
    pub fn paid(order: &Order, shipment: &Shipment) -> Self {
        Notice {
            order: order.id.clone(),
            text: format!(
                "Thank you! {} × {} is on its way: {}",
                order.quantity, order.sku, shipment.tracking
            ),
        }
    }
}

/// The checkout saga: payment, stock (held, then shipped on commit), shipment;
/// the audit event and the customer's notice leave with the commit, and only
/// if it happens.
#[saga]
pub async fn checkout(
    payments: &Payments,
    warehouse: &Warehouse,
    carrier: &Carrier,
    order: Order,
) -> Result<Receipt, CheckoutError> {
    let payment = take_payment(payments, &order).await?;
    let _ = reserve_stock(warehouse, &order).await?;
    let shipment = book_shipment(carrier, &order).await?;
    sagaflow::send!("audit", &AuditEvent::checkout(&order, &payment, &shipment));
    sagaflow::send!(
        "notifications",
        key = order.id,
        &Notice::paid(&order, &shipment)
    );
    Ok(Receipt {
        order: order.id.clone(),
        payment: payment.id.clone(),
        tracking: shipment.tracking.clone(),
    })
}
