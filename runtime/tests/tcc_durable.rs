//! Durable try-confirm-cancel steps, on SQLite and (with the `postgres`
//! feature and `SAGAFLOW_PG_URL` set) on PostgreSQL: the decision to commit is
//! written before any confirm starts; recovery after it only goes forward and
//! confirms what is not confirmed; recovery before it cancels as rollback
//! does, with `None` for a try that has an intent and no outcome.
#![cfg(feature = "sqlite")]

mod support;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use sagaflow::durable::{
    Durability, Entry, Executor, NewSaga, RecoveredOutcome, SagaStatus, SqliteStore, Store,
    fingerprint,
};
use sagaflow::{Saga, SagaId, saga, step};

#[derive(Debug)]
struct SeatError(String);

impl std::fmt::Display for SeatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The participant: what it was asked, and whether its try fails.
#[derive(Default)]
struct Seats {
    log: Mutex<Vec<String>>,
    refuse: AtomicBool,
}

impl Seats {
    fn log(&self, what: String) {
        self.log.lock().unwrap().push(what);
    }
    fn seen(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

#[step(tcc(confirm = confirm_seat, cancel = release_seat))]
async fn hold_seat(seats: &Seats, seat: u32) -> Result<u32, SeatError> {
    seats.log(format!("try {seat}"));
    if seats.refuse.load(Ordering::SeqCst) {
        return Err(SeatError("sold out".into()));
    }
    Ok(seat * 10)
}

async fn confirm_seat(seats: &Seats, seat: u32, hold: &u32) -> Result<(), SeatError> {
    seats.log(format!("confirm {seat} {hold}"));
    Ok(())
}

async fn release_seat(seats: &Seats, seat: u32, hold: Option<&u32>) -> Result<(), SeatError> {
    seats.log(format!("cancel {seat} {hold:?}"));
    Ok(())
}

#[step(pivot)]
async fn ticket(seats: &Seats) -> Result<(), SeatError> {
    seats.log("ticket".into());
    Ok(())
}

#[step(retriable)]
async fn email(seats: &Seats) -> Result<(), SeatError> {
    seats.log("email".into());
    Ok(())
}

#[saga]
async fn fly(seats: &Seats, seat: u32) -> Result<(), SeatError> {
    let _ = hold_seat(seats, seat).await?;
    ticket(seats).await?;
    email(seats).await?;
    Ok(())
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
            Entry::Intervention { .. } => "intervention".to_owned(),
            Entry::Sent { .. } => "sent".to_owned(),
            Entry::Arm { branch, arm } => format!("arm {branch}={arm}"),
        })
        .collect()
}

fn executor<S: Store + Clone>(store: &S, refuse: bool) -> Executor<S> {
    let seats = Seats::default();
    seats.refuse.store(refuse, Ordering::SeqCst);
    Executor::new(store.clone())
        .resource(seats)
        .register::<FlySaga>()
}

fn seen<S: Store + Clone>(executor: &Executor<S>) -> Vec<String> {
    executor.resources().get::<Seats>().unwrap().seen()
}

/// A saga as a process that died after writing `journal` would have left it.
async fn crashed<S: Store>(store: &S, journal: Vec<Entry>) -> SagaId {
    let id = SagaId::time_ordered();
    store
        .create(NewSaga {
            id,
            saga_type: "fly".into(),
            fingerprint: fingerprint(FlySaga::STEPS),
            input: br#"{"seat":4}"#.to_vec(),
        })
        .await
        .expect("create");
    if !journal.is_empty() {
        store.append_all(id, journal).await.expect("append");
    }
    id
}

fn ok(index: u32, output: &str) -> Entry {
    Entry::StepSucceeded {
        index,
        output: output.as_bytes().to_vec(),
    }
}

fn started(index: u32, attempt: u32) -> Entry {
    Entry::StepStarted { index, attempt }
}

async fn the_decision_is_written_before_any_confirm<S: Store + Clone>(store: &S) {
    let executor = executor(store, false);
    let seats = Seats::default();
    let started = executor.start(FlySaga::new(&seats, 4)).await.unwrap();
    let id = started.id();
    started.outcome().await.unwrap().unwrap();
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Committed);
    assert_eq!(
        kinds(&record.journal),
        [
            "start 0#1",
            "ok 0",
            "start 1#1",
            "ok 1",
            "decided",
            "confirm 0#1",
            "confirmed 0",
            "start 2#1",
            "ok 2",
            "finished committed"
        ]
    );
    assert_eq!(seats.seen(), ["try 4", "ticket", "confirm 4 40", "email"]);
    assert!(
        record
            .fingerprint
            .contains("hold_seat:tcc=release_seat+confirm_seat")
    );
}

