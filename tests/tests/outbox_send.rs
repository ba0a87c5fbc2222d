//! Sending through the outbox from a saga: what a step sends leaves with the
//! step's outcome, what the body sends leaves with the commit and only then, in
//! memory (to the runner's sink) and durably (in the journal's commits).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use sagaflow::durable::{Durability, Entry, Executor, SagaStatus, SqliteStore, Store};
use sagaflow::outbox::{Message, SendError, Sink, SinkError};
use sagaflow::{Runner, SagaError, StepContext, StepFailure, saga, step};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Order {
    id: u32,
    total: u64,
}

#[derive(Debug)]
enum ShopError {
    Declined,
    Outbox(SendError),
}

impl From<SendError> for ShopError {
    fn from(e: SendError) -> Self {
        ShopError::Outbox(e)
    }
}

impl std::fmt::Display for ShopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShopError::Declined => f.write_str("card declined"),
            ShopError::Outbox(e) => write!(f, "outbox: {e}"),
        }
    }
}

/// The shop's knobs: how many charge attempts fail, whether shipping fails.
#[derive(Default)]
struct Shop {
    charge_failures: AtomicU32,
    ship_fails: AtomicU32,
}

#[step(compensate = refund, retry(max = 3, backoff = "1ms"))]
async fn charge(shop: &Shop, order: &Order) -> Result<u64, ShopError> {
    let attempt = StepContext::current().map(|c| c.attempt()).unwrap_or(0);
    StepContext::send(
        "payments",
        &format!("charging {} (attempt {attempt})", order.id),
    )?;
    if shop.charge_failures.load(Ordering::SeqCst) >= attempt {
        return Err(ShopError::Declined);
    }
    StepContext::send_keyed("payments", order.id, &format!("charged {}", order.total))?;
    Ok(order.total)
}

async fn refund(_shop: &Shop, order: &Order, paid: &u64) -> Result<(), ShopError> {
    StepContext::send("payments", &format!("refunded {paid} for {}", order.id))?;
    Ok(())
}

#[step(pivot)]
async fn ship(shop: &Shop, order: &Order) -> Result<String, ShopError> {
    if shop.ship_fails.load(Ordering::SeqCst) > 0 {
        return Err(ShopError::Declined);
    }
    Ok(format!("parcel-{}", order.id))
}

#[derive(Serialize)]
struct Audit<'a> {
    order: u32,
    parcel: &'a str,
}

#[saga]
async fn checkout(shop: &Shop, order: Order) -> Result<String, ShopError> {
    let paid = charge(shop, &order).await?;
    sagaflow::send!(
        "audit",
        &Audit {
            order: order.id,
            parcel: "none yet"
        }
    );
    let parcel = ship(shop, &order).await?;
    sagaflow::send!(
        "notifications",
        key = order.id,
        &format!("{} paid {paid}, {parcel}", order.id)
    );
    Ok(parcel)
}

/// Keeps what it is given; refuses everything once told to.
#[derive(Clone, Default)]
struct Collect {
    got: Arc<Mutex<Vec<Message>>>,
    refuse: Arc<AtomicU32>,
}

impl Sink for Collect {
    async fn deliver(&self, messages: &[Message]) -> Result<(), SinkError> {
        if self.refuse.load(Ordering::SeqCst) > 0 {
            return Err(SinkError::new("collect: refusing on purpose"));
        }
        self.got.lock().unwrap().extend_from_slice(messages);
        Ok(())
    }
}

impl Collect {
    fn texts(&self) -> Vec<(String, String, Option<String>)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|m| {
                let text: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
                let text = match text {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (m.destination.clone(), text, m.key.clone())
            })
            .collect()
    }
}

fn order() -> Order {
    Order { id: 42, total: 300 }
}

#[tokio::test]
async fn in_memory_a_committed_saga_hands_over_step_messages_then_the_body_messages() {
    let shop = Shop::default();
    let sink = Collect::default();
    let runner = Runner::new().with_sink(sink.clone());
    let parcel = runner.run(CheckoutSaga::new(&shop, order())).await.unwrap();
    assert_eq!(parcel, "parcel-42");
    assert_eq!(
        sink.texts(),
        [
            ("payments".into(), "charging 42 (attempt 1)".into(), None),
            ("payments".into(), "charged 300".into(), Some("42".into())),
            (
                "audit".into(),
                r#"{"order":42,"parcel":"none yet"}"#.into(),
                None
            ),
            (
                "notifications".into(),
                "42 paid 300, parcel-42".into(),
                Some("42".into())
            ),
        ]
    );
    let ids: Vec<String> = sink
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.id.clone())
        .collect();
    assert!(
        ids[0].ends_with("-s0-0") && ids[1].ends_with("-s0-1"),
        "{ids:?}"
    );
    assert!(
        ids[2].ends_with("-end-0") && ids[3].ends_with("-end-1"),
        "{ids:?}"
    );
}

