//! Booking a trip: debit the customer, book the flight and the hotel at once,
//! e-mail the itinerary.
//!
//! This is the saga that travel agencies used to write by hand with a pile of
//! `if let Err(..)` blocks. Here each service call is a [`#[step]`](sagaflow::step)
//! that says what undoes it, and [`book_trip`] is the orchestration. Three steps
//! are methods of the service clients (`#[sagaflow::steps] impl Bank`), named
//! `Type::method` in the journal, the graph and the report; the last is a free
//! function. The flight and the hotel do not depend on each other, so the saga
//! books them concurrently, in one [`sagaflow::join!`] group:
//!
//! | step | kind | undone by |
//! |---|---|---|
//! | [`Bank::debit_customer`] | compensatable | [`Bank::refund_customer`] |
//! | [`Airline::book_flight`] ‖ | compensatable, in a group with the hotel | [`Airline::cancel_flight`] |
//! | [`Hotels::book_hotel`] ‖ | compensatable, in a group with the flight | [`Hotels::cancel_hotel`] |
//! | [`email_itinerary`] | retriable: retried until the mail goes out | — |
//!
//! If the hotel has no rooms, the flight booked meanwhile is cancelled and then
//! the customer is refunded (a full flight likewise cancels the hotel): the
//! group's members that succeeded are undone, then what came before it, the
//! reverse of how it was done. Once the flight and the hotel are both booked, the
//! trip is on and nothing is undone any more: the last step is retriable, so a
//! busy mail server only delays the itinerary.
//!
//! The services are in-memory fakes ([`Bank`], [`Airline`], [`Hotels`],
//! [`Mailer`]) that remember what happened to them, so that a test can look at
//! their state after a run; [`Narrator`] is a [`Hooks`] that tells the story of a
//! run in plain words. Like real clients, they are handles: a clone shares the
//! state of the original, so a test (or a durable executor's resources) and the
//! saga see the same bank.
//!
//! Each fake does a request once per idempotency key (the running step's
//! [`StepContext::idempotency_key`]): asked again with a key it has already
//! served, as at-least-once delivery does, it answers with what it did the first
//! time instead of doing it twice.
//!
//! For durable runs, each fake can also write what it does to a
//! [`crate::ledger::Ledger`] file (`with_ledger`), so that its effects, and the
//! keys it has served, outlive the process.
//!
//! ```
//! use sagaflow_examples::travel::{Airline, Bank, Hotels, Mailer, Trip, book_trip, euros};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let bank = Bank::new().with_account("ada", euros(2_000));
//! let (airline, mailer) = (Airline::new(), Mailer::new());
//! let hotels = Hotels::new().with_no_rooms_in("Venice");
//!
//! let trip = Trip::new("ada", "ada@example.com", "Venice", 3, euros(900));
//! let err = book_trip(&bank, &airline, &hotels, &mailer, trip).await.unwrap_err();
//!
//! assert_eq!(err.failed_step(), "Hotels::book_hotel");
//! assert_eq!(err.undone(), ["Airline::book_flight", "Bank::debit_customer"]);
//! assert!(airline.booked().is_empty());
//! assert_eq!(bank.balance("ada"), Some(euros(2_000)));
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sagaflow::{Hooks, RunOutcome, RunReport, SagaId, StepContext, saga, step};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::ledger::{Caller, Ledger};

/// An amount of money, in cents.
pub type Cents = u64;

/// `whole` euros, in cents.
pub const fn euros(whole: u64) -> Cents {
    whole * 100
}

/// Shows an amount of cents as euros, such as `€1234.50`.
pub fn format_euros(amount: Cents) -> String {
    format!("€{}.{:02}", amount / 100, amount % 100)
}

/// Locks a fake's state; a panic in another test thread does not make it unusable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// The request, the results and the error
// ---------------------------------------------------------------------------

/// What the customer asked for: a return flight to `city` and `nights` nights
/// in a hotel there, for an agreed package `price`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trip {
    /// The customer's account name at the [`Bank`].
    pub customer: String,
    /// Where the itinerary is sent.
    pub email: String,
    /// The destination.
    pub city: String,
    /// How many nights in the hotel.
    pub nights: u32,
    /// The package price, taken from the customer's account up front.
    pub price: Cents,
}

