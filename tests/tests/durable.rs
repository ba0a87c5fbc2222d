//! Durable execution: what is in the store after each kind of run, and how
//! recovery resumes a saga from any persisted transition.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use sagaflow::durable::{
    Durability, DurableError, Entry, Executor, NewSaga, RecoveredOutcome, SagaStatus, SqliteStore,
    Store, fingerprint,
};
use sagaflow::{Saga, SagaId, StepContext, saga, step};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Order {
    item: String,
    qty: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Reservation {
    id: u64,
}

#[derive(Debug)]
struct ShopError(String);

impl std::fmt::Display for ShopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A fake shop that records every call with the idempotency key it came with.
#[derive(Default)]
struct Shop {
    calls: Mutex<Vec<String>>,
    fail_charge: AtomicU32,
    fail_refunds: AtomicU32,
}

impl Shop {
    fn log(&self, what: &str) {
        let key = StepContext::current()
            .map(|c| c.idempotency_key().to_string())
            .unwrap_or_default();
        self.calls.lock().unwrap().push(format!("{what} [{key}]"));
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
    fn names(&self) -> Vec<String> {
        self.calls()
            .iter()
            .map(|c| c.split(" [").next().unwrap().to_owned())
            .collect()
    }
}

#[step(compensate = release)]
async fn reserve(shop: &Shop, order: &Order) -> Result<Reservation, ShopError> {
    shop.log(&format!("reserve {}", order.item));
    Ok(Reservation { id: 7 })
}

async fn release(shop: &Shop, order: &Order, r: &Reservation) -> Result<(), ShopError> {
    if shop.fail_refunds.load(Ordering::SeqCst) > 0 {
        shop.log("release failed");
        return Err(ShopError("warehouse offline".into()));
    }
    shop.log(&format!("release {} #{}", order.item, r.id));
    Ok(())
}

#[step(compensate = refund)]
async fn charge(shop: &Shop, order: &Order) -> Result<u64, ShopError> {
    shop.log("charge");
    if shop.fail_charge.load(Ordering::SeqCst) > 0 {
        return Err(ShopError("card declined".into()));
    }
    Ok(u64::from(order.qty) * 100)
}

async fn refund(shop: &Shop, _order: &Order, paid: &u64) -> Result<(), ShopError> {
    shop.log(&format!("refund {paid}"));
    Ok(())
}

#[step(read_only)]
async fn confirm(shop: &Shop, paid: &u64) -> Result<String, ShopError> {
    shop.log(&format!("confirm {paid}"));
    Ok(format!("paid {paid}"))
}

#[saga]
async fn buy(shop: &Shop, order: Order) -> Result<String, ShopError> {
    let _ = reserve(shop, &order).await?;
    let paid = charge(shop, &order).await?;
    let receipt = confirm(shop, &paid).await?;
    Ok(receipt)
}

fn order() -> Order {
    Order {
        item: "lamp".into(),
        qty: 2,
    }
}

fn store(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("sagas.db"), Durability::Full).unwrap()
}

fn kinds(journal: &[Entry]) -> Vec<String> {
    journal
        .iter()
        .map(|e| match e {
            Entry::StepStarted { index, attempt } => format!("start {index}#{attempt}"),
            Entry::StepSucceeded { index, .. } => format!("ok {index}"),
            Entry::StepFailed { index, .. } => format!("failed {index}"),
            Entry::CompensationStarted { index, attempt } => format!("undo {index}#{attempt}"),
            Entry::CompensationSucceeded { index } => format!("undone {index}"),
            Entry::CompensationFailed { index, .. } => format!("undo failed {index}"),
            Entry::Decided => "decided".to_owned(),
            Entry::ConfirmStarted { index, attempt } => format!("confirm {index}#{attempt}"),
            Entry::Confirmed { index } => format!("confirmed {index}"),
            Entry::Finished { status, .. } => format!("finished {status}"),
            Entry::Intervention { retry, .. } => format!("intervention retry={retry}"),
            Entry::Sent { messages } => format!("sent {}", messages.len()),
            Entry::Arm { branch, arm } => format!("arm {branch}={arm}"),
        })
        .collect()
}

#[tokio::test]
async fn a_committed_saga_leaves_intents_outcomes_and_its_output_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let shop = Shop::default();
    let executor = Executor::new(store(&dir)).register::<BuySaga>();
    let started = executor.start(BuySaga::new(&shop, order())).await.unwrap();
    let id = started.id();
    // The input is durable before anything runs.
    let record = executor.store().get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Running);
    assert!(record.journal.is_empty());
    let input: serde_json::Value = serde_json::from_slice(&record.input).unwrap();
    assert_eq!(
        input,
        serde_json::json!({"order": {"item": "lamp", "qty": 2}})
    );

    assert_eq!(started.outcome().await.unwrap().unwrap(), "paid 200");
    let record = executor.store().get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Committed);
    assert_eq!(
        kinds(&record.journal),
        [
            "start 0#1",
            "ok 0",
            "start 1#1",
            "ok 1",
            "start 2#1",
            "ok 2",
            "finished committed"
        ]
    );
    match &record.journal[1] {
        Entry::StepSucceeded { output, .. } => assert_eq!(output, br#"{"id":7}"#),
        other => panic!("{other:?}"),
    }
    match record.journal.last().unwrap() {
        Entry::Finished { output, .. } => {
            assert_eq!(output.as_deref(), Some(&br#""paid 200""#[..]))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(record.fingerprint, fingerprint(BuySaga::STEPS));
}

#[tokio::test]
async fn a_failed_step_is_recorded_with_its_compensations() {
    let dir = tempfile::tempdir().unwrap();
    let shop = Shop::default();
    shop.fail_charge.store(1, Ordering::SeqCst);
    let executor = Executor::new(store(&dir)).register::<BuySaga>();
    let started = executor.start(BuySaga::new(&shop, order())).await.unwrap();
    let id = started.id();
    let err = started.outcome().await.unwrap().unwrap_err();
    assert_eq!(err.failed_step(), "charge");
    assert_eq!(err.undone(), ["reserve"]);
    let record = executor.store().get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Compensated);
    assert_eq!(
        kinds(&record.journal),
        [
            "start 0#1",
            "ok 0",
            "start 1#1",
            "failed 1",
            "undo 0#1",
            "undone 0",
            "finished compensated"
        ]
    );
}

/// Writes a saga as a process that died after `journal` would have left it.
async fn crashed(store: &SqliteStore, journal: Vec<Entry>) -> SagaId {
    let id = SagaId::random();
    store
        .create(NewSaga {
            id,
            saga_type: "buy".into(),
            fingerprint: fingerprint(BuySaga::STEPS),
            input: br#"{"order":{"item":"desk","qty":1}}"#.to_vec(),
        })
        .await
        .unwrap();
    for entry in journal {
        store.append(id, entry).await.unwrap();
    }
    id
}

#[tokio::test]
async fn recovery_runs_again_a_step_that_had_an_intent_but_no_outcome_with_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let id = crashed(
        &store,
        vec![
            Entry::StepStarted {
                index: 0,
                attempt: 1,
            },
            Entry::StepSucceeded {
                index: 0,
                output: br#"{"id":3}"#.to_vec(),
            },
            Entry::StepStarted {
                index: 1,
                attempt: 1,
            },
        ],
    )
    .await;
    let shop = Shop::default();
    let executor = Executor::new(store.clone())
        .resource(Shop::default())
        .register::<BuySaga>();
    let report = executor.recover().await.unwrap();
    assert_eq!(report.sagas.len(), 1);
    assert_eq!(report.sagas[0].outcome, RecoveredOutcome::Committed);
    // The resource the executor handed over did the work, not `shop`.
    assert!(shop.calls().is_empty());
    let used = executor.resources().get::<Shop>().unwrap();
    assert_eq!(used.names(), ["charge", "confirm 100"]);
    assert!(
        used.calls()[0].ends_with(&format!("[{id}-1]")),
        "charge ran with its stable key: {:?}",
        used.calls()
    );
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Committed);
    assert_eq!(
        kinds(&record.journal),
        [
            "start 0#1",
            "ok 0",
            "start 1#1",
            "start 1#2",
            "ok 1",
            "start 2#1",
            "ok 2",
            "finished committed"
        ]
    );
    // Finished sagas are untouched by another recovery.
    let again = executor.recover().await.unwrap();
    assert!(again.sagas.is_empty());
}

#[tokio::test]
async fn a_saga_that_was_compensating_goes_on_compensating() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let id = crashed(
        &store,
        vec![
            Entry::StepStarted {
                index: 0,
                attempt: 1,
            },
            Entry::StepSucceeded {
                index: 0,
                output: br#"{"id":3}"#.to_vec(),
            },
            Entry::StepStarted {
                index: 1,
                attempt: 1,
            },
            Entry::StepFailed {
                index: 1,
                error: "card declined".into(),
            },
            Entry::CompensationStarted {
                index: 0,
                attempt: 1,
            },
        ],
    )
    .await;
    let executor = Executor::new(store.clone())
        .resource(Shop::default())
        .register::<BuySaga>();
    let report = executor.recover().await.unwrap();
    assert_eq!(
        report.sagas[0].outcome,
        RecoveredOutcome::Compensated {
            failed_step: "charge".into(),
            undone: vec!["reserve".into()]
        }
    );
    let used = executor.resources().get::<Shop>().unwrap();
    assert_eq!(used.names(), ["release desk #3"]);
    assert!(used.calls()[0].ends_with(&format!("[{id}-0-undo]")));
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Compensated);
}

