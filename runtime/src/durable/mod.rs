//! Durable execution: sagas whose input and every transition are persisted
//! before they go on, so that a process that dies mid-saga loses nothing.

mod claim;
mod entry;
mod executor;
mod fingerprint;
pub(crate) mod journal;
mod outbox_rows;
mod outcome;
#[cfg(feature = "postgres")]
mod postgres;
mod replay;
mod resources;
mod rows;
mod saga;
#[cfg(feature = "sqlite")]
mod sqlite;
mod started;
mod store;
mod worker;

pub use executor::Executor;
pub use fingerprint::{fingerprint, fingerprint_branched, fingerprint_grouped};
pub use journal::{Durable, MissingResource, Resources};
pub use outcome::{DurableError, Recovered, RecoveredOutcome, RecoveryReport};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::{PgConfig, PgStore};
pub use saga::DurableSaga;
#[cfg(feature = "sqlite")]
pub use sqlite::{Durability, SqliteStore};
pub use started::{RunResult, Started};
pub use store::{
    Claims, Entry, NewSaga, SagaFilter, SagaRecord, SagaStatus, Store, StoreError, StoredSaga,
};
pub use worker::{Waited, Worker, WorkerConfig, WorkerReport, WorkerShutdown};
