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
//! their state after a run; [`Narrator`] is a [`Hooks`](sagaflow::Hooks) that
//! tells the story of a run in plain words. Like real clients, they are handles: a clone shares the
//! state of the original, so a test (or a durable executor's resources) and the
//! saga see the same bank.
//!
//! Each fake does a request once per idempotency key (the running step's
//! [`StepContext::idempotency_key`](sagaflow::StepContext::idempotency_key)):
//! asked again with a key it has already served, as at-least-once delivery
//! does, it answers with what it did the first time instead of doing it twice.
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

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sagaflow::{saga, step};
use serde::{Deserialize, Serialize};

use crate::ledger::{Caller, Ledger};

mod bank;
mod desks;
mod narrator;

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

pub use bank::Bank;
pub use desks::{Airline, Hotels, Mailer};
pub use narrator::Narrator;

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