#[tokio::test]
async fn a_saga_whose_compensation_fails_is_parked_until_a_person_acts() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    tokio::time::pause();
    let executor = Executor::new(store.clone())
        .resource(Shop::default())
        .register::<BuySaga>();
    let shop = executor.resources().get::<Shop>().unwrap();
    shop.fail_charge.store(1, Ordering::SeqCst);
    shop.fail_refunds.store(1, Ordering::SeqCst);
    let started = executor.start(BuySaga::new(shop, order())).await.unwrap();
    let id = started.id();
    let err = started.outcome().await.unwrap().unwrap_err();
    assert!(!err.is_compensated());
    let parked = executor.parked().await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].id, id);
    // Recovery leaves a parked saga alone.
    assert!(executor.recover().await.unwrap().sagas.is_empty());

    // The warehouse is back: a person retries the compensation.
    shop.fail_refunds.store(0, Ordering::SeqCst);
    executor
        .retry_compensations(id, "warehouse back online, retried by ops")
        .await
        .unwrap();
    let report = executor.recover().await.unwrap();
    assert_eq!(
        report.sagas[0].outcome,
        RecoveredOutcome::Compensated {
            failed_step: "charge".into(),
            undone: vec!["reserve".into()]
        }
    );
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Compensated);
    let history = kinds(&record.journal);
    assert!(
        history.contains(&"finished parked".to_owned()),
        "{history:?}"
    );
    assert!(history.contains(&"intervention retry=true".to_owned()));
    assert_eq!(history.last().unwrap(), "finished compensated");
    assert!(matches!(
        executor.resolve(id, "too late").await,
        Err(DurableError::NotParked { .. })
    ));
}

