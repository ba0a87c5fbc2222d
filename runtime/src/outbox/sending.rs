//! The sending side of the outbox, inside a saga run: what a step sends with
//! [`StepContext::send`], and what the body sends with `sagaflow::send!`, held
//! until the transition that makes them durable (or, in memory, until the
//! runner's sink has them).

use core::cell::Cell;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{Message, SendError, Sink, SinkError};
use crate::context::{Phase, SagaId, StepContext};

/// A message sent by a step (or compensation) that has not ended yet.
struct Tagged {
    index: u32,
    phase: Phase,
    destination: String,
    key: Option<String>,
    payload: Vec<u8>,
    created_ms: u64,
}

/// What one run has sent and not yet committed. Shared between the run and the
/// thread-local that [`StepContext::send`] reads while the saga is polled.
pub(crate) struct Outgoing {
    saga: &'static str,
    saga_id: SagaId,
    /// In memory, where messages go: the runner's sink. `None` in a durable
    /// run, whose messages join its commits.
    sink: Option<Arc<dyn DynSink>>,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    /// Sent by steps and compensations still running.
    steps: Vec<Tagged>,
    /// Sent by the body, for its commit.
    body: Vec<Message>,
    /// Why one of the body's messages could not be made.
    body_error: Option<String>,
    /// The body's messages, made ready for the final commit of a durable run.
    commit: Vec<Message>,
}

