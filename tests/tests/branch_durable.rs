//! Branches, durably: the arm taken is recorded with the next transition, and
//! recovery follows the recorded arm without evaluating the condition again.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use sagaflow::durable::{
    Durability, Entry, Executor, NewSaga, RecoveredOutcome, SagaStatus, SqliteStore, Store,
    fingerprint_branched,
};
use sagaflow::{Saga, SagaId, saga, step};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Order {
    express: bool,
    qty: u32,
}

#[derive(Debug)]
struct ShopError(String);

impl std::fmt::Display for ShopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Default)]
struct Shop {
    calls: Mutex<Vec<String>>,
    fail_confirm: AtomicBool,
}

impl Shop {
    fn log(&self, what: impl Into<String>) {
        self.calls.lock().unwrap().push(what.into());
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[step(compensate = release)]
async fn reserve(shop: &Shop, order: &Order) -> Result<u32, ShopError> {
    shop.log("reserve");
    Ok(order.qty)
}
async fn release(shop: &Shop, _order: &Order, _r: &u32) -> Result<(), ShopError> {
    shop.log("release");
    Ok(())
}

#[step(compensate = cancel_express)]
async fn ship_express(shop: &Shop, order: &Order) -> Result<String, ShopError> {
    shop.log("ship_express");
    Ok(format!("express x{}", order.qty))
}
async fn cancel_express(shop: &Shop, _order: &Order, s: &String) -> Result<(), ShopError> {
    shop.log(format!("cancel {s}"));
    Ok(())
}

#[step(compensate = cancel_ground)]
async fn ship_ground(shop: &Shop, order: &Order) -> Result<String, ShopError> {
    shop.log("ship_ground");
    Ok(format!("ground x{}", order.qty))
}
async fn cancel_ground(shop: &Shop, _order: &Order, s: &String) -> Result<(), ShopError> {
    shop.log(format!("cancel {s}"));
    Ok(())
}

#[step(compensate = unconfirm)]
async fn confirm(shop: &Shop, label: &String) -> Result<u32, ShopError> {
    shop.log(format!("confirm {label}"));
    if shop.fail_confirm.load(Ordering::SeqCst) {
        return Err(ShopError("confirmation refused".into()));
    }
    Ok(1)
}
async fn unconfirm(shop: &Shop, _label: &String, _c: &u32) -> Result<(), ShopError> {
    shop.log("unconfirm");
    Ok(())
}

#[saga]
async fn ship(shop: &Shop, order: Order) -> Result<String, ShopError> {
    let _ = reserve(shop, &order).await?;
    let label = if order.express {
        ship_express(shop, &order).await?
    } else {
        ship_ground(shop, &order).await?
    };
    // An arm without steps: its choice is written with the next transition.
    if order.qty > 5 {
    } else {
        let _ = reserve(shop, &order).await?;
    }
    confirm(shop, &label).await?;
    Ok(label)
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
            Entry::CompensationStarted { index, .. } => format!("undo {index}"),
            Entry::CompensationSucceeded { index } => format!("undone {index}"),
            Entry::Arm { branch, arm } => format!("arm {branch}={arm}"),
            Entry::Finished { status, .. } => format!("finished {status}"),
            other => format!("{other:?}"),
        })
        .collect()
}

fn steps_fingerprint() -> String {
    fingerprint_branched(ShipSaga::STEPS, ShipSaga::GROUPS, ShipSaga::BRANCHES)
}

#[test]
fn steps_are_numbered_depth_first_and_the_branches_described() {
    let names: Vec<&str> = ShipSaga::STEPS.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "reserve",
            "ship_express",
            "ship_ground",
            "reserve",
            "confirm"
        ]
    );
    assert_eq!(ShipSaga::BRANCHES.len(), 2);
    assert_eq!(ShipSaga::BRANCHES[0].label(), "order.express");
    let arms: Vec<_> = ShipSaga::BRANCHES[0]
        .arms()
        .iter()
        .map(|a| (a.label(), a.steps()))
        .collect();
    assert_eq!(arms, [("true", 1..2), ("false", 2..3)]);
    assert_eq!(ShipSaga::BRANCHES[1].arms()[0].steps(), 3..3);
    assert_eq!(
        steps_fingerprint(),
        "reserve:compensate=release ship_express:compensate=cancel_express ship_ground:compensate=cancel_ground reserve:compensate=release confirm:compensate=unconfirm ?1=1..2|2..3 ?2=3..3|3..4"
    );
}

#[tokio::test]
async fn the_arm_taken_is_written_with_the_first_intent_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let shop = Shop::default();
    let executor = Executor::new(store(&dir)).register::<ShipSaga>();
    let order = Order {
        express: true,
        qty: 9,
    };
    let started = executor.start(ShipSaga::new(&shop, order)).await.unwrap();
    let id = started.id();
    assert_eq!(started.outcome().await.unwrap().unwrap(), "express x9");
    let record = executor.store().get(id).await.unwrap().unwrap();
    assert_eq!(record.fingerprint, steps_fingerprint());
    assert_eq!(
        kinds(&record.journal),
        [
            "start 0#1",
            "ok 0",
            "arm 0=0",
            "start 1#1",
            "ok 1",
            // The empty arm: with the next intent, the one after the branch.
            "arm 1=0",
            "start 4#1",
            "ok 4",
            "finished committed"
        ]
    );
}