#[tokio::test]
async fn a_changed_definition_is_refused_and_the_record_left_intact() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let id = SagaId::random();
    store
        .create(NewSaga {
            id,
            saga_type: "buy".into(),
            fingerprint: "reserve:compensate=release charge:pivot confirm:read_only".into(),
            input: br#"{"order":{"item":"desk","qty":1}}"#.to_vec(),
        })
        .await
        .unwrap();
    let executor = Executor::new(store.clone())
        .resource(Shop::default())
        .register::<BuySaga>();
    let report = executor.recover().await.unwrap();
    match &report.sagas[0].outcome {
        RecoveredOutcome::Refused(reason) => {
            assert!(reason.contains(&id.to_string()), "{reason}");
            assert!(
                reason.contains("step 2 was `charge:pivot` and is now `charge:compensate=refund`"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Running);
    assert!(record.journal.is_empty());
    assert!(
        executor
            .resources()
            .get::<Shop>()
            .unwrap()
            .calls()
            .is_empty()
    );
}

#[tokio::test]
async fn unknown_types_and_missing_resources_are_refused_and_unregistered_sagas_cannot_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let _ = crashed(&store, vec![]).await;
    let unregistered = Executor::new(store.clone());
    let report = unregistered.recover().await.unwrap();
    assert!(
        matches!(&report.sagas[0].outcome, RecoveredOutcome::Refused(r) if r.contains("`buy`, which is not registered")),
        "{report}"
    );
    let shop = Shop::default();
    assert!(matches!(
        unregistered.start(BuySaga::new(&shop, order())).await,
        Err(DurableError::NotRegistered { saga: "buy" })
    ));

    let no_resource = Executor::new(store.clone()).register::<BuySaga>();
    let report = no_resource.recover().await.unwrap();
    assert!(
        matches!(&report.sagas[0].outcome, RecoveredOutcome::Refused(r) if r.contains("no resource of type") && r.contains("Shop")),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_twice_at_once_runs_each_saga_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    for _ in 0..20 {
        crashed(
            &store,
            vec![Entry::StepStarted {
                index: 0,
                attempt: 1,
            }],
        )
        .await;
    }
    let executor = Executor::new(store.clone())
        .resource(Shop::default())
        .register::<BuySaga>();
    let (a, b) = tokio::join!(executor.recover(), executor.recover());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.sagas.len() + b.sagas.len(), 20);
    assert_eq!(a.already_running + b.already_running, 20);
    let shop = executor.resources().get::<Shop>().unwrap();
    assert_eq!(
        shop.names()
            .iter()
            .filter(|n| n.starts_with("reserve"))
            .count(),
        20
    );
}

/// Serializes to an error: JSON object keys must be strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Unsavable {
    by_pair: std::collections::BTreeMap<(u8, u8), u8>,
}