impl Trip {
    /// A trip for `customer` (reachable at `email`) to `city`, for `nights` nights, at `price`.
    pub fn new(customer: &str, email: &str, city: &str, nights: u32, price: Cents) -> Self {
        Trip {
            customer: customer.to_owned(),
            email: email.to_owned(),
            city: city.to_owned(),
            nights,
            price,
        }
    }
}

/// Money taken from a customer's account by [`Bank::debit`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// The bank's reference, such as `PAY-1`.
    pub reference: String,
    /// Whose account was debited.
    pub customer: String,
    /// How much.
    pub amount: Cents,
}

/// A seat on a flight, from [`Airline::book`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlightBooking {
    /// The airline's reference, such as `FL-1`.
    pub reference: String,
    /// The passenger.
    pub customer: String,
    /// The destination.
    pub city: String,
}

/// A hotel room, from [`Hotels::book`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HotelBooking {
    /// The hotel's reference, such as `HT-1`.
    pub reference: String,
    /// The guest.
    pub customer: String,
    /// Where the hotel is.
    pub city: String,
    /// How many nights.
    pub nights: u32,
}

/// An e-mail that [`Mailer`] sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    /// The recipient.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The text.
    pub body: String,
}

/// What [`book_trip`] returns when the trip is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Itinerary {
    /// The money taken from the customer.
    pub payment: Payment,
    /// The flight.
    pub flight: FlightBooking,
    /// The hotel.
    pub hotel: HotelBooking,
}

impl fmt::Display for Itinerary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} flies to {} (flight {}) and stays {} nights (hotel {}), paid {} ({})",
            self.flight.customer,
            self.flight.city,
            self.flight.reference,
            self.hotel.nights,
            self.hotel.reference,
            format_euros(self.payment.amount),
            self.payment.reference,
        )
    }
}

/// Why a travel service said no.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TripError {
    /// The bank has no account by that name.
    UnknownCustomer(String),
    /// The account holds less than the price.
    InsufficientFunds {
        /// The customer.
        customer: String,
        /// What the account holds.
        balance: Cents,
        /// What the trip costs.
        needed: Cents,
    },
    /// The bank's refund service is down.
    RefundsUnavailable,
    /// Every seat to that city is taken.
    NoSeats {
        /// The destination.
        city: String,
    },
    /// Every room in that city is taken.
    NoRooms {
        /// The destination.
        city: String,
    },
    /// The mail server asked to be tried again later.
    MailServerBusy,
    /// A service could not write down what it did in its [`Ledger`].
    Ledger(String),
}

impl fmt::Display for TripError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TripError::UnknownCustomer(customer) => {
                write!(f, "the bank has no account for {customer}")
            }
            TripError::InsufficientFunds {
                customer,
                balance,
                needed,
            } => write!(
                f,
                "{customer} has {} but the trip costs {}",
                format_euros(*balance),
                format_euros(*needed)
            ),
            TripError::RefundsUnavailable => f.write_str("the bank's refund service is down"),
            TripError::NoSeats { city } => write!(f, "no seats left on flights to {city}"),
            TripError::NoRooms { city } => write!(f, "no hotel rooms left in {city}"),
            TripError::MailServerBusy => f.write_str("the mail server is busy, try again later"),
            TripError::Ledger(why) => write!(f, "a service could not keep its records: {why}"),
        }
    }
}

impl std::error::Error for TripError {}

// ---------------------------------------------------------------------------
// The fake services
// ---------------------------------------------------------------------------

/// The key a fake remembers `caller`'s request by: its idempotency key, or none
/// outside a saga.
fn request_key(caller: &Caller) -> Option<&str> {
    (caller.key != "-").then_some(caller.key.as_str())
}

/// Runs `f` with the ledger, if the service has one.
fn with_ledger<T>(
    ledger: &Option<Arc<Ledger>>,
    f: impl FnOnce(&Ledger) -> Result<Option<T>, String>,
) -> Result<Option<T>, TripError> {
    match ledger {
        Some(ledger) => f(ledger).map_err(TripError::Ledger),
        None => Ok(None),
    }
}

