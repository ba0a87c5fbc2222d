//! A run's hold on a saga id, and the rule that keeps it sound under
//! cancellation: the hold outlives every write made under it.
//!
//! An executor claims a saga's id before it runs the saga, and recovery leaves
//! a claimed saga alone. If the claim ended when the run's future was dropped
//! (a `tokio::time::timeout`, a request handler whose client went away), a write
//! the run had already handed to the store could still commit afterwards:
//! recovery, reading the journal in between, would miss it and run the step, or
//! the whole end of a finished saga, again. So every write of a durable run goes
//! through [`TrackedWrite`], which holds a share of the claim until the store
//! answers; a write whose future is dropped midway is finished by a task of its
//! own, still holding that share. The claim ends when its last share is gone:
//! after the run's handle and every write it made.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::{Arc, Mutex, MutexGuard};

use super::store::{Claims, Running, Store, StoreError};
use crate::SagaId;

/// A saga id held by a run of an executor over store `St`: in the store's
/// [`Claims`] from its making until its last share is dropped, so that no other
/// run over the same claims takes the saga up meanwhile; then let go of, in the
/// claims and in the store ([`Store::release`]), however the run ended.
pub(crate) struct Claim<St: Store> {
    claims: Claims,
    store: St,
    id: SagaId,
}

impl<St: Store> Claim<St> {
    /// Claims `id`, which nothing else can hold yet (a new id).
    pub(crate) fn new(claims: &Claims, store: St, id: SagaId) -> Arc<Self> {
        lock(claims.set()).ids.insert(id);
        Arc::new(Claim {
            claims: claims.clone(),
            store,
            id,
        })
    }

    /// Claims `id`, or `None` if a run over the same claims holds it.
    pub(crate) fn try_new(claims: &Claims, store: St, id: SagaId) -> Option<Arc<Self>> {
        let claimed = lock(claims.set()).ids.insert(id);
        // Not `then_some`: a `Claim` made and dropped would let go of the id.
        claimed.then(|| {
            Arc::new(Claim {
                claims: claims.clone(),
                store,
                id,
            })
        })
    }

    /// The id held.
    pub(crate) fn id(&self) -> SagaId {
        self.id
    }
}

impl<St: Store> Drop for Claim<St> {
    fn drop(&mut self) {
        // The store first: a leasing store gives up its lease, and only then may
        // another run in this process claim the id (and lease it anew).
        self.store.release(self.id);
        let mut running = lock(self.claims.set());
        running.ids.remove(&self.id);
        running.released = running.released.wrapping_add(1);
    }
}

pub(crate) fn lock(running: &Mutex<Running>) -> MutexGuard<'_, Running> {
    // Plain ids and a count, each updated in one step: a panic elsewhere cannot
    // leave them half-updated.
    running
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

type WriteFuture = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// A write of a durable run, holding a share of the run's claim until the
/// store has answered it.
///
/// Dropped before it completes but after it was first polled (the store may
/// have the write in hand), it moves the rest of the write into a task of its
/// own on the current tokio runtime, which keeps the claim's share until the
/// store answers. A write never polled was never seen by the store: it is
/// dropped with nothing to wait for.
pub(crate) struct TrackedWrite<St: Store> {
    write: Option<WriteFuture>,
    claim: Option<Arc<Claim<St>>>,
    polled: bool,
}

impl<St: Store> TrackedWrite<St> {
    pub(crate) fn new<F>(claim: &Arc<Claim<St>>, write: F) -> Self
    where
        F: Future<Output = Result<(), StoreError>> + Send + 'static,
    {
        TrackedWrite {
            write: Some(Box::pin(write)),
            claim: Some(Arc::clone(claim)),
            polled: false,
        }
    }
}

impl<St: Store> Future for TrackedWrite<St> {
    type Output = Result<(), StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(write) = this.write.as_mut() else {
            return Poll::Ready(Err(StoreError::new(
                "a durable write was polled after it completed",
            )));
        };
        this.polled = true;
        let answer = write.as_mut().poll(cx);
        if answer.is_ready() {
            this.write = None;
            this.claim = None;
        }
        answer
    }
}

impl<St: Store> Drop for TrackedWrite<St> {
    fn drop(&mut self) {
        let (Some(write), Some(claim)) = (self.write.take(), self.claim.take()) else {
            return;
        };
        if !self.polled {
            return;
        }
        let held = HeldUntilAnswered(Some(claim));
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    // The answer has nobody to go to: the run that asked is gone,
                    // and recovery reads what the store holds.
                    let _ = write.await;
                    held.answered();
                });
            }
            // No runtime to finish the write on: the store may still commit it,
            // and nothing here will learn when. The claim stays (see below).
            Err(_) => drop(held),
        }
    }
}

/// A claim's share kept by a write whose run is gone. Let go of once the store
/// answered; if it is dropped before that (its task was dropped with the
/// runtime, or there was no runtime), nobody can know whether the write will
/// still commit, so the id stays claimed for the rest of the process: recovery
/// in this process leaves the saga alone, and the next process takes it up from
/// what the store holds.
struct HeldUntilAnswered<St: Store>(Option<Arc<Claim<St>>>);

impl<St: Store> HeldUntilAnswered<St> {
    fn answered(mut self) {
        self.0 = None;
    }
}

impl<St: Store> Drop for HeldUntilAnswered<St> {
    fn drop(&mut self) {
        if let Some(claim) = self.0.take() {
            core::mem::forget(claim);
        }
    }
}