#[step(compensate = unlabel)]
async fn label(shop: &Shop) -> Result<u32, ShopError> {
    shop.log("label");
    Ok(1)
}

async fn unlabel(shop: &Shop, _: &u32) -> Result<(), ShopError> {
    shop.log("unlabel");
    Ok(())
}

#[step(read_only)]
async fn tabulate(shop: &Shop) -> Result<Unsavable, ShopError> {
    shop.log("tabulate");
    Ok(Unsavable {
        by_pair: [((1, 2), 3)].into_iter().collect(),
    })
}

#[saga]
async fn report_sales(shop: &Shop) -> Result<u32, ShopError> {
    let labels = label(shop).await?;
    let _ = tabulate(shop).await?;
    Ok(labels)
}

#[tokio::test]
async fn an_output_that_cannot_be_persisted_fails_its_step_and_the_saga_compensates() {
    let dir = tempfile::tempdir().unwrap();
    let executor = Executor::new(store(&dir)).register::<ReportSalesSaga>();
    let shop = Shop::default();
    let started = executor.start(ReportSalesSaga::new(&shop)).await.unwrap();
    let id = started.id();
    let err = started.outcome().await.unwrap().unwrap_err();
    assert_eq!(err.failed_step(), "tabulate");
    assert!(err.cause().is_none());
    assert!(
        err.to_string().contains("could not be persisted")
            && err.to_string().contains("key must be"),
        "{err}"
    );
    assert_eq!(err.undone(), ["label"]);
    assert_eq!(shop.names(), ["label", "tabulate", "unlabel"]);
    let record = executor.store().get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Compensated);
}

#[tokio::test]
async fn recovery_running_while_sagas_start_never_takes_up_a_starting_saga() {
    let dir = tempfile::tempdir().unwrap();
    let executor = Executor::new(store(&dir))
        .resource(Shop::default())
        .register::<BuySaga>();
    let shop = executor.resources().get::<Shop>().unwrap();
    for _ in 0..10 {
        let starts = async {
            let mut ids = Vec::new();
            for _ in 0..20 {
                let started = executor.start(BuySaga::new(shop, order())).await.unwrap();
                ids.push(started.id());
                started.outcome().await.unwrap().unwrap();
            }
            ids
        };
        let (ids, recovered) = tokio::join!(starts, executor.recover());
        let recovered = recovered.unwrap();
        for saga in &recovered.sagas {
            assert!(
                !ids.contains(&saga.id),
                "recovery took up a saga that was starting"
            );
        }
    }
    for record in executor
        .store()
        .with_status(SagaStatus::Committed)
        .await
        .unwrap()
    {
        let finished = record
            .journal
            .iter()
            .filter(|e| matches!(e, Entry::Finished { .. }))
            .count();
        assert_eq!(finished, 1, "saga {} ran twice", record.id);
    }
}

#[tokio::test]
async fn a_step_outcome_is_committed_with_the_next_transition() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let id = crashed(&store, vec![]).await;
    store
        .append_all(
            id,
            vec![
                Entry::StepSucceeded {
                    index: 0,
                    output: b"1".to_vec(),
                },
                Entry::StepStarted {
                    index: 1,
                    attempt: 1,
                },
            ],
        )
        .await
        .unwrap();
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(kinds(&record.journal), ["ok 0", "start 1#1"]);
    // One commit, all or nothing: an unknown saga takes none of them.
    let err = store
        .append_all(
            SagaId::random(),
            vec![Entry::StepStarted {
                index: 0,
                attempt: 1,
            }],
        )
        .await
        .unwrap_err();
    assert!(err.message().contains("no such saga"), "{err}");
}
