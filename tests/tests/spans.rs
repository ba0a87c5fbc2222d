//! Every saga, step and compensation is a `tracing` span with its id and name.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sagaflow::{saga, step};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records each new span as `name{field=value ...}`, parent first.
#[derive(Clone, Default)]
struct SpanLog {
    spans: Arc<Mutex<Vec<String>>>,
    next: Arc<AtomicU64>,
}

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push_str(&format!(" {}={}", field.name(), value));
    }
}

impl Subscriber for SpanLog {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Fields(String::new());
        span.record(&mut fields);
        self.spans
            .lock()
            .unwrap()
            .push(format!("{}{}", span.metadata().name(), fields.0));
        Id::from_u64(self.next.fetch_add(1, Ordering::SeqCst) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[derive(Debug)]
struct Nope;

impl fmt::Display for Nope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("nope")
    }
}

#[step(compensate = unlock)]
async fn lock_door(door: u32) -> Result<u32, Nope> {
    Ok(door)
}

async fn unlock(_door: u32, _key: &u32) -> Result<(), Nope> {
    Ok(())
}

#[step(read_only)]
async fn open_door(_key: &u32) -> Result<(), Nope> {
    Err(Nope)
}

#[saga]
async fn enter_house(door: u32) -> Result<(), Nope> {
    let key = lock_door(door).await?;
    open_door(&key).await?;
    Ok(())
}

#[test]
fn saga_step_and_compensation_spans_carry_names_ids_and_attempts() {
    let log = SpanLog::default();
    let spans = log.spans.clone();
    let id = sagaflow::SagaId::from_u128(0xfeed);
    tracing::subscriber::with_default(log, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(sagaflow::Runner::new().run_with_id(EnterHouseSaga::new(4), id))
            .unwrap_err();
    });
    let spans = spans.lock().unwrap();
    assert_eq!(
        *spans,
        [
            "saga saga=enter_house id=0000000000000000000000000000feed",
            "step step=lock_door attempt=1",
            "step step=open_door attempt=1",
            "compensation step=lock_door compensation=unlock attempt=1",
        ]
    );
}
