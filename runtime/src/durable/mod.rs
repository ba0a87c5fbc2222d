//! Durable execution: sagas whose input and every transition are persisted
//! before they go on, so that a process that dies mid-saga loses nothing.

mod executor;
pub(crate) mod journal;
mod saga;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

pub use executor::{
    DurableError, Executor, Recovered, RecoveredOutcome, RecoveryReport, Started, fingerprint,
};
pub use journal::{Durable, MissingResource, Resources};
pub use saga::DurableSaga;
#[cfg(feature = "sqlite")]
pub use sqlite::{Durability, SqliteStore};
pub use store::{Claims, Entry, NewSaga, SagaRecord, SagaStatus, Store, StoreError};