/// A bank that holds customers' balances and remembers every debit and refund.
///
/// Refunds are idempotent: refunding the same payment twice credits it once, so
/// that a retried compensation cannot pay the customer twice.
///
/// Debits are once per idempotency key: asked again to debit with a key it has
/// already debited for, it answers with the first payment.
/// [`with_ledger`](Bank::with_ledger) makes its effects outlive the process, and
/// the keys it has served with them. A clone shares the accounts.
#[derive(Debug, Default, Clone)]
pub struct Bank {
    state: Arc<Mutex<BankState>>,
    ledger: Option<Arc<Ledger>>,
}

#[derive(Debug, Default)]
struct BankState {
    balances: HashMap<String, Cents>,
    debits: Vec<Payment>,
    refunds: Vec<Payment>,
    refunded: HashSet<String>,
    refusing_refunds: bool,
    refusing_refunds_for: HashSet<String>,
    by_key: HashMap<String, Payment>,
    next: u32,
}

impl BankState {
    fn apply_debit(&mut self, payment: &Payment) {
        let balance = self.balances.entry(payment.customer.clone()).or_default();
        *balance = balance.saturating_sub(payment.amount);
        self.next += 1;
        self.debits.push(payment.clone());
    }

    fn apply_refund(&mut self, payment: &Payment) {
        self.refunded.insert(payment.reference.clone());
        *self.balances.entry(payment.customer.clone()).or_default() += payment.amount;
        self.refunds.push(payment.clone());
    }
}

impl Bank {
    /// A bank with no accounts.
    pub fn new() -> Self {
        Bank::default()
    }

    /// The same bank with an account for `customer` holding `balance`.
    pub fn with_account(self, customer: &str, balance: Cents) -> Self {
        lock(&self.state)
            .balances
            .insert(customer.to_owned(), balance);
        self
    }

    /// The same bank, whose refund service is down: every refund fails with
    /// [`TripError::RefundsUnavailable`].
    pub fn refusing_refunds(self) -> Self {
        lock(&self.state).refusing_refunds = true;
        self
    }

    /// The same bank, refusing every refund to `customer` with
    /// [`TripError::RefundsUnavailable`].
    pub fn refusing_refunds_for(self, customer: &str) -> Self {
        lock(&self.state)
            .refusing_refunds_for
            .insert(customer.to_owned());
        self
    }

    /// The same bank, writing what it does to `ledger`, after applying what the
    /// ledger says it did before (debits and refunds) to the accounts. Call it
    /// after [`with_account`](Bank::with_account).
    pub fn with_ledger(mut self, ledger: Arc<Ledger>) -> Self {
        {
            let mut state = lock(&self.state);
            for line in ledger.lines() {
                match line.what.as_str() {
                    "debit" => {
                        if let Ok(payment) = line.decode::<Payment>() {
                            state.apply_debit(&payment);
                        }
                    }
                    "refund" => {
                        if let Ok(payment) = line.decode::<Payment>() {
                            state.apply_refund(&payment);
                        }
                    }
                    _ => {}
                }
            }
        }
        self.ledger = Some(ledger);
        self
    }

    /// What `customer`'s account holds, or `None` if there is no such account.
    pub fn balance(&self, customer: &str) -> Option<Cents> {
        lock(&self.state).balances.get(customer).copied()
    }

    /// Every debit made, in order, refunded or not.
    pub fn debits(&self) -> Vec<Payment> {
        lock(&self.state).debits.clone()
    }

    /// Every refund made, in order.
    pub fn refunds(&self) -> Vec<Payment> {
        lock(&self.state).refunds.clone()
    }