async fn recovery_after_the_decision_confirms_and_never_cancels<S: Store + Clone>(store: &S) {
    let id = crashed(
        store,
        vec![
            started(0, 1),
            ok(0, "40"),
            started(1, 1),
            ok(1, "null"),
            Entry::Decided,
            Entry::ConfirmStarted {
                index: 0,
                attempt: 1,
            },
        ],
    )
    .await;
    // The decision set the stored status: an operator sees it cannot roll
    // back, and recovery takes it up as it does a running saga.
    let before = store.get(id).await.unwrap().unwrap();
    assert_eq!(before.status, SagaStatus::Confirming);
    let confirming = store.with_status(SagaStatus::Confirming).await.unwrap();
    assert_eq!(confirming.iter().map(|r| r.id).collect::<Vec<_>>(), [id]);
    assert!(
        store
            .with_status(SagaStatus::Running)
            .await
            .unwrap()
            .is_empty()
    );
    // Even a participant that now refuses tries: nothing runs backward.
    let executor = executor(store, true);
    let report = executor.recover().await.unwrap();
    assert_eq!(report.sagas[0].outcome, RecoveredOutcome::Committed);
    assert_eq!(seen(&executor), ["confirm 4 40", "email"]);
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Committed);
    let kinds = kinds(&record.journal);
    assert_eq!(
        kinds[5..],
        [
            "confirm 0#1",
            "confirm 0#2",
            "confirmed 0",
            "start 2#1",
            "ok 2",
            "finished committed"
        ]
    );
    assert_eq!(kinds.iter().filter(|k| *k == "decided").count(), 1);
}

async fn recovery_after_a_confirm_does_not_confirm_again<S: Store + Clone>(store: &S) {
    crashed(
        store,
        vec![
            started(0, 1),
            ok(0, "40"),
            started(1, 1),
            ok(1, "null"),
            Entry::Decided,
            Entry::ConfirmStarted {
                index: 0,
                attempt: 1,
            },
            Entry::Confirmed { index: 0 },
        ],
    )
    .await;
    let executor = executor(store, false);
    let report = executor.recover().await.unwrap();
    assert_eq!(report.sagas[0].outcome, RecoveredOutcome::Committed);
    assert_eq!(seen(&executor), ["email"]);
}

async fn recovery_before_the_decision_cancels_a_try_with_an_intent_with_none<S: Store + Clone>(
    store: &S,
) {
    // The try's intent, and no outcome: it runs once more, fails, and is
    // cancelled with `None`, since the first attempt may have landed.
    let id = crashed(store, vec![started(0, 1)]).await;
    let executor = executor(store, true);
    let report = executor.recover().await.unwrap();
    assert!(
        matches!(&report.sagas[0].outcome, RecoveredOutcome::Compensated { failed_step, .. } if failed_step == "hold_seat"),
        "{:?}",
        report.sagas[0].outcome
    );
    assert_eq!(seen(&executor), ["try 4", "cancel 4 None"]);
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        kinds(&record.journal),
        [
            "start 0#1",
            "start 0#2",
            "failed 0",
            "undo 0#1",
            "undone 0",
            "finished compensated"
        ]
    );
}

async fn recovery_after_a_failed_try_runs_its_cancel<S: Store + Clone>(store: &S) {
    crashed(
        store,
        vec![
            started(0, 1),
            Entry::StepFailed {
                index: 0,
                error: "sold out".into(),
            },
        ],
    )
    .await;
    let executor = executor(store, false);
    executor.recover().await.unwrap();
    assert_eq!(seen(&executor), ["cancel 4 None"]);
}

async fn recovery_after_the_pivot_failed_cancels_with_the_output<S: Store + Clone>(store: &S) {
    crashed(
        store,
        vec![
            started(0, 1),
            ok(0, "40"),
            started(1, 1),
            Entry::StepFailed {
                index: 1,
                error: "no ticket".into(),
            },
        ],
    )
    .await;
    let executor = executor(store, false);
    executor.recover().await.unwrap();
    assert_eq!(seen(&executor), ["cancel 4 Some(40)"]);
}

/// Each test, once per store.
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::SqliteStore::open(dir.path().join("sagas.db"), super::Durability::Full).unwrap();
                    super::$name(&store).await;
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(url) = super::support::pg_url() else { return };
                    let schema = super::support::schema_for(concat!("tcc_", stringify!($name)));
                    let config = sagaflow::durable::PgConfig::new(url).schema(schema);
                    let store = sagaflow::durable::PgStore::connect_with(config).await.unwrap();
                    super::$name(&store).await;
                }
            )*
        }
    };
}

on_every_store!(
    the_decision_is_written_before_any_confirm,
    recovery_after_the_decision_confirms_and_never_cancels,
    recovery_after_a_confirm_does_not_confirm_again,
    recovery_before_the_decision_cancels_a_try_with_an_intent_with_none,
    recovery_after_a_failed_try_runs_its_cancel,
    recovery_after_the_pivot_failed_cancels_with_the_output,
);
