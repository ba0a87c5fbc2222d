//! The fake airline, hotels and mailer.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::IgnoredAny;

use super::{Email, FlightBooking, HotelBooking, TripError, lock, request_key, with_ledger};
use crate::ledger::{Caller, Ledger};

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
