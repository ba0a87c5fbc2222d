//! The example sagas through the test kit (`sagaflow::testing`): every step made
//! to fail, every step and compensation delivered twice, and (for the travel
//! and checkout sagas, which can run durably) a crash after every persisted
//! transition. After
//! each run, the invariant a person would state about the saga must hold.
//!
//! `cargo test -p sagaflow-examples --test kit -- --nocapture` prints what each
//! sweep ran.

use std::cell::Cell;

use sagaflow::durable::Executor;
use sagaflow::testing::{RunSummary, SagaTest};
use sagaflow_examples::checkout::{Carrier, CheckoutSaga, Order, Payments, Warehouse};
use sagaflow_examples::provision::{Cloud, Directory, Network, ProvisionSaga, Request};
use sagaflow_examples::travel::{
    Airline, Bank, BookTripSaga, Cents, Hotels, Mailer, Trip, euros, format_euros,
};

// ---------------------------------------------------------------------------
// Travel
// ---------------------------------------------------------------------------

const PRICE: Cents = euros(900);

/// The travel services. Each fake is a handle (its state behind an `Arc`), so
/// the clones a durable executor holds as resources share state with these.
struct Travel {
    bank: Bank,
    airline: Airline,
    hotels: Hotels,
    mailer: Mailer,
    /// What the services held when the current run started.
    before: Cell<Holdings>,
}

/// What the travel services hold for the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Holdings {
    balance: Cents,
    flights: usize,
    rooms: usize,
    emails: usize,
}

impl Travel {
    fn new() -> Self {
        Travel {
            // Enough money for every committed run of a sweep.
            bank: Bank::new().with_account("ada", euros(1_000_000)),
            airline: Airline::new(),
            hotels: Hotels::new(),
            mailer: Mailer::new(),
            before: Cell::new(Holdings {
                balance: 0,
                flights: 0,
                rooms: 0,
                emails: 0,
            }),
        }
    }

    fn holdings(&self) -> Holdings {
        Holdings {
            balance: self.bank.balance("ada").unwrap_or(0),
            flights: self.airline.booked().len(),
            rooms: self.hotels.booked().len(),
            emails: self.mailer.sent().len(),
        }
    }

    /// A fresh trip for the next run; remembers what the services hold before it.
    fn saga(&self) -> BookTripSaga<'_> {
        self.before.set(self.holdings());
        let trip = Trip::new("ada", "ada@example.com", "Lisbon", 3, PRICE);
        BookTripSaga::new(&self.bank, &self.airline, &self.hotels, &self.mailer, trip)
    }

    /// The customer's balance is unchanged and no flight or room is held unless
    /// the trip committed; if it did, she paid once, holds one flight and one
    /// room, and was sent one itinerary.
    fn nothing_held_unless_committed(&self, run: &RunSummary) -> Result<(), String> {
        let before = self.before.get();
        let want = if run.committed() {
            Holdings {
                balance: before.balance - PRICE,
                flights: before.flights + 1,
                rooms: before.rooms + 1,
                emails: before.emails + 1,
            }
        } else {
            before
        };
        let now = self.holdings();
        if now == want {
            return Ok(());
        }
        Err(format!(
            "the customer has {} and holds {} flight(s) and {} room(s), with {} itinerary mail(s) sent; \
             expected {}, {} flight(s), {} room(s) and {} mail(s)",
            format_euros(now.balance),
            now.flights,
            now.rooms,
            now.emails,
            format_euros(want.balance),
            want.flights,
            want.rooms,
            want.emails,
        ))
    }

    fn test(&self) -> SagaTest<'_, BookTripSaga<'_>> {
        SagaTest::new(|| self.saga()).invariant(|run| self.nothing_held_unless_committed(run))
    }
}

#[test]
fn travel_failure_sweep() {
    let travel = Travel::new();
    let report = travel
        .test()
        .failure_sweep()
        .unwrap_or_else(|e| panic!("{e}"));
    println!("travel, {report}");
    // A clean run, then 4 steps × 3 faults (error, timeout, panic), then the
    // flight failing while the hotel is in flight and the other way round, the
    // one in flight then running to its end or failing.
    assert_eq!(report.runs(), 17, "{report}");
    assert!(
        report.cases().contains(
            &"`Airline::book_flight` made to fail by an error while `Hotels::book_hotel` is in flight, which then runs to its end"
                .to_owned()
        ),
        "{report}"
    );
    assert!(
        report
            .cases()
            .contains(&"`Hotels::book_hotel` made to fail by a panic".to_owned()),
        "{report}"
    );
    assert!(
        report
            .cases()
            .contains(&"`email_itinerary` (retriable) made to fail twice by a timeout".to_owned()),
        "{report}"
    );
}

#[test]
fn travel_repeat_sweep() {
    let travel = Travel::new();
    let report = travel
        .test()
        .repeat_sweep()
        .unwrap_or_else(|e| panic!("{e}"));
    println!("travel, {report}");
    // Each of 4 steps twice, then `refund_customer`, `cancel_flight` and
    // `cancel_hotel` (run by the flight's failure, its sibling's) twice.
    assert_eq!(report.runs(), 7, "{report}");
}