    /// Takes `amount` from `customer`'s account.
    pub fn debit(&self, customer: &str, amount: Cents) -> Result<Payment, TripError> {
        let mut state = lock(&self.state);
        let caller = Caller::current();
        if let Some(earlier) = with_ledger(&self.ledger, |l| l.call("debit", &caller))? {
            return Ok(earlier);
        }
        if let Some(earlier) = request_key(&caller).and_then(|k| state.by_key.get(k)) {
            return Ok(earlier.clone());
        }
        let balance = *state
            .balances
            .get(customer)
            .ok_or_else(|| TripError::UnknownCustomer(customer.to_owned()))?;
        if balance < amount {
            return Err(TripError::InsufficientFunds {
                customer: customer.to_owned(),
                balance,
                needed: amount,
            });
        }
        let payment = Payment {
            reference: format!("PAY-{}", state.next + 1),
            customer: customer.to_owned(),
            amount,
        };
        with_ledger(&self.ledger, |l| {
            l.done("debit", &caller, &payment).map(Some)
        })?;
        state.apply_debit(&payment);
        if let Some(key) = request_key(&caller) {
            state.by_key.insert(key.to_owned(), payment.clone());
        }
        Ok(payment)
    }

    /// Gives `payment` back to its customer; does nothing if it was already refunded.
    pub fn refund(&self, payment: &Payment) -> Result<(), TripError> {
        let mut state = lock(&self.state);
        let caller = Caller::current();
        if with_ledger(&self.ledger, |l| l.call::<IgnoredAny>("refund", &caller))?.is_some() {
            return Ok(());
        }
        if state.refusing_refunds || state.refusing_refunds_for.contains(&payment.customer) {
            return Err(TripError::RefundsUnavailable);
        }
        if state.refunded.contains(&payment.reference) {
            return Ok(());
        }
        with_ledger(&self.ledger, |l| {
            l.done("refund", &caller, payment).map(Some)
        })?;
        state.apply_refund(payment);
        Ok(())
    }
}

/// What a booking service keeps, shared by [`Airline`] and [`Hotels`]: the cities
/// it cannot book, the bookings that stand, those cancelled, and what each
/// idempotency key booked. A clone shares the bookings.
#[derive(Debug, Clone)]
struct BookingDesk<B> {
    state: Arc<Mutex<DeskState<B>>>,
    ledger: Option<Arc<Ledger>>,
    /// The ledger's names for a booking and for its cancellation.
    booking_line: &'static str,
    cancel_line: &'static str,
}

#[derive(Debug)]
struct DeskState<B> {
    full: HashSet<String>,
    booked: Vec<B>,
    cancelled: Vec<B>,
    by_key: HashMap<String, B>,
    next: u32,
}

impl<B> DeskState<B>
where
    B: Clone + PartialEq,
{
    fn apply_cancel(&mut self, booking: &B) {
        if let Some(i) = self.booked.iter().position(|b| b == booking) {
            let cancelled = self.booked.remove(i);
            self.cancelled.push(cancelled);
        }
    }
}