/// Writes a saga as a process that died after `journal` would have left it.
async fn crashed(store: &SqliteStore, order: &str, journal: Vec<Entry>) -> SagaId {
    let id = SagaId::random();
    store
        .create(NewSaga {
            id,
            saga_type: "ship".into(),
            fingerprint: steps_fingerprint(),
            input: format!(r#"{{"order":{order}}}"#).into_bytes(),
        })
        .await
        .unwrap();
    for entry in journal {
        store.append(id, entry).await.unwrap();
    }
    id
}

#[tokio::test]
async fn recovery_follows_the_recorded_arm_whatever_the_condition_says_now() {
    // The input says express, but the journal says the ground arm was taken
    // (as if the condition had read something that changed since): recovery
    // goes on down the ground arm and never runs `ship_express`.
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let id = crashed(
        &store,
        r#"{"express":true,"qty":2}"#,
        vec![
            Entry::StepStarted {
                index: 0,
                attempt: 1,
            },
            Entry::StepSucceeded {
                index: 0,
                output: b"2".to_vec(),
            },
            Entry::Arm { branch: 0, arm: 1 },
            Entry::StepStarted {
                index: 2,
                attempt: 1,
            },
        ],
    )
    .await;
    let executor = Executor::new(store.clone())
        .resource(Shop::default())
        .register::<ShipSaga>();
    let report = executor.recover().await.unwrap();
    assert_eq!(report.sagas[0].outcome, RecoveredOutcome::Committed);
    let shop = executor.resources().get::<Shop>().unwrap();
    assert_eq!(
        shop.calls(),
        ["ship_ground", "reserve", "confirm ground x2"]
    );
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Committed);
    assert_eq!(
        kinds(&record.journal),
        [
            "start 0#1",
            "ok 0",
            "arm 0=1",
            "start 2#1",
            "start 2#2",
            "ok 2",
            "arm 1=1",
            "start 3#1",
            "ok 3",
            "start 4#1",
            "ok 4",
            "finished committed"
        ]
    );
}

#[tokio::test]
async fn a_recovered_failure_undoes_the_recorded_arm() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let id = crashed(
        &store,
        r#"{"express":true,"qty":7}"#,
        vec![
            Entry::StepStarted {
                index: 0,
                attempt: 1,
            },
            Entry::StepSucceeded {
                index: 0,
                output: b"7".to_vec(),
            },
            Entry::Arm { branch: 0, arm: 1 },
            Entry::StepStarted {
                index: 2,
                attempt: 1,
            },
            Entry::StepSucceeded {
                index: 2,
                output: br#""ground x7""#.to_vec(),
            },
            Entry::Arm { branch: 1, arm: 0 },
            Entry::StepStarted {
                index: 4,
                attempt: 1,
            },
            Entry::StepFailed {
                index: 4,
                error: "confirmation refused".into(),
            },
        ],
    )
    .await;
    let executor = Executor::new(store.clone())
        .resource(Shop::default())
        .register::<ShipSaga>();
    let report = executor.recover().await.unwrap();
    match &report.sagas[0].outcome {
        RecoveredOutcome::Compensated {
            failed_step,
            undone,
        } => {
            assert_eq!(failed_step, "confirm");
            assert_eq!(undone, &["ship_ground", "reserve"]);
        }
        other => panic!("{other:?}"),
    }
    let shop = executor.resources().get::<Shop>().unwrap();
    assert_eq!(shop.calls(), ["cancel ground x7", "release"]);
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Compensated);
}

#[tokio::test]
async fn a_recorded_arm_the_code_does_not_have_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let id = crashed(
        &store,
        r#"{"express":true,"qty":2}"#,
        vec![
            Entry::StepStarted {
                index: 0,
                attempt: 1,
            },
            Entry::StepSucceeded {
                index: 0,
                output: b"2".to_vec(),
            },
            Entry::Arm { branch: 0, arm: 5 },
            Entry::StepStarted {
                index: 2,
                attempt: 1,
            },
        ],
    )
    .await;
    let executor = Executor::new(store.clone())
        .resource(Shop::default())
        .register::<ShipSaga>();
    let report = executor.recover().await.unwrap();
    match &report.sagas[0].outcome {
        RecoveredOutcome::Refused(reason) => {
            assert!(reason.contains("took arm 6"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        executor
            .resources()
            .get::<Shop>()
            .unwrap()
            .calls()
            .is_empty()
    );
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Running);
    assert_eq!(record.journal.len(), 4);
}

#[tokio::test]
async fn a_saga_whose_arms_changed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let id = SagaId::random();
    let old = steps_fingerprint().replace("?1=1..2|2..3", "?1=1..3|3..3");
    store
        .create(NewSaga {
            id,
            saga_type: "ship".into(),
            fingerprint: old,
            input: br#"{"order":{"express":true,"qty":2}}"#.to_vec(),
        })
        .await
        .unwrap();
    let executor = Executor::new(store.clone())
        .resource(Shop::default())
        .register::<ShipSaga>();
    let report = executor.recover().await.unwrap();
    match &report.sagas[0].outcome {
        RecoveredOutcome::Refused(reason) => {
            assert!(reason.contains("branches"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}