#[test]
fn travel_crash_sweep() {
    let travel = Travel::new();
    let report = travel
        .test()
        .crash_sweep(|store| {
            Executor::new(store)
                .resource(travel.bank.clone())
                .resource(travel.airline.clone())
                .resource(travel.hotels.clone())
                .resource(travel.mailer.clone())
                .register::<BookTripSaga>()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    println!("travel, {report}");
    // Killed after the input is stored and after each transition (a step's
    // outcome rides in the next step's start), then a last run whose last write
    // is the end itself. Every step was cut short once after it began, so ran
    // again on recovery with the same idempotency key: the flight and the hotel
    // (steps 1 and 2) begin in one commit, and end in one each, so a run is
    // also killed between the flight's outcome and the hotel's.
    for cut in [
        "step 0 attempt 1 began",
        "step 2 attempt 1 began",
        "step 1 succeeded",
        "step 2 succeeded",
        "step 3 attempt 1 began",
    ] {
        assert!(
            report.cases().iter().any(|c| c.contains(cut)),
            "no crash after {cut}: {report}"
        );
    }
    assert_eq!(report.cases().last().unwrap(), "ran to its end", "{report}");
}

// ---------------------------------------------------------------------------
// Provision
// ---------------------------------------------------------------------------

/// The provisioning services, and a fresh user name for each run.
struct Provision {
    directory: Directory,
    cloud: Cloud,
    network: Network,
    runs: Cell<u32>,
    /// What the services held when the current run started.
    before: Cell<Resources>,
}

/// What the provisioning services hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Resources {
    users: usize,
    vms: usize,
    ips: usize,
}

impl Provision {
    fn new() -> Self {
        Provision {
            directory: Directory::new(),
            cloud: Cloud::new(),
            // Enough addresses for every committed run of a sweep.
            network: Network::with_addresses(254),
            runs: Cell::new(0),
            before: Cell::new(Resources {
                users: 0,
                vms: 0,
                ips: 0,
            }),
        }
    }

    fn resources(&self) -> Resources {
        Resources {
            users: self.directory.users().len(),
            vms: self.cloud.vms().len(),
            ips: self.network.assigned().len(),
        }
    }

    fn saga(&self) -> ProvisionSaga<'_> {
        self.before.set(self.resources());
        self.runs.set(self.runs.get() + 1);
        // A new name each run: the directory refuses a name that exists.
        let request = Request::new(&format!("user-{}", self.runs.get()), "small");
        ProvisionSaga::new(&self.directory, &self.cloud, &self.network, request)
    }

    /// No VM, IP or user is left unless provisioning committed; if it did,
    /// exactly one of each was made.
    fn nothing_left_unless_committed(&self, run: &RunSummary) -> Result<(), String> {
        let before = self.before.get();
        let want = if run.committed() {
            Resources {
                users: before.users + 1,
                vms: before.vms + 1,
                ips: before.ips + 1,
            }
        } else {
            before
        };
        let now = self.resources();
        if now == want {
            return Ok(());
        }
        Err(format!(
            "{} user(s), {} VM(s) and {} IP(s) exist; expected {}, {} and {}",
            now.users, now.vms, now.ips, want.users, want.vms, want.ips
        ))
    }

    fn test(&self) -> SagaTest<'_, ProvisionSaga<'_>> {
        SagaTest::new(|| self.saga()).invariant(|run| self.nothing_left_unless_committed(run))
    }
}

#[test]
fn provision_failure_sweep() {
    let provision = Provision::new();
    let report = provision
        .test()
        .failure_sweep()
        .unwrap_or_else(|e| panic!("{e}"));
    println!("provision, {report}");
    // A clean run, then 5 steps (the inline `audit` too) × 3 faults.
    assert_eq!(report.runs(), 16, "{report}");
}

#[test]
fn provision_repeat_sweep() {
    let provision = Provision::new();
    let report = provision
        .test()
        .repeat_sweep()
        .unwrap_or_else(|e| panic!("{e}"));
    println!("provision, {report}");
    // Each of 5 steps twice, then `release_ip`, `delete_vm` and `remove_user`
    // twice (`check_reachable` and `audit` are read-only: nothing undoes them).
    assert_eq!(report.runs(), 8, "{report}");
}

// No crash sweep for provision: it is an in-memory example. A durable run stores
// the saga's input and each step's output as JSON, and `Request`, `User`, `Vm`
// and `Machine` are not `Serialize`/`Deserialize`; and its fakes own their state,
// so the executor's resources could not share it with the saga `make` builds.

// ---------------------------------------------------------------------------
// Checkout: a compensatable step, a TCC step and the outbox
// ---------------------------------------------------------------------------

/// The checkout services (handles, shared with a durable executor), and a
/// fresh order id for each run.
struct Checkout {
    payments: Payments,
    warehouse: Warehouse,
    carrier: Carrier,
    runs: Cell<u32>,
    /// What the services held when the current run started.
    before: Cell<Shop>,
}

