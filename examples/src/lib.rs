//! Runnable sagas modelled on real uses, each a library module with in-memory
//! fake services (so that tests can look at what happened) and a binary that
//! tells the story:
//!
//! - [`travel`]: debit the customer, book the flight, book the hotel, e-mail the
//!   itinerary; a hotel with no rooms undoes the flight and refunds the customer.
//!   `cargo run -p sagaflow-examples --bin travel`; with `-- --durable travel.db
//!   --crash-after Airline::book_flight`, a durable run that crashes on purpose and, run
//!   again without the flag, recovers (see the binary's documentation).
//! - [`provision`]: create a user, a VM for it and an IP address for the VM, then
//!   check that the machine answers, with per-step timeouts and retries, and
//!   hooks that print a summary. `cargo run -p sagaflow-examples --bin provision`
//! - [`checkout`]: take a payment, hold the stock (a try-confirm-cancel step,
//!   whose warehouse guards each phase with `sagaflow::barrier::SqliteBarrier`
//!   in its own database), book a shipment, and ship the held stock once the
//!   saga commits; the audit event and the customer's notice leave through the
//!   outbox with the commit, and only if it happens. `cargo run -p
//!   sagaflow-examples --bin checkout` (durable, with a relay that prints;
//!   `-- --memory`; `-- --redis URL` with the `redis` feature).
//!
//! and three helpers: [`ledger`], the file in which the fake services write what
//! they do in the durable mode, so that it outlives the process; [`crash`], a
//! store that kills the process at a chosen write; and [`words`], lists of names
//! as the binaries print them.
#![warn(missing_docs)]

pub mod checkout;
pub mod crash;
pub mod ledger;
pub mod provision;
pub mod travel;
pub mod words;