impl<B> BookingDesk<B>
where
    B: Clone + PartialEq + Serialize + serde::de::DeserializeOwned,
{
    fn new(booking_line: &'static str, cancel_line: &'static str) -> Self {
        BookingDesk {
            state: Arc::new(Mutex::new(DeskState {
                full: HashSet::new(),
                booked: Vec::new(),
                cancelled: Vec::new(),
                by_key: HashMap::new(),
                next: 0,
            })),
            ledger: None,
            booking_line,
            cancel_line,
        }
    }

    fn close(&self, city: &str) {
        lock(&self.state).full.insert(city.to_owned());
    }

    /// Takes in the bookings and cancellations `ledger` holds, then writes to it.
    fn with_ledger(mut self, ledger: Arc<Ledger>) -> Self {
        {
            let mut state = lock(&self.state);
            for line in ledger.lines() {
                if line.what == self.booking_line {
                    if let Ok(booking) = line.decode::<B>() {
                        state.next += 1;
                        state.booked.push(booking);
                    }
                } else if line.what == self.cancel_line
                    && let Ok(booking) = line.decode::<B>()
                {
                    state.apply_cancel(&booking);
                }
            }
        }
        self.ledger = Some(ledger);
        self
    }

    fn booked(&self) -> Vec<B> {
        lock(&self.state).booked.clone()
    }

    fn cancelled(&self) -> Vec<B> {
        lock(&self.state).cancelled.clone()
    }

    /// Books in `city` once per idempotency key: `refused` if the city is full,
    /// else what `make` builds from the booking's number.
    fn book(
        &self,
        city: &str,
        refused: impl FnOnce() -> TripError,
        make: impl FnOnce(u32) -> B,
    ) -> Result<B, TripError> {
        let mut state = lock(&self.state);
        let caller = Caller::current();
        if let Some(earlier) = with_ledger(&self.ledger, |l| l.call(self.booking_line, &caller))? {
            return Ok(earlier);
        }
        if let Some(earlier) = request_key(&caller).and_then(|k| state.by_key.get(k)) {
            return Ok(earlier.clone());
        }
        if state.full.contains(city) {
            return Err(refused());
        }
        let booking = make(state.next + 1);
        with_ledger(&self.ledger, |l| {
            l.done(self.booking_line, &caller, &booking).map(Some)
        })?;
        state.next += 1;
        state.booked.push(booking.clone());
        if let Some(key) = request_key(&caller) {
            state.by_key.insert(key.to_owned(), booking.clone());
        }
        Ok(booking)
    }

    /// Cancels `booking`; cancelling one that no longer stands does nothing.
    fn cancel(&self, booking: &B) -> Result<(), TripError> {
        let mut state = lock(&self.state);
        let caller = Caller::current();
        if with_ledger(&self.ledger, |l| {
            l.call::<IgnoredAny>(self.cancel_line, &caller)
        })?
        .is_some()
        {
            return Ok(());
        }
        if !state.booked.contains(booking) {
            return Ok(());
        }
        with_ledger(&self.ledger, |l| {
            l.done(self.cancel_line, &caller, booking).map(Some)
        })?;
        state.apply_cancel(booking);
        Ok(())
    }
}

/// An airline that books seats, and remembers what it booked and cancelled.
///
/// Bookings are once per idempotency key; [`with_ledger`](Airline::with_ledger)
/// makes them outlive the process. A clone shares the bookings.
#[derive(Debug, Clone)]
pub struct Airline {
    desk: BookingDesk<FlightBooking>,
}

impl Default for Airline {
    fn default() -> Self {
        Airline {
            desk: BookingDesk::new("flight", "cancel-flight"),
        }
    }
}

impl Airline {
    /// An airline with seats to everywhere.
    pub fn new() -> Self {
        Airline::default()
    }

    /// The same airline, with every flight to `city` full.
    pub fn with_no_seats_to(self, city: &str) -> Self {
        self.desk.close(city);
        self
    }

    /// The same airline, writing what it does to `ledger`, after taking in the
    /// bookings and cancellations the ledger holds.
    pub fn with_ledger(self, ledger: Arc<Ledger>) -> Self {
        Airline {
            desk: self.desk.with_ledger(ledger),
        }
    }

    /// The bookings that stand (booked and not cancelled).
    pub fn booked(&self) -> Vec<FlightBooking> {
        self.desk.booked()
    }

    /// The bookings that were cancelled, in the order they were.
    pub fn cancelled(&self) -> Vec<FlightBooking> {
        self.desk.cancelled()
    }

    /// Books a seat for `customer` to `city`.
    pub fn book(&self, customer: &str, city: &str) -> Result<FlightBooking, TripError> {
        self.desk.book(
            city,
            || TripError::NoSeats {
                city: city.to_owned(),
            },
            |number| FlightBooking {
                reference: format!("FL-{number}"),
                customer: customer.to_owned(),
                city: city.to_owned(),
            },
        )
    }

    /// Cancels `booking`; cancelling one that no longer stands does nothing.
    pub fn cancel(&self, booking: &FlightBooking) -> Result<(), TripError> {
        self.desk.cancel(booking)
    }
}

/// A hotel chain that books rooms, and remembers what it booked and cancelled.
///
/// Bookings are once per idempotency key; [`with_ledger`](Hotels::with_ledger)
/// makes them outlive the process. A clone shares the bookings.
#[derive(Debug, Clone)]
pub struct Hotels {
    desk: BookingDesk<HotelBooking>,
}

impl Default for Hotels {
    fn default() -> Self {
        Hotels {
            desk: BookingDesk::new("hotel", "cancel-hotel"),
        }
    }
}

