//! Durable execution: sagas whose input and every transition are persisted
//! before they go on, so that a process that dies mid-saga loses nothing.

#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

#[cfg(feature = "sqlite")]
pub use sqlite::{Durability, SqliteStore};
pub use store::{Entry, NewSaga, SagaRecord, SagaStatus, Store, StoreError};