/// What the checkout services hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shop {
    payments: usize,
    on_shelf: u32,
    shipped: usize,
    held: usize,
    parcels: usize,
}

impl Checkout {
    fn new() -> Self {
        Checkout {
            payments: Payments::new(),
            // Enough lamps for every committed run of a sweep.
            warehouse: Warehouse::with_stock("lamp", 1_000),
            carrier: Carrier::new(),
            runs: Cell::new(0),
            before: Cell::new(Shop {
                payments: 0,
                on_shelf: 0,
                shipped: 0,
                held: 0,
                parcels: 0,
            }),
        }
    }

    fn shop(&self) -> Shop {
        let holds = self.warehouse.holds();
        let count = |state: &str| holds.iter().filter(|(_, _, s)| s == state).count();
        Shop {
            payments: self.payments.kept().len(),
            on_shelf: self.warehouse.left("lamp"),
            shipped: count("shipped"),
            held: count("held"),
            parcels: self.carrier.booked().len(),
        }
    }

    fn saga(&self) -> CheckoutSaga<'_> {
        self.before.set(self.shop());
        self.runs.set(self.runs.get() + 1);
        // A new order each run: the carrier's tracking number is the order's.
        let order = Order::new(&format!("o-{}", self.runs.get()), "lamp", 1, 4_900);
        CheckoutSaga::new(&self.payments, &self.warehouse, &self.carrier, order)
    }

    /// Unless the checkout committed, no payment is kept, no lamp is held,
    /// shipped or missing from the shelf, no parcel is booked, and neither the
    /// audit log nor the customer hears of it; if it did, one of each. No hold
    /// is ever left hanging.
    fn nothing_kept_unless_committed(&self, run: &RunSummary) -> Result<(), String> {
        let before = self.before.get();
        let want = if run.committed() {
            Shop {
                payments: before.payments + 1,
                on_shelf: before.on_shelf - 1,
                shipped: before.shipped + 1,
                held: 0,
                parcels: before.parcels + 1,
            }
        } else {
            Shop { held: 0, ..before }
        };
        let now = self.shop();
        if now != want {
            return Err(format!("the services hold {now:?}; expected {want:?}"));
        }
        let told: Vec<&str> = run
            .messages()
            .iter()
            .map(|m| m.destination.as_str())
            .filter(|d| *d != "payments")
            .collect();
        let want_told: &[&str] = if run.committed() {
            &["audit", "notifications"]
        } else {
            &[]
        };
        if told != want_told {
            return Err(format!("sent to {told:?}; expected {want_told:?}"));
        }
        Ok(())
    }

    fn test(&self) -> SagaTest<'_, CheckoutSaga<'_>> {
        SagaTest::new(|| self.saga()).invariant(|run| self.nothing_kept_unless_committed(run))
    }
}

#[test]
fn checkout_failure_sweep() {
    let checkout = Checkout::new();
    let report = checkout
        .test()
        .failure_sweep()
        .unwrap_or_else(|e| panic!("{e}"));
    println!("checkout, {report}");
    // A clean run, 3 steps × 3 faults (a try that times out or panics may
    // have held the lamp, and its cancel puts it back), then the confirm made
    // to fail 3 times: retried until it succeeds, never turned into a cancel.
    assert_eq!(report.runs(), 11, "{report}");
    for case in [
        "`reserve_stock` made to fail by a timeout",
        "`ship_stock` (confirming `reserve_stock`) made to fail 3 times",
    ] {
        assert!(report.cases().contains(&case.to_owned()), "{report}");
    }
}

#[test]
fn checkout_repeat_sweep() {
    let checkout = Checkout::new();
    let report = checkout
        .test()
        .repeat_sweep()
        .unwrap_or_else(|e| panic!("{e}"));
    println!("checkout, {report}");
    // Each of 3 steps and the confirm twice, then the refund, the cancel with
    // the try's output and the cancel with `None` twice.
    assert_eq!(report.runs(), 7, "{report}");
    assert!(
        report.cases().contains(
            &"`reserve_stock` made to fail, so that `release_stock` runs with `None`, delivered twice"
                .to_owned()
        ),
        "{report}"
    );
}

#[test]
fn checkout_crash_sweep() {
    let checkout = Checkout::new();
    let report = checkout
        .test()
        .crash_sweep(|store| {
            Executor::new(store)
                .resource(checkout.payments.clone())
                .resource(checkout.warehouse.clone())
                .resource(checkout.carrier.clone())
                .register::<CheckoutSaga>()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    println!("checkout, {report}");
    // Killed after each transition: after the decision and before the confirm
    // began, recovery only goes forward and ships the stock.
    for cut in [
        "step 1 attempt 1 began",
        "the saga decided to commit",
        "confirm 1 attempt 1 began",
        "confirm 1 succeeded",
    ] {
        assert!(
            report.cases().iter().any(|c| c.contains(cut)),
            "no crash after {cut}: {report}"
        );
    }
    assert_eq!(report.cases().last().unwrap(), "ran to its end", "{report}");
}