impl Hotels {
    /// Hotels with rooms everywhere.
    pub fn new() -> Self {
        Hotels::default()
    }

    /// The same hotels, with every room in `city` taken.
    pub fn with_no_rooms_in(self, city: &str) -> Self {
        self.desk.close(city);
        self
    }

    /// The same hotels, writing what they do to `ledger`, after taking in the
    /// bookings and cancellations the ledger holds.
    pub fn with_ledger(self, ledger: Arc<Ledger>) -> Self {
        Hotels {
            desk: self.desk.with_ledger(ledger),
        }
    }

    /// The bookings that stand.
    pub fn booked(&self) -> Vec<HotelBooking> {
        self.desk.booked()
    }

    /// The bookings that were cancelled, in the order they were.
    pub fn cancelled(&self) -> Vec<HotelBooking> {
        self.desk.cancelled()
    }

    /// Books a room in `city` for `customer`, for `nights` nights.
    pub fn book(&self, customer: &str, city: &str, nights: u32) -> Result<HotelBooking, TripError> {
        self.desk.book(
            city,
            || TripError::NoRooms {
                city: city.to_owned(),
            },
            |number| HotelBooking {
                reference: format!("HT-{number}"),
                customer: customer.to_owned(),
                city: city.to_owned(),
                nights,
            },
        )
    }

    /// Cancels `booking`; cancelling one that no longer stands does nothing.
    pub fn cancel(&self, booking: &HotelBooking) -> Result<(), TripError> {
        self.desk.cancel(booking)
    }
}

/// A mail server that remembers what it sent, and can be busy for a while.
///
/// It sends once per idempotency key; [`with_ledger`](Mailer::with_ledger) makes
/// what it sent outlive the process. A clone shares the outbox.
#[derive(Debug, Default, Clone)]
pub struct Mailer {
    state: Arc<Mutex<MailerState>>,
    ledger: Option<Arc<Ledger>>,
}

#[derive(Debug, Default)]
struct MailerState {
    busy_for: u32,
    busy_one_in: u32,
    attempts: u32,
    sent: Vec<Email>,
    sent_keys: HashSet<String>,
}

impl Mailer {
    /// A mail server that sends everything at once.
    pub fn new() -> Self {
        Mailer::default()
    }

    /// A mail server that refuses the first `attempts` sends with
    /// [`TripError::MailServerBusy`], then sends.
    pub fn busy_for(attempts: u32) -> Self {
        let mailer = Mailer::new();
        lock(&mailer.state).busy_for = attempts;
        mailer
    }

    /// A mail server that refuses one send in `n`, at random, with
    /// [`TripError::MailServerBusy`] (`n` of 0 or 1 refuses none).
    pub fn busy_one_in(n: u32) -> Self {
        let mailer = Mailer::new();
        lock(&mailer.state).busy_one_in = if n > 1 { n } else { 0 };
        mailer
    }

    /// The same mail server, writing what it sends to `ledger`, after taking in
    /// what the ledger says it sent.
    pub fn with_ledger(mut self, ledger: Arc<Ledger>) -> Self {
        {
            let mut state = lock(&self.state);
            for line in ledger.effects("email") {
                if let Ok(email) = line.decode::<Email>() {
                    state.sent.push(email);
                }
            }
        }
        self.ledger = Some(ledger);
        self
    }

    /// The e-mails sent, in order.
    pub fn sent(&self) -> Vec<Email> {
        lock(&self.state).sent.clone()
    }

    /// How many sends were attempted, refused ones included.
    pub fn attempts(&self) -> u32 {
        lock(&self.state).attempts
    }