#[tokio::test]
async fn only_the_attempt_that_succeeds_sends() {
    let shop = Shop::default();
    shop.charge_failures.store(2, Ordering::SeqCst);
    let sink = Collect::default();
    Runner::new()
        .with_sink(sink.clone())
        .run(CheckoutSaga::new(&shop, order()))
        .await
        .unwrap();
    let texts: Vec<String> = sink.texts().into_iter().map(|t| t.1).collect();
    assert_eq!(texts[0], "charging 42 (attempt 3)");
    assert_eq!(texts[1], "charged 300");
    assert_eq!(texts.len(), 4);
}

#[tokio::test]
async fn a_compensated_saga_sends_none_of_its_body_messages_but_its_steps_and_compensations_do() {
    let shop = Shop::default();
    shop.ship_fails.store(1, Ordering::SeqCst);
    let sink = Collect::default();
    let err = Runner::new()
        .with_sink(sink.clone())
        .run(CheckoutSaga::new(&shop, order()))
        .await
        .unwrap_err();
    assert!(err.is_compensated());
    assert_eq!(err.failed_step(), "ship");
    let texts: Vec<(String, String)> = sink.texts().into_iter().map(|t| (t.0, t.1)).collect();
    assert_eq!(
        texts,
        [
            ("payments".to_owned(), "charging 42 (attempt 1)".to_owned()),
            ("payments".to_owned(), "charged 300".to_owned()),
            ("payments".to_owned(), "refunded 300 for 42".to_owned()),
        ]
    );
    let refund_id = sink.got.lock().unwrap()[2].id.clone();
    assert!(refund_id.ends_with("-u0-0"), "{refund_id}");
}

#[tokio::test]
async fn without_a_sink_a_saga_whose_body_sends_fails_before_its_first_step() {
    let shop = Shop::default();
    let err = checkout(&shop, order()).await.unwrap_err();
    assert!(err.is_compensated());
    assert_eq!(err.failed_step(), "sagaflow::send!");
    assert!(err.undone().is_empty());
    let text = err.to_string();
    assert!(
        text.contains("runs in memory without a sink") && text.contains("Runner::with_sink"),
        "{text}"
    );
}

#[step(read_only)]
async fn notify(order: &Order) -> Result<(), ShopError> {
    StepContext::send("notifications", &order.id)?;
    Ok(())
}

#[saga]
async fn just_notify(order: Order) -> Result<(), ShopError> {
    notify(&order).await?;
    Ok(())
}

