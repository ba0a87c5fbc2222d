//! A sink that records each call, can take its time, and fails on request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sagaflow::outbox::{Message, Sink, SinkError};

#[derive(Clone, Default)]
pub struct TestSink {
    calls: Arc<Mutex<Vec<Vec<Message>>>>,
    /// Failures left per destination (`u32::MAX`: always).
    failing: Arc<Mutex<HashMap<String, u32>>>,
    /// A destination whose delivery never answers.
    pub hanging: Arc<Mutex<Option<String>>>,
    delay: Duration,
    in_flight: Arc<AtomicUsize>,
    pub max_in_flight: Arc<AtomicUsize>,
}

impl TestSink {
    pub fn slow(delay: Duration) -> Self {
        TestSink {
            delay,
            ..TestSink::default()
        }
    }

    pub fn fail(&self, destination: &str, times: u32) {
        self.failing
            .lock()
            .unwrap()
            .insert(destination.to_owned(), times);
    }

    pub fn calls(&self) -> Vec<Vec<Message>> {
        self.calls.lock().unwrap().clone()
    }

    /// The ids of each call that succeeded.
    pub fn delivered_ids(&self) -> Vec<String> {
        self.calls().into_iter().flatten().map(|m| m.id).collect()
    }
}

impl Sink for TestSink {
    async fn deliver(&self, messages: &[Message]) -> Result<(), SinkError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let hanging = self.hanging.lock().unwrap().clone();
        if messages
            .iter()
            .any(|m| Some(&m.destination) == hanging.as_ref())
        {
            std::future::pending::<()>().await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mut failing = self.failing.lock().unwrap();
        for message in messages {
            if let Some(left) = failing.get_mut(&message.destination)
                && *left > 0
            {
                if *left != u32::MAX {
                    *left -= 1;
                }
                return Err(SinkError::new(format!(
                    "test sink: `{}` is down",
                    message.destination
                )));
            }
        }
        self.calls.lock().unwrap().push(messages.to_vec());
        Ok(())
    }
}