    /// Sends `email`, unless the server is busy.
    pub fn send(&self, email: Email) -> Result<(), TripError> {
        let mut state = lock(&self.state);
        state.attempts += 1;
        let caller = Caller::current();
        if with_ledger(&self.ledger, |l| l.call::<IgnoredAny>("email", &caller))?.is_some() {
            return Ok(());
        }
        if request_key(&caller).is_some_and(|k| state.sent_keys.contains(k)) {
            return Ok(());
        }
        if state.busy_for > 0 {
            state.busy_for -= 1;
            return Err(TripError::MailServerBusy);
        }
        if state.busy_one_in > 0 && fastrand::u32(..state.busy_one_in) == 0 {
            return Err(TripError::MailServerBusy);
        }
        with_ledger(&self.ledger, |l| l.done("email", &caller, &email).map(Some))?;
        state.sent.push(email);
        if let Some(key) = request_key(&caller) {
            state.sent_keys.insert(key.to_owned());
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The steps and their compensations
// ---------------------------------------------------------------------------

#[sagaflow::steps]
impl Bank {
    /// Takes the trip's price from the customer's account.
    ///
    /// Done first, so that nobody gets a flight they cannot pay for. Undone by
    /// [`refund_customer`](Bank::refund_customer).
    #[step(compensate = Self::refund_customer)]
    pub async fn debit_customer(&self, trip: &Trip) -> Result<Payment, TripError> {
        self.debit(&trip.customer, trip.price)
    }

    /// Undoes [`debit_customer`](Bank::debit_customer): gives the payment back.
    /// The bank ignores a second refund of the same payment, so retrying this is
    /// safe.
    pub async fn refund_customer(&self, trip: &Trip, payment: &Payment) -> Result<(), TripError> {
        let _ = trip;
        self.refund(payment)
    }
}

#[sagaflow::steps]
impl Airline {
    /// Books the customer's seat to the trip's city. Undone by
    /// [`cancel_flight`](Airline::cancel_flight).
    #[step(compensate = Self::cancel_flight)]
    pub async fn book_flight(&self, trip: &Trip) -> Result<FlightBooking, TripError> {
        self.book(&trip.customer, &trip.city)
    }

    /// Undoes [`book_flight`](Airline::book_flight): cancels the seat.
    pub async fn cancel_flight(
        &self,
        trip: &Trip,
        booking: &FlightBooking,
    ) -> Result<(), TripError> {
        let _ = trip;
        self.cancel(booking)
    }
}

#[sagaflow::steps]
impl Hotels {
    /// Books the customer's room in the trip's city, for the trip's nights.
    ///
    /// Booked at the same time as the flight, which it does not need. Undone by
    /// [`cancel_hotel`](Hotels::cancel_hotel): if there is no room, the flight
    /// booked meanwhile is cancelled and the customer refunded.
    #[step(compensate = Self::cancel_hotel)]
    pub async fn book_hotel(&self, trip: &Trip) -> Result<HotelBooking, TripError> {
        self.book(&trip.customer, &trip.city, trip.nights)
    }

    /// Undoes [`book_hotel`](Hotels::book_hotel): cancels the room.
    pub async fn cancel_hotel(&self, trip: &Trip, booking: &HotelBooking) -> Result<(), TripError> {
        let _ = trip;
        self.cancel(booking)
    }
}

/// Sends the itinerary to the customer.
///
/// Comes once the flight and the hotel are both booked, and is never undone: it
/// is retried until the mail server takes it, waiting 10 ms before the first
/// retry and at most 100 ms between two.
#[step(retriable, retry(backoff = "10ms", max_backoff = "100ms"))]
pub async fn email_itinerary(
    mailer: &Mailer,
    trip: &Trip,
    flight: &FlightBooking,
    hotel: &HotelBooking,
) -> Result<(), TripError> {
    mailer.send(Email {
        to: trip.email.clone(),
        subject: format!("Your trip to {}", trip.city),
        body: format!(
            "Flight {} to {}, then {} nights at hotel booking {}. Paid: {}.",
            flight.reference,
            trip.city,
            hotel.nights,
            hotel.reference,
            format_euros(trip.price)
        ),
    })
}

/// Books a trip: debits the customer, books the flight and the hotel
/// concurrently, and e-mails the itinerary.
///
/// Fails with [`SagaError`](sagaflow::SagaError) if the customer cannot pay, the
/// flight is full or the hotel is; whatever was done is undone: the flight or
/// the hotel that was booked, then the payment. Run it with a [`Runner`](sagaflow::Runner) through [`BookTripSaga`] to
/// add hooks or get a report.
#[saga]
pub async fn book_trip(
    bank: &Bank,
    airline: &Airline,
    hotels: &Hotels,
    mailer: &Mailer,
    trip: Trip,
) -> Result<Itinerary, TripError> {
    let payment = bank.debit_customer(&trip).await?;
    let (flight, hotel) = sagaflow::join!(airline.book_flight(&trip), hotels.book_hotel(&trip))?;
    email_itinerary(mailer, &trip, &flight, &hotel).await?;
    Ok(Itinerary {
        payment,
        flight,
        hotel,
    })
}

// ---------------------------------------------------------------------------
// Telling the story
// ---------------------------------------------------------------------------

/// [`Hooks`] that tell what a saga does, one plain sentence per event.
///
/// Each line is kept (see [`lines`](Narrator::lines)) and, unless the narrator
/// is [`quiet`](Narrator::quiet), printed to standard output as it happens.
#[derive(Debug, Default)]
pub struct Narrator {
    quiet: bool,
    lines: Mutex<Vec<String>>,
}

impl Narrator {
    /// A narrator that prints as it goes.
    pub fn new() -> Self {
        Narrator::default()
    }

    /// A narrator that only keeps its lines, for tests.
    pub fn quiet() -> Self {
        Narrator {
            quiet: true,
            lines: Mutex::default(),
        }
    }

    /// Everything said so far, in order.
    pub fn lines(&self) -> Vec<String> {
        lock(&self.lines).clone()
    }

    fn say(&self, line: String) {
        if !self.quiet {
            println!("{line}");
        }
        lock(&self.lines).push(line);
    }
}

fn attempt_note(cx: &StepContext) -> String {
    if cx.attempt() > 1 {
        format!(" (attempt {})", cx.attempt())
    } else {
        String::new()
    }
}

impl Hooks for Narrator {
    fn saga_started(&self, saga: &'static str, id: SagaId) {
        self.say(format!("saga `{saga}` starts, run {id}"));
    }

    fn step_started(&self, cx: &StepContext) {
        self.say(format!("  `{}` starts{}", cx.step(), attempt_note(cx)));
    }

    fn step_succeeded(&self, cx: &StepContext, elapsed: Duration) {
        self.say(format!("  `{}` succeeded in {elapsed:.1?}", cx.step()));
    }

    fn step_retrying(&self, cx: &StepContext, error: &str, delay: Duration) {
        self.say(format!(
            "  `{}` failed: {error}; trying again in {delay:.1?}",
            cx.step()
        ));
    }

    fn step_failed(&self, cx: &StepContext, error: &str) {
        // The first step failing means nothing was done before it.
        let then = if cx.index() == 0 {
            "nothing was done before it, so nothing needs undoing"
        } else {
            "undoing what was done before it"
        };
        self.say(format!(
            "  `{}` failed for good: {error}; {then}",
            cx.step()
        ));
    }

    fn compensation_started(&self, cx: &StepContext) {
        self.say(format!("  undoing `{}`{}", cx.step(), attempt_note(cx)));
    }

    fn compensation_succeeded(&self, cx: &StepContext, elapsed: Duration) {
        self.say(format!("  `{}` undone in {elapsed:.1?}", cx.step()));
    }

    fn compensation_retrying(&self, cx: &StepContext, error: &str, delay: Duration) {
        self.say(format!(
            "  undoing `{}` failed: {error}; trying again in {delay:.1?}",
            cx.step()
        ));
    }

    fn compensation_failed(&self, cx: &StepContext, error: &str) {
        self.say(format!(
            "  could not undo `{}`: {error}; a person has to repair it",
            cx.step()
        ));
    }

    fn saga_finished(&self, report: &RunReport) {
        let how = match report.outcome() {
            RunOutcome::Committed => "committed",
            RunOutcome::Compensated if report.compensations().next().is_none() => {
                "gave up; nothing had been done, so nothing needed undoing"
            }
            RunOutcome::Compensated => "gave up; everything that was done was undone",
            RunOutcome::CompensationFailed => "gave up; some of it could not be undone",
        };
        self.say(format!("saga `{}` {how}", report.saga()));
    }
}
