//! Runnable sagas modelled on real uses, each a library module with in-memory
//! fake services (so that tests can look at what happened) and a binary that
//! tells the story:
//!
//! - [`travel`]: debit the customer, book the flight, book the hotel, e-mail the
//!   itinerary; a hotel with no rooms undoes the flight and refunds the customer.
//!   `cargo run -p sagaflow-examples --bin travel`
//! - [`provision`]: create a user, a VM for it and an IP address for the VM, with
//!   per-step timeouts and retries, and hooks that print a summary.
//!   `cargo run -p sagaflow-examples --bin provision`
#![warn(missing_docs)]

pub mod provision;
pub mod travel;
