//! The guide: sagaflow from setup to durable execution and testing, one page per
//! topic, each with examples that are compiled and run as doctests.
//!
//! 1. [Setup](setup): the dependencies, tokio, and the features.
//! 2. [Your first saga](first_saga): four steps, their compensations, one saga.
//! 3. [Declaring steps](steps): the kinds, the options (retry, timeout,
//!    compensation policies), the step context and idempotency keys.
//! 4. [The saga body](body): what a body may hold, how arguments are evaluated,
//!    resources and data, and what `#[saga]` generates.
//! 5. [Running, failing and errors](errors): compensation order, `SagaError`,
//!    reports, hooks and spans, and what fails to compile.
//! 6. [Durable execution](durability): the executor, the SQLite store, recovery
//!    and what is guaranteed.
//! 7. [Testing your sagas](testing): the test kit's failure, repeat and crash
//!    sweeps (the `testing` feature).
//! 8. [Saga graphs](graphs): the pictures in rustdoc, and as Mermaid, DOT and SVG.
//! 9. [Concurrent steps](concurrent): `sagaflow::join!`, steps that run at once,
//!    and how they are undone.
//! 10. [The transactional outbox](outbox): messages sent with the saga's
//!     transitions, all or none, and relayed to a broker.
//! 11. [Branches](branches): `if` and `match` over saga data, the arm taken
//!     recorded and followed on recovery, and undone along the path taken.
//! 12. [Try-confirm-cancel steps](tcc): reservations confirmed once the saga
//!     decides to commit, cancelled on rollback.
//!
//! The pages hold no items: they are documentation only.

#[doc = include_str!("setup.md")]
pub mod setup {}

#[doc = include_str!("first_saga.md")]
pub mod first_saga {}

#[doc = include_str!("steps.md")]
pub mod steps {}

#[doc = include_str!("body.md")]
pub mod body {}

#[doc = include_str!("errors.md")]
pub mod errors {}

#[doc = include_str!("durability.md")]
pub mod durability {}

// Without the `testing` feature the page says how to get it: its example uses
// `sagaflow::testing`, which then does not exist.
#[cfg_attr(feature = "testing", doc = include_str!("testing.md"))]
#[cfg_attr(
    not(feature = "testing"),
    doc = "# Testing your sagas\n\nThis page, and the test kit it describes, need the `testing` feature: \
           `sagaflow = { version = \"0.1\", features = [\"testing\"] }` under `[dev-dependencies]`."
)]
pub mod testing {}

#[doc = include_str!("graphs.md")]
pub mod graphs {}

#[doc = include_str!("concurrent.md")]
pub mod concurrent {}

#[doc = include_str!("outbox.md")]
pub mod outbox {}

#[doc = include_str!("branches.md")]
pub mod branches {}
#[doc = include_str!("tcc.md")]
pub mod tcc {}