#[tokio::test]
async fn without_a_sink_a_step_that_sends_gets_an_error_that_says_why() {
    let err = just_notify(order()).await.unwrap_err();
    match err.failure() {
        StepFailure::Error(ShopError::Outbox(SendError::NoOutbox { saga })) => {
            assert_eq!(*saga, "just_notify")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn outside_a_step_sending_is_an_error() {
    assert_eq!(StepContext::send("x", &1), Err(SendError::NotInStep));
}

#[tokio::test]
async fn a_sink_that_refuses_the_body_messages_compensates_every_step() {
    let shop = Shop::default();
    let sink = Collect::default();
    let refuse = sink.refuse.clone();
    // Refuses only once the steps' messages are in: the charge step's two go
    // through, then the sink stops taking anything.
    struct RefuseAfter(Collect, usize);
    impl Sink for RefuseAfter {
        async fn deliver(&self, messages: &[Message]) -> Result<(), SinkError> {
            if self.0.got.lock().unwrap().len() >= self.1 {
                self.0.refuse.store(1, Ordering::SeqCst);
            }
            self.0.deliver(messages).await
        }
    }
    let err = Runner::new()
        .with_sink(RefuseAfter(sink.clone(), 2))
        .run(CheckoutSaga::new(&shop, order()))
        .await
        .unwrap_err();
    assert!(refuse.load(Ordering::SeqCst) > 0);
    assert_eq!(err.failed_step(), "sagaflow::send!");
    assert_eq!(err.undone(), ["charge"]);
    assert!(
        err.to_string().contains("collect: refusing on purpose"),
        "{err}"
    );
}

#[derive(Debug)]
struct NotJson;

impl Serialize for NotJson {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("NotJson never serializes"))
    }
}

#[saga]
async fn sends_garbage(shop: &Shop, order: Order) -> Result<u64, ShopError> {
    let paid = charge(shop, &order).await?;
    sagaflow::send!("audit", &NotJson);
    Ok(paid)
}

#[tokio::test]
async fn a_body_message_that_does_not_serialize_compensates_every_step() {
    let shop = Shop::default();
    let sink = Collect::default();
    let err = Runner::new()
        .with_sink(sink.clone())
        .run(SendsGarbageSaga::new(&shop, order()))
        .await
        .unwrap_err();
    assert_eq!(err.undone(), ["charge"]);
    match err.failure() {
        StepFailure::NotSent { message } => {
            assert!(message.contains("message to `audit`"), "{message}");
            assert!(message.contains("NotJson never serializes"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

fn kinds(journal: &[Entry]) -> Vec<String> {
    journal
        .iter()
        .map(|e| match e {
            Entry::StepStarted { index, .. } => format!("start {index}"),
            Entry::StepSucceeded { index, .. } => format!("ok {index}"),
            Entry::StepFailed { index, .. } => format!("failed {index}"),
            Entry::CompensationStarted { index, .. } => format!("undo {index}"),
            Entry::CompensationSucceeded { index } => format!("undone {index}"),
            Entry::CompensationFailed { index, .. } => format!("undo failed {index}"),
            Entry::Decided => "decided".to_owned(),
            Entry::ConfirmStarted { index, .. } => format!("confirm {index}"),
            Entry::Confirmed { index } => format!("confirmed {index}"),
            Entry::Finished { status, .. } => format!("finished {status}"),
            Entry::Intervention { .. } => "intervention".to_owned(),
            Entry::Arm { branch, arm } => format!("arm {branch}={arm}"),
            Entry::Sent { messages } => {
                let ids: Vec<&str> = messages
                    .iter()
                    .map(|m| m.id.rsplit_once('-').map(|(a, _)| a).unwrap_or(""))
                    .map(|a| a.rsplit_once('-').map(|(_, origin)| origin).unwrap_or(""))
                    .collect();
                format!("sent {}", ids.join(","))
            }
        })
        .collect()
}

fn store(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("sagas.db"), Durability::Full).unwrap()
}

#[tokio::test]
async fn durably_messages_are_in_the_commit_of_the_transition_that_made_them() {
    let dir = tempfile::tempdir().unwrap();
    let shop = Shop::default();
    let executor = Executor::new(store(&dir)).register::<CheckoutSaga>();
    let started = executor
        .start(CheckoutSaga::new(&shop, order()))
        .await
        .unwrap();
    let id = started.id();
    assert_eq!(started.outcome().await.unwrap().unwrap(), "parcel-42");
    let record = executor.store().get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Committed);
    assert_eq!(
        kinds(&record.journal),
        [
            "start 0",
            "ok 0",
            "sent s0,s0",
            "start 1",
            "ok 1",
            "finished committed",
            "sent end,end"
        ]
    );
    let Entry::Sent { messages } = &record.journal[6] else {
        unreachable!()
    };
    assert_eq!(messages[0].id, format!("{id}-end-0"));
    assert_eq!(messages[1].key.as_deref(), Some("42"));
}

#[tokio::test]
async fn durably_a_compensated_saga_commits_its_steps_and_compensations_messages_only() {
    let dir = tempfile::tempdir().unwrap();
    let shop = Shop::default();
    shop.ship_fails.store(1, Ordering::SeqCst);
    let executor = Executor::new(store(&dir)).register::<CheckoutSaga>();
    let started = executor
        .start(CheckoutSaga::new(&shop, order()))
        .await
        .unwrap();
    let id = started.id();
    let err: SagaError<ShopError> = started.outcome().await.unwrap().unwrap_err();
    assert!(err.is_compensated());
    let record = executor.store().get(id).await.unwrap().unwrap();
    assert_eq!(
        kinds(&record.journal),
        [
            "start 0",
            "ok 0",
            "sent s0,s0",
            "start 1",
            "failed 1",
            "undo 0",
            "undone 0",
            "sent u0",
            "finished compensated"
        ]
    );
}

/// A handle whose clones share one till, as the test kit's resources must.
#[derive(Clone, Default)]
struct Till(Arc<Mutex<Vec<String>>>);

#[step(compensate = void)]
async fn ring_up(till: &Till, order: &Order) -> Result<u64, ShopError> {
    till.0.lock().unwrap().push(format!("rang up {}", order.id));
    StepContext::send("till", &format!("rang up {}", order.id))?;
    Ok(order.total)
}

async fn void(till: &Till, order: &Order, _total: &u64) -> Result<(), ShopError> {
    till.0.lock().unwrap().push(format!("voided {}", order.id));
    StepContext::send("till", &format!("voided {}", order.id))?;
    Ok(())
}

#[step(pivot)]
async fn hand_over(order: &Order) -> Result<u32, ShopError> {
    Ok(order.id)
}

#[saga]
async fn sell(till: &Till, order: Order) -> Result<u32, ShopError> {
    let total = ring_up(till, &order).await?;
    let parcel = hand_over(&order).await?;
    sagaflow::send!("receipts", &format!("{} paid {total}", order.id));
    Ok(parcel)
}

#[test]
fn the_test_kit_sees_what_each_run_sent() {
    use sagaflow::testing::SagaTest;
    let till = Till::default();
    let mut committed_with_receipt = 0;
    let mut test = SagaTest::new(|| {
        till.0.lock().unwrap().clear();
        SellSaga::new(&till, order())
    })
    .invariant(|run| {
        let to: Vec<&str> = run
            .messages()
            .iter()
            .map(|m| m.destination.as_str())
            .collect();
        let want: &[&str] = match (run.committed(), run.undone().is_empty()) {
            (true, _) => &["till", "receipts"],
            (false, false) => &["till", "till"],
            (false, true) => &[],
        };
        if run.committed() {
            committed_with_receipt += 1;
        }
        if to == want {
            Ok(())
        } else {
            Err(format!("sent to {to:?}, expected {want:?}"))
        }
    });
    test.failure_sweep().unwrap();
    let crashes = test
        .crash_sweep(|store| {
            Executor::new(store)
                .resource(till.clone())
                .register::<SellSaga>()
        })
        .unwrap();
    assert!(crashes.runs() >= 4, "{crashes}");
    drop(test);
    assert!(committed_with_receipt >= 2);
}

#[step(compensate = unpack)]
async fn pack(order: &Order) -> Result<u32, ShopError> {
    StepContext::send("warehouse", &format!("packed {}", order.id))?;
    Ok(order.id)
}

async fn unpack(order: &Order, _box: &u32) -> Result<(), ShopError> {
    StepContext::send("warehouse", &format!("unpacked {}", order.id))?;
    Ok(())
}

#[step(read_only)]
async fn label(shop: &Shop, order: &Order) -> Result<u32, ShopError> {
    StepContext::send("labels", &format!("label {}", order.id))?;
    if shop.ship_fails.load(Ordering::SeqCst) > 0 {
        return Err(ShopError::Declined);
    }
    Ok(order.id)
}

#[saga]
async fn pack_and_label(shop: &Shop, order: Order) -> Result<u32, ShopError> {
    let (packed, _) = sagaflow::join!(pack(&order), label(shop, &order))?;
    sagaflow::send!("audit", &packed);
    Ok(packed)
}

#[tokio::test]
async fn a_group_member_sends_with_its_own_outcome() {
    let shop = Shop::default();
    let sink = Collect::default();
    let runner = Runner::new().with_sink(sink.clone());
    runner
        .run(PackAndLabelSaga::new(&shop, order()))
        .await
        .unwrap();
    let mut to: Vec<String> = sink.texts().into_iter().map(|t| t.0).collect();
    to[..2].sort();
    assert_eq!(to, ["labels", "warehouse", "audit"]);

    // The label fails after it sent: its message is dropped with its attempt,
    // the packing's stays, and its undoing sends its own.
    shop.ship_fails.store(1, Ordering::SeqCst);
    let sink = Collect::default();
    let runner = Runner::new().with_sink(sink.clone());
    let err = runner
        .run(PackAndLabelSaga::new(&shop, order()))
        .await
        .unwrap_err();
    assert_eq!(err.undone(), ["pack"]);
    let texts: Vec<String> = sink.texts().into_iter().map(|t| t.1).collect();
    assert_eq!(texts, ["packed 42", "unpacked 42"]);

    let dir = tempfile::tempdir().unwrap();
    let executor = Executor::new(store(&dir)).register::<PackAndLabelSaga>();
    let shop = Shop::default();
    let started = executor
        .start(PackAndLabelSaga::new(&shop, order()))
        .await
        .unwrap();
    let id = started.id();
    started.outcome().await.unwrap().unwrap();
    let record = executor.store().get(id).await.unwrap().unwrap();
    let sent: Vec<String> = kinds(&record.journal)
        .into_iter()
        .filter(|k| k.starts_with("sent"))
        .collect();
    assert_eq!(sent.len(), 3, "{:?}", kinds(&record.journal));
    assert!(sent.contains(&"sent s0".to_owned()) && sent.contains(&"sent s1".to_owned()));
    assert_eq!(sent.last().unwrap(), "sent end");
}
