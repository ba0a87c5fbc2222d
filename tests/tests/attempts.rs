//! Attempt numbers and retry budgets tell one story across restarts: both
//! count every attempt started, by any process, and the attempt a crash cut
//! short (its intent written, its outcome not) is followed by one more attempt
//! whatever the budget says, since nobody knows whether it failed. A person's
//! `retry_compensations` gives a parked compensation a whole budget again, its
//! attempt numbers going on.

use std::sync::{Arc, Mutex};

use sagaflow::durable::{
    Durability, Entry, Executor, NewSaga, RecoveredOutcome, SagaStatus, SqliteStore, Store,
    fingerprint,
};
use sagaflow::{Phase, Saga, SagaId, StepContext, saga, step};

/// The attempt numbers each call saw, in order.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    fn log(&self) {
        let cx = StepContext::current().unwrap();
        self.0.lock().unwrap().push(match cx.phase() {
            Phase::Forward => format!("{} #{}", cx.step(), cx.attempt()),
            Phase::Compensation => format!("undo {} #{}", cx.step(), cx.attempt()),
            Phase::Confirm => format!("confirm {} #{}", cx.step(), cx.attempt()),
            Phase::Cancel => format!("cancel {} #{}", cx.step(), cx.attempt()),
        });
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[step(compensate = give_back, compensate_retry(max = 1, backoff = "1ms"))]
async fn take(calls: &Calls) -> Result<u32, String> {
    calls.log();
    Ok(1)
}

async fn give_back(calls: &Calls, _taken: &u32) -> Result<(), String> {
    calls.log();
    Err("the warehouse is offline".into())
}

#[step(read_only, retry(max = 2, backoff = "1ms"))]
async fn flaky(calls: &Calls) -> Result<u32, String> {
    calls.log();
    Err("the partner is down".into())
}

#[saga]
async fn order(calls: &Calls) -> Result<u32, String> {
    let taken = take(calls).await?;
    let _ = flaky(calls).await?;
    Ok(taken)
}

async fn stored(store: &SqliteStore, journal: Vec<Entry>) -> SagaId {
    let id = SagaId::time_ordered();
    store
        .create(NewSaga {
            id,
            saga_type: OrderSaga::NAME.into(),
            fingerprint: fingerprint(OrderSaga::STEPS),
            input: b"{}".to_vec(),
        })
        .await
        .unwrap();
    store.append_all(id, journal).await.unwrap();
    id
}

fn attempts_written(journal: &[Entry]) -> Vec<String> {
    journal
        .iter()
        .filter_map(|e| match e {
            Entry::StepStarted { index, attempt } => Some(format!("step {index} #{attempt}")),
            Entry::CompensationStarted { index, attempt } => {
                Some(format!("compensation {index} #{attempt}"))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_step_cut_short_by_a_crash_goes_on_with_the_budget_it_had_left() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db"), Durability::Normal).unwrap();
    let calls = Calls::default();
    // Before the crash: `take` done, `flaky` failed once and was in its
    // second attempt (of three) when the process died.
    let id = stored(
        &store,
        vec![
            Entry::StepStarted {
                index: 0,
                attempt: 1,
            },
            Entry::StepSucceeded {
                index: 0,
                output: b"1".to_vec(),
            },
            Entry::StepStarted {
                index: 1,
                attempt: 1,
            },
            Entry::StepStarted {
                index: 1,
                attempt: 2,
            },
        ],
    )
    .await;
    let executor = Executor::new(store.clone())
        .resource(calls.clone())
        .register::<OrderSaga>();
    executor.recover().await.unwrap();
    // The attempt in doubt runs again as #3, the last of the budget; then the
    // step has failed for good and `take` is compensated, twice (its budget).
    assert_eq!(
        calls.take(),
        ["flaky #3", "undo take #1", "undo take #2"],
        "one attempt after the crash, not a fresh budget of three"
    );
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Parked);
}

#[tokio::test]
async fn a_compensation_cut_short_goes_on_and_a_person_s_retry_gives_it_a_whole_budget() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.db"), Durability::Normal).unwrap();
    let calls = Calls::default();
    // `flaky` failed for good; the compensation of `take` had used both of its
    // attempts, the second cut short by a crash.
    let id = stored(
        &store,
        vec![
            Entry::StepStarted {
                index: 0,
                attempt: 1,
            },
            Entry::StepSucceeded {
                index: 0,
                output: b"1".to_vec(),
            },
            Entry::StepStarted {
                index: 1,
                attempt: 3,
            },
            Entry::StepFailed {
                index: 1,
                error: "the partner is down".into(),
            },
            Entry::CompensationStarted {
                index: 0,
                attempt: 1,
            },
            Entry::CompensationStarted {
                index: 0,
                attempt: 2,
            },
        ],
    )
    .await;
    let executor = Executor::new(store.clone())
        .resource(calls.clone())
        .register::<OrderSaga>();
    let report = executor.recover().await.unwrap();
    assert!(matches!(
        report.sagas[0].outcome,
        RecoveredOutcome::Parked { .. }
    ));
    // Its budget was spent: the attempt in doubt is followed by one more only.
    assert_eq!(calls.take(), ["undo take #3"]);

    // A person sends it back: a whole budget (two attempts), numbered on.
    executor
        .retry_compensations(id, "warehouse back up")
        .await
        .unwrap();
    executor.recover().await.unwrap();
    assert_eq!(calls.take(), ["undo take #4", "undo take #5"]);
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Parked);
    assert_eq!(
        attempts_written(&record.journal),
        [
            "step 0 #1",
            "step 1 #3",
            "compensation 0 #1",
            "compensation 0 #2",
            "compensation 0 #3",
            "compensation 0 #4",
            "compensation 0 #5",
        ]
    );
}
