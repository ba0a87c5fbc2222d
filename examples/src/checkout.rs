//! Checking out an order: take the payment, allocate the stock, book the
//! shipment, and tell the rest of the company, through the outbox, only what
//! really happened.
//!
//! | step | kind | undone by | sends (committed with the step) |
//! |---|---|---|---|
//! | [`take_payment`] | compensatable | [`refund_payment`] | `payments`: "payment taken"; the refund sends "payment refunded" |
//! | [`allocate_stock`] | compensatable | [`release_stock`] | nothing |
//! | [`book_shipment`] | pivot | (the point of no return) | nothing |
//!
//! The saga body sends two messages with `sagaflow::send!`: an [`AuditEvent`]
//! to `audit` and a [`Notice`] to `notifications`, keyed by the order. They are
//! part of the saga's final commit: they leave only if the saga commits, and
//! then they always leave, even if the process dies right after. A checkout
//! whose stock runs out refunds the payment, and the world hears of the payment
//! and its refund, never of an order that did not happen.
//!
//! The services are in-memory fakes ([`Payments`], [`Warehouse`], [`Carrier`])
//! that can be told to fail and remember what happened to them.
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
//! // The lamp is gone: the second order is refunded, and nobody is told it shipped.
//! let saga = CheckoutSaga::new(&payments, &warehouse, &carrier, Order::new("o-2", "lamp", 1, 4_900));
//! assert!(runner.run(saga).await.is_err());
//! let sent: Vec<String> = sink.messages().into_iter().map(|m| m.destination).collect();
//! assert_eq!(sent, ["payments", "audit", "notifications", "payments", "payments"]);
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use sagaflow::outbox::SendError;
use sagaflow::{StepContext, saga, step};
use serde::{Deserialize, Serialize};

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

/// Stock set aside for an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// The warehouse's id for it.
    pub id: String,
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
/// idempotency key.
#[derive(Debug, Default)]
pub struct Payments {
    taken: Mutex<HashMap<String, Payment>>,
    refunded: Mutex<Vec<String>>,
    declines: Mutex<bool>,
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

/// The fake warehouse: stock per item.
#[derive(Debug, Default)]
pub struct Warehouse {
    stock: Mutex<HashMap<String, u32>>,
    allocations: Mutex<HashMap<String, (String, u32)>>,
}

impl Warehouse {
    /// A warehouse with `count` of `sku`.
    pub fn with_stock(sku: &str, count: u32) -> Self {
        let warehouse = Warehouse::default();
        lock(&warehouse.stock).insert(sku.to_owned(), count);
        warehouse
    }

    /// How many of `sku` are left.
    pub fn left(&self, sku: &str) -> u32 {
        lock(&self.stock).get(sku).copied().unwrap_or(0)
    }
}

/// The fake carrier.
#[derive(Debug, Default)]
pub struct Carrier {
    booked: Mutex<Vec<String>>,
    down: Mutex<bool>,
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

/// Sets the order's stock aside.
#[step(compensate = release_stock)]
pub async fn allocate_stock(
    warehouse: &Warehouse,
    order: &Order,
) -> Result<Allocation, CheckoutError> {
    let key = key();
    if let Some((_, _)) = lock(&warehouse.allocations).get(&key) {
        return Ok(Allocation { id: key });
    }
    let mut stock = lock(&warehouse.stock);
    let left = stock.get(&order.sku).copied().unwrap_or(0);
    if left < order.quantity {
        return Err(CheckoutError::OutOfStock {
            sku: order.sku.clone(),
            left,
        });
    }
    stock.insert(order.sku.clone(), left - order.quantity);
    lock(&warehouse.allocations).insert(key.clone(), (order.sku.clone(), order.quantity));
    Ok(Allocation { id: key })
}

/// Puts the stock back.
pub async fn release_stock(
    warehouse: &Warehouse,
    _order: &Order,
    allocation: &Allocation,
) -> Result<(), CheckoutError> {
    if let Some((sku, quantity)) = lock(&warehouse.allocations).remove(&allocation.id) {
        *lock(&warehouse.stock).entry(sku).or_insert(0) += quantity;
    }
    Ok(())
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

/// The checkout saga: payment, stock, shipment; the audit event and the
/// customer's notice leave with the commit, and only if it happens.
#[saga]
pub async fn checkout(
    payments: &Payments,
    warehouse: &Warehouse,
    carrier: &Carrier,
    order: Order,
) -> Result<Receipt, CheckoutError> {
    let payment = take_payment(payments, &order).await?;
    let _ = allocate_stock(warehouse, &order).await?;
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
