// The travel services of the guide's examples: small in-memory fakes, included
// into each doctest (`include!`) so that the visible code is the saga itself.
// Not a module of the crate. Each fake is a handle (its state behind an `Arc`):
// a clone shares the state, as a real client does, so that a durable executor's
// resources and a test's invariant see the same bank. Each effect is done once
// per idempotency key, so that a step delivered twice (at-least-once) does it once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the customer asked for.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Trip {
    pub customer: String,
    pub email: String,
    pub city: String,
    pub nights: u32,
    /// In cents.
    pub price: u64,
}

impl Trip {
    pub fn new(customer: &str, city: &str, nights: u32, price: u64) -> Trip {
        Trip {
            customer: customer.to_owned(),
            email: format!("{customer}@example.com"),
            city: city.to_owned(),
            nights,
            price,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Payment {
    pub reference: String,
    pub customer: String,
    pub amount: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FlightBooking {
    pub reference: String,
    pub customer: String,
    pub city: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HotelBooking {
    pub reference: String,
    pub city: String,
    pub nights: u32,
    pub flight: String,
}

/// What `book_trip` returns.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Itinerary {
    pub payment: Payment,
    pub flight: FlightBooking,
    pub hotel: HotelBooking,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TripError {
    NoAccount(String),
    InsufficientFunds { customer: String, balance: u64 },
    NoRooms { city: String },
}

impl std::fmt::Display for TripError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TripError::NoAccount(who) => write!(f, "the bank has no account for {who}"),
            TripError::InsufficientFunds { customer, balance } => {
                write!(f, "{customer} has only {balance} cents")
            }
            TripError::NoRooms { city } => write!(f, "no hotel rooms left in {city}"),
        }
    }
}

impl std::error::Error for TripError {}

/// The running step's idempotency key, or a fresh one outside a saga.
fn request_key() -> String {
    match sagaflow::StepContext::current() {
        Some(cx) => cx.idempotency_key().to_string(),
        None => sagaflow::SagaId::random().to_string(),
    }
}

#[derive(Debug, Default)]
struct BankState {
    balances: HashMap<String, u64>,
    debits: HashMap<String, Payment>,
    refunded: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Bank(Arc<Mutex<BankState>>);

impl Bank {
    pub fn with_account(customer: &str, balance: u64) -> Bank {
        let bank = Bank::default();
        bank.0.lock().unwrap().balances.insert(customer.to_owned(), balance);
        bank
    }

    pub fn balance(&self, customer: &str) -> Option<u64> {
        self.0.lock().unwrap().balances.get(customer).copied()
    }

    pub async fn debit(&self, customer: &str, amount: u64) -> Result<Payment, TripError> {
        let mut state = self.0.lock().unwrap();
        let key = request_key();
        if let Some(done) = state.debits.get(&key) {
            return Ok(done.clone());
        }
        let count = state.debits.len();
        let balance = state
            .balances
            .get_mut(customer)
            .ok_or_else(|| TripError::NoAccount(customer.to_owned()))?;
        if *balance < amount {
            let balance = *balance;
            return Err(TripError::InsufficientFunds { customer: customer.to_owned(), balance });
        }
        *balance -= amount;
        let payment = Payment {
            reference: format!("PAY-{}", count + 1),
            customer: customer.to_owned(),
            amount,
        };
        state.debits.insert(key, payment.clone());
        Ok(payment)
    }

    /// Refunds `payment` once, however often it is asked.
    pub async fn refund(&self, payment: &Payment) -> Result<(), TripError> {
        let mut state = self.0.lock().unwrap();
        if !state.refunded.contains(&payment.reference) {
            state.refunded.push(payment.reference.clone());
            *state.balances.entry(payment.customer.clone()).or_default() += payment.amount;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Desk<B> {
    by_key: HashMap<String, B>,
    booked: Vec<B>,
    full: Vec<String>,
}

impl<B> Default for Desk<B> {
    fn default() -> Self {
        Desk { by_key: HashMap::new(), booked: Vec::new(), full: Vec::new() }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Airline(Arc<Mutex<Desk<FlightBooking>>>);

impl Airline {
    pub fn new() -> Airline {
        Airline::default()
    }

    /// The bookings that stand.
    pub fn booked(&self) -> Vec<FlightBooking> {
        self.0.lock().unwrap().booked.clone()
    }

    pub async fn book(&self, customer: &str, city: &str) -> Result<FlightBooking, TripError> {
        let mut desk = self.0.lock().unwrap();
        let key = request_key();
        if let Some(done) = desk.by_key.get(&key) {
            return Ok(done.clone());
        }
        let flight = FlightBooking {
            reference: format!("FL-{}", desk.by_key.len() + 1),
            customer: customer.to_owned(),
            city: city.to_owned(),
        };
        desk.by_key.insert(key, flight.clone());
        desk.booked.push(flight.clone());
        Ok(flight)
    }

    /// Cancels `flight`; cancelling one that no longer stands does nothing.
    pub async fn cancel(&self, flight: &FlightBooking) -> Result<(), TripError> {
        self.0.lock().unwrap().booked.retain(|b| b != flight);
        Ok(())
    }
}

#[derive(Debug, Clone, Default)]
pub struct Hotels(Arc<Mutex<Desk<HotelBooking>>>);

impl Hotels {
    pub fn new() -> Hotels {
        Hotels::default()
    }

    pub fn with_no_rooms_in(city: &str) -> Hotels {
        let hotels = Hotels::default();
        hotels.0.lock().unwrap().full.push(city.to_owned());
        hotels
    }

    /// The bookings that stand.
    pub fn booked(&self) -> Vec<HotelBooking> {
        self.0.lock().unwrap().booked.clone()
    }

    pub async fn book(
        &self,
        city: &str,
        nights: u32,
        flight: &FlightBooking,
    ) -> Result<HotelBooking, TripError> {
        let mut desk = self.0.lock().unwrap();
        let key = request_key();
        if let Some(done) = desk.by_key.get(&key) {
            return Ok(done.clone());
        }
        if desk.full.iter().any(|c| c == city) {
            return Err(TripError::NoRooms { city: city.to_owned() });
        }
        let hotel = HotelBooking {
            reference: format!("HT-{}", desk.by_key.len() + 1),
            city: city.to_owned(),
            nights,
            flight: flight.reference.clone(),
        };
        desk.by_key.insert(key, hotel.clone());
        desk.booked.push(hotel.clone());
        Ok(hotel)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Mailer(Arc<Mutex<HashMap<String, String>>>);

impl Mailer {
    pub fn new() -> Mailer {
        Mailer::default()
    }

    /// How many e-mails went out.
    pub fn sent(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub async fn send(&self, to: &str, hotel: &HotelBooking) -> Result<(), TripError> {
        let text = format!("{to}: {} nights at {}", hotel.nights, hotel.reference);
        self.0.lock().unwrap().entry(request_key()).or_insert(text);
        Ok(())
    }
}