thread_local! {
    // Set only while a saga that may send is polled (see `WithOutgoing`).
    static OUTGOING: Cell<*const Outgoing> = const { Cell::new(core::ptr::null()) };
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn lock(held: &Mutex<Held>) -> std::sync::MutexGuard<'_, Held> {
    // Nothing that holds the lock can panic halfway through a change.
    held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Outgoing {
    pub(crate) fn new(
        saga: &'static str,
        saga_id: SagaId,
        sink: Option<Arc<dyn DynSink>>,
    ) -> Arc<Self> {
        Arc::new(Outgoing {
            saga,
            saga_id,
            sink,
            held: Mutex::new(Held::default()),
        })
    }

    /// In memory, the runner's sink.
    pub(crate) fn sink(&self) -> Option<&dyn DynSink> {
        self.sink.as_deref()
    }

    /// Keeps the body's messages for the final commit.
    pub(crate) fn keep_for_commit(&self, messages: Vec<Message>) {
        lock(&self.held).commit = messages;
    }

    /// The body's messages kept for the final commit.
    pub(crate) fn take_commit(&self) -> Vec<Message> {
        core::mem::take(&mut lock(&self.held).commit)
    }

    /// Forgets what an attempt of step (or compensation) `index` sent: it is
    /// about to be tried again, and only the messages of the attempt that
    /// succeeds go out.
    pub(crate) fn discard(&self, index: u32, phase: Phase) {
        lock(&self.held)
            .steps
            .retain(|t| (t.index, t.phase) != (index, phase));
    }

    /// Takes what step (or compensation) `index` sent, as messages with their
    /// stable ids, for the transition that ends it.
    pub(crate) fn take(&self, index: u32, phase: Phase) -> Vec<Message> {
        let mut held = lock(&self.held);
        if held.steps.is_empty() {
            return Vec::new();
        }
        let origin = match phase {
            Phase::Forward => 's',
            Phase::Compensation | Phase::Cancel => 'u',
            Phase::Confirm => 'c',
        };
        let mut taken = Vec::new();
        let mut kept = Vec::new();
        for tagged in held.steps.drain(..) {
            if (tagged.index, tagged.phase) == (index, phase) {
                taken.push(tagged);
            } else {
                kept.push(tagged);
            }
        }
        held.steps = kept;
        taken
            .into_iter()
            .enumerate()
            .map(|(n, t)| Message {
                id: format!("{}-{origin}{index}-{n}", self.saga_id),
                destination: t.destination,
                key: t.key,
                payload: t.payload,
                created_ms: t.created_ms,
            })
            .collect()
    }

    /// Adds a message of the body, for the saga's commit.
    pub(crate) fn send_at_commit<T: Serialize + ?Sized>(
        &self,
        destination: &str,
        key: Option<String>,
        message: &T,
    ) {
        let mut held = lock(&self.held);
        match serde_json::to_vec(message) {
            Ok(payload) => {
                let n = held.body.len();
                held.body.push(Message {
                    id: format!("{}-end-{n}", self.saga_id),
                    destination: destination.to_owned(),
                    key,
                    payload,
                    created_ms: now_ms(),
                });
            }
            Err(e) => {
                let text = format!(
                    "saga `{}`: its message to `{destination}` (`sagaflow::send!`) cannot be \
                     serialized: {e}",
                    self.saga
                );
                held.body_error.get_or_insert(text);
            }
        }
    }

    /// The body's messages for the commit, or why one of them could not be made.
    pub(crate) fn take_body(&self) -> Result<Vec<Message>, String> {
        let mut held = lock(&self.held);
        if let Some(error) = held.body_error.take() {
            held.body.clear();
            return Err(error);
        }
        Ok(core::mem::take(&mut held.body))
    }

    fn push(&self, cx: &StepContext, destination: &str, key: Option<String>, payload: Vec<u8>) {
        lock(&self.held).steps.push(Tagged {
            index: cx.index,
            // A cancel's messages go out with its success, as a compensation's.
            phase: match cx.phase {
                Phase::Cancel => Phase::Compensation,
                phase => phase,
            },
            destination: destination.to_owned(),
            key,
            payload,
            created_ms: now_ms(),
        });
    }
}

/// Sends from the step (or compensation) whose future is being polled.
pub(crate) fn send_from_step<T: Serialize + ?Sized>(
    destination: &str,
    key: Option<String>,
    message: &T,
) -> Result<(), SendError> {
    let cx = StepContext::current().ok_or(SendError::NotInStep)?;
    if cx.phase == Phase::Confirm {
        return Err(SendError::InConfirm { step: cx.step });
    }
    let outgoing = OUTGOING.with(Cell::get);
    // SAFETY: non-null only while `WithOutgoing::poll` runs on this thread,
    // which keeps the `Arc` it points into alive for that whole time.
    let Some(outgoing) = (unsafe { outgoing.as_ref() }) else {
        return Err(SendError::NoOutbox { saga: cx.saga });
    };
    let payload = serde_json::to_vec(message).map_err(|e| SendError::Serialize {
        destination: destination.to_owned(),
        error: e.to_string(),
    })?;
    outgoing.push(&cx, destination, key, payload);
    Ok(())
}

pin_project_lite::pin_project! {
    /// Polls a saga's future with its run's outgoing messages reachable from
    /// [`StepContext::send`].
    pub(crate) struct WithOutgoing<F> {
        #[pin]
        future: F,
        outgoing: Option<Arc<Outgoing>>,
    }
}

impl<F> WithOutgoing<F> {
    pub(crate) fn new(future: F, outgoing: Option<Arc<Outgoing>>) -> Self {
        WithOutgoing { future, outgoing }
    }
}

impl<F: Future> Future for WithOutgoing<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Some(outgoing) = this.outgoing.as_ref() else {
            return this.future.poll(task);
        };
        struct Restore(*const Outgoing);
        impl Drop for Restore {
            fn drop(&mut self) {
                OUTGOING.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(OUTGOING.with(|c| c.replace(Arc::as_ptr(outgoing))));
        this.future.poll(task)
    }
}

/// A sink that keeps every message, for the test kit's in-memory sweeps.
#[cfg(feature = "testing")]
#[derive(Default, Clone)]
pub(crate) struct Kept(Arc<Mutex<Vec<Message>>>);

#[cfg(feature = "testing")]
impl Kept {
    pub(crate) fn take(&self) -> Vec<Message> {
        core::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(feature = "testing")]
impl Sink for Kept {
    async fn deliver(&self, messages: &[Message]) -> Result<(), SinkError> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(messages);
        Ok(())
    }
}

/// [`Sink`] behind a pointer, for a runner that holds any sink.
pub(crate) trait DynSink: Send + Sync {
    fn deliver_boxed<'a>(
        &'a self,
        messages: &'a [Message],
    ) -> Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>>;
}

impl<K: Sink> DynSink for K {
    fn deliver_boxed<'a>(
        &'a self,
        messages: &'a [Message],
    ) -> Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>> {
        Box::pin(self.deliver(messages))
    }
}
