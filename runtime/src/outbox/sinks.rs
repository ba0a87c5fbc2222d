//! Two sinks that need no broker: one that prints, for examples, and one that
//! keeps what it got, for tests.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use super::{Message, Sink, SinkError};

/// Prints each message to standard output, one line each:
/// `<destination> <id> [key=<key>] <payload>`. For examples and trying things
/// out; it acknowledges once the line is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrintSink;

impl PrintSink {
    /// The line printed for `message`.
    ///
    /// ```
    /// # use sagaflow::outbox::{Message, PrintSink};
    /// let message = Message {
    ///     id: "m-1".into(),
    ///     destination: "audit".into(),
    ///     key: Some("order-7".into()),
    ///     payload: br#"{"paid":12}"#.to_vec(),
    ///     created_ms: 0,
    /// };
    /// assert_eq!(PrintSink::line(&message), r#"audit m-1 key=order-7 {"paid":12}"#);
    /// ```
    pub fn line(message: &Message) -> String {
        let payload = String::from_utf8_lossy(&message.payload);
        match &message.key {
            Some(key) => format!("{} {} key={key} {payload}", message.destination, message.id),
            None => format!("{} {} {payload}", message.destination, message.id),
        }
    }
}

impl Sink for PrintSink {
    async fn deliver(&self, messages: &[Message]) -> Result<(), SinkError> {
        let mut out = std::io::stdout().lock();
        for message in messages {
            writeln!(out, "{}", Self::line(message))
                .map_err(|e| SinkError::new(format!("printing to standard output failed: {e}")))?;
        }
        out.flush()
            .map_err(|e| SinkError::new(format!("printing to standard output failed: {e}")))
    }
}

/// Keeps every message it is given, in order, behind a mutex: for tests, and
/// for sagas run in memory. Clones share the same messages.
///
/// ```
/// # use sagaflow::outbox::{Message, MemorySink, Sink};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sink = MemorySink::new();
/// let message = Message {
///     id: "m-1".into(),
///     destination: "audit".into(),
///     key: None,
///     payload: b"{}".to_vec(),
///     created_ms: 0,
/// };
/// sink.clone().deliver(&[message.clone()]).await.unwrap();
/// assert_eq!(sink.messages(), vec![message]);
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    messages: Arc<Mutex<Vec<Message>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        MemorySink::default()
    }

    /// Every message delivered so far, in the order delivered.
    pub fn messages(&self) -> Vec<Message> {
        self.lock().clone()
    }

    /// How many messages were delivered so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing was delivered yet.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Takes the messages delivered so far, leaving it empty.
    pub fn take(&self) -> Vec<Message> {
        std::mem::take(&mut *self.lock())
    }

    /// Keeps `messages` at once (the same as an awaited `deliver`, for a
    /// caller that is not async).
    pub fn push(&self, messages: &[Message]) {
        self.lock().extend_from_slice(messages);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Message>> {
        // A panic while the lock was held cannot leave the Vec half-written:
        // every change is one `extend` or `take`.
        self.messages.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Sink for MemorySink {
    async fn deliver(&self, messages: &[Message]) -> Result<(), SinkError> {
        self.push(messages);
        Ok(())
    }
}
