//! The handle of a saga whose input is durable: run it here, or on a task of
//! its own.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use std::sync::Arc;

use super::claim::Claim;
use super::executor::Executor;
use super::journal::Durable;
use super::outcome::Stopped;
use super::saga::DurableSaga;
use super::store::{Store, StoreError};
use crate::hooks::{Hooks, NoHooks};
use crate::{SagaError, SagaId};

/// A saga whose input is durable, not yet run. Await [`outcome`](Started::outcome)
/// to run it; drop it to leave it to [`Executor::recover`].
///
/// It owns a clone of its executor, so it can be kept in a request's task or
/// moved into a spawned one: `tokio::spawn(started.outcome())` works when the
/// saga's own references are `'static`, and [`spawn`](Started::spawn) works
/// whatever they are.
pub struct Started<S, St: Store, H = NoHooks> {
    executor: Executor<St, H>,
    saga: Option<S>,
    /// Held by the handle, by the run and by each of its writes, and let go of
    /// when the last of them ends.
    claim: Arc<Claim<St>>,
}

impl<S, St: Store, H> Started<S, St, H> {
    /// The handle of `saga`, created in the store under `claim`.
    pub(crate) fn new(executor: Executor<St, H>, saga: S, claim: Arc<Claim<St>>) -> Self {
        Started {
            executor,
            saga: Some(saga),
            claim,
        }
    }
}

impl<S, St: Store, H> fmt::Debug for Started<S, St, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Started")
            .field("id", &self.claim.id())
            .finish()
    }
}

impl<S, St, H> Started<S, St, H>
where
    S: DurableSaga<Durable<St>>,
    St: Store + Clone,
    H: Hooks + Send + Sync + 'static,
{
    /// The saga's id: stable across restarts, the root of its idempotency keys.
    pub fn id(&self) -> SagaId {
        self.claim.id()
    }

    /// Runs the saga to its end, with the references given to its `new`. The
    /// outer `Err` is a store failure, after which the saga stopped where it
    /// was and stays in the store for recovery.
    ///
    /// # Cancellation
    ///
    /// Dropping this future (a `tokio::time::timeout`, a request handler whose
    /// client went away) stops the saga where it is, and never makes anything
    /// run twice: the saga stays claimed by this executor until the last write
    /// it had handed to the store is durable (or failed), so a
    /// [`recover`](Executor::recover) meanwhile leaves it alone, and the next
    /// one after resumes it from all it wrote. What recovery runs again is only
    /// what any crash may run again: an attempt whose intent was written and
    /// whose outcome was not, with the same idempotency key.
    pub async fn outcome(mut self) -> RunResult<S> {
        let Some(saga) = self.saga.take() else {
            return Err(StoreError::new("this saga was already run"));
        };
        let (result, stopped) = self
            .executor
            .drive(saga, Arc::clone(&self.claim), &[])
            .await;
        match stopped {
            Some(Stopped::Halted(error)) => Err(error),
            // Nothing is replayed on a first run, so nothing can be refused.
            Some(Stopped::Refused(reason)) => Err(StoreError::new(reason)),
            None => Ok(result),
        }
    }

    /// Runs the saga to its end on a task of its own, as
    /// [`outcome`](Started::outcome) would, and returns the task's handle.
    ///
    /// The task does not borrow what the saga was built with: it rebuilds the
    /// saga from its stored input and the executor's registered resources, as
    /// recovery does, so the references given to `new` need not outlive this
    /// call. Dropping the handle does not stop the saga (tokio's `JoinHandle`).
    /// Must be called within a tokio runtime.
    pub fn spawn(mut self) -> tokio::task::JoinHandle<RunResult<S>>
    where
        S::Output: Send + 'static,
        S::Error: Send + 'static,
    {
        // Only the input is needed; the saga's borrowed references go here.
        let input = self.saga.take().map(|saga| saga.__sagaflow_encode_input());
        let run = run_rebuilt::<S, St, H>(self.executor.clone(), Arc::clone(&self.claim), input);
        tokio::spawn(run)
    }
}

/// What running a saga durably answers: the outer `Err` is a store failure.
pub type RunResult<S> =
    Result<Result<<S as crate::Saga>::Output, SagaError<<S as crate::Saga>::Error>>, StoreError>;

/// The run of [`Started::spawn`], owning everything it reads.
fn run_rebuilt<S, St, H>(
    executor: Executor<St, H>,
    claim: Arc<Claim<St>>,
    input: Option<Result<Vec<u8>, String>>,
) -> Pin<Box<dyn Future<Output = RunResult<S>> + Send>>
where
    S: DurableSaga<Durable<St>>,
    S::Output: Send + 'static,
    S::Error: Send + 'static,
    St: Store + Clone,
    H: Hooks + Send + Sync + 'static,
{
    Box::pin(async move {
        let id = claim.id();
        let input = match input {
            None => return Err(StoreError::new("this saga was already run")),
            Some(input) => input.map_err(|e| {
                StoreError::new(format!("saga {id} (`{}`): its input: {e}", S::NAME))
            })?,
        };
        let saga = S::__sagaflow_rebuild(executor.resources(), &input).map_err(|e| {
            StoreError::new(format!(
                "saga {id} (`{}`) cannot be rebuilt from its input and the executor's \
                 resources: {e}; it stays in the store for recovery",
                S::NAME
            ))
        })?;
        let (result, stopped) = executor.drive(saga, claim, &[]).await;
        match stopped {
            Some(Stopped::Halted(error)) => Err(error),
            Some(Stopped::Refused(reason)) => Err(StoreError::new(reason)),
            None => Ok(result),
        }
    })
}
