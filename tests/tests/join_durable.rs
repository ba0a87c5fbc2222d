//! `sagaflow::join!` in a durable saga: one commit for the group's intents,
//! each member's outcome on its own, recovery that runs again only the members
//! cut short, a group being undone that goes on being undone, the grouping in
//! the fingerprint, and the test kit's sweeps over every member.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use sagaflow::durable::{
    Durability, Entry, Executor, NewSaga, RecoveredOutcome, SagaStatus, SqliteStore, Store,
    fingerprint, fingerprint_grouped,
};
use sagaflow::testing::SagaTest;
use sagaflow::{Saga, SagaId, StepContext, saga, step};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ShopError(String);

impl std::fmt::Display for ShopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A travel agent: clones share its books. Every booking is kept by its
/// idempotency key, so a delivery repeated after a crash books once.
#[derive(Clone, Default)]
struct Agent {
    state: Arc<Mutex<Books>>,
}

#[derive(Default)]
struct Books {
    /// Live bookings by idempotency key.
    held: BTreeMap<String, &'static str>,
    /// Every call, with its key.
    calls: Vec<String>,
    /// A step that fails at every attempt.
    failing: Option<&'static str>,
}

fn key() -> String {
    StepContext::current()
        .map(|c| c.idempotency_key().to_string())
        .unwrap_or_default()
}

impl Agent {
    fn failing(step: &'static str) -> Self {
        let agent = Agent::default();
        agent.state.lock().unwrap().failing = Some(step);
        agent
    }
    fn book(&self, what: &'static str) -> Result<u64, ShopError> {
        let mut s = self.state.lock().unwrap();
        let key = key();
        s.calls.push(format!("{what} [{key}]"));
        if s.failing == Some(what) {
            return Err(ShopError(format!("no {what}")));
        }
        s.held.insert(key, what);
        Ok(100)
    }
    fn cancel(&self, what: &'static str) -> Result<(), ShopError> {
        let mut s = self.state.lock().unwrap();
        let key = key();
        s.calls.push(format!("cancel {what} [{key}]"));
        s.held.remove(key.trim_end_matches("-undo"));
        Ok(())
    }
    fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }
    fn held(&self) -> Vec<&'static str> {
        self.state.lock().unwrap().held.values().copied().collect()
    }
    fn reset(&self) {
        let mut s = self.state.lock().unwrap();
        s.held.clear();
        s.calls.clear();
    }
}

#[step(compensate = unhold)]
async fn hold(agent: &Agent, trip: &u32) -> Result<u64, ShopError> {
    let _ = trip;
    agent.book("seat")
}

async fn unhold(agent: &Agent, _trip: &u32, _out: &u64) -> Result<(), ShopError> {
    agent.cancel("seat")
}

#[step(compensate = unfly)]
async fn fly(agent: &Agent, trip: &u32) -> Result<u64, ShopError> {
    let _ = trip;
    agent.book("flight")
}

async fn unfly(agent: &Agent, _trip: &u32, _out: &u64) -> Result<(), ShopError> {
    agent.cancel("flight")
}

#[step(compensate = unsleep)]
async fn sleep_at(agent: &Agent, trip: &u32) -> Result<u64, ShopError> {
    let _ = trip;
    agent.book("hotel")
}

async fn unsleep(agent: &Agent, _trip: &u32, _out: &u64) -> Result<(), ShopError> {
    agent.cancel("hotel")
}

#[step(compensate = refund)]
async fn pay(agent: &Agent, total: u64) -> Result<u64, ShopError> {
    let _ = total;
    agent.book("payment")
}

async fn refund(agent: &Agent, _total: u64, _out: &u64) -> Result<(), ShopError> {
    agent.cancel("payment")
}

#[saga]
async fn trip(agent: &Agent, trip: u32) -> Result<u64, ShopError> {
    let _seat = hold(agent, &trip).await?;
    let (flight, hotel) = sagaflow::join!(fly(agent, &trip), sleep_at(agent, &trip))?;
    let total: u64 = flight + hotel;
    let paid = pay(agent, total).await?;
    Ok(paid)
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
            Entry::Finished { status, .. } => format!("finished {status}"),
            other => format!("{other:?}"),
        })
        .collect()
}

/// Writes a saga as a process that died after `journal` would have left it.
async fn crashed(store: &SqliteStore, print: String, journal: Vec<Entry>) -> SagaId {
    let id = SagaId::random();
    store
        .create(NewSaga {
            id,
            saga_type: "trip".into(),
            fingerprint: print,
            input: br#"{"trip":7}"#.to_vec(),
        })
        .await
        .unwrap();
    for entry in journal {
        store.append(id, entry).await.unwrap();
    }
    id
}

fn started(index: u32, attempt: u32) -> Entry {
    Entry::StepStarted { index, attempt }
}

fn succeeded(index: u32) -> Entry {
    Entry::StepSucceeded {
        index,
        output: b"100".to_vec(),
    }
}

#[test]
fn the_grouping_is_in_the_definition() {
    assert_eq!(TripSaga::GROUPS.len(), 1);
    assert_eq!(TripSaga::GROUPS[0], 1..3);
    assert_eq!(
        fingerprint_grouped(TripSaga::STEPS, TripSaga::GROUPS),
        "hold:compensate=unhold fly:compensate=unfly@1 sleep_at:compensate=unsleep@1 pay:compensate=refund"
    );
}

#[tokio::test]
async fn a_committed_group_leaves_both_intents_then_each_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::default();
    let executor = Executor::new(store(&dir)).register::<TripSaga>();
    let started = executor.start(TripSaga::new(&agent, 7)).await.unwrap();
    let id = started.id();
    assert_eq!(started.outcome().await.unwrap().unwrap(), 100);
    let record = executor.store().get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Committed);
    assert_eq!(
        record.fingerprint,
        fingerprint_grouped(TripSaga::STEPS, TripSaga::GROUPS)
    );
    let journal = kinds(&record.journal);
    assert_eq!(
        journal[..4],
        ["start 0#1", "ok 0", "start 1#1", "start 2#1"]
    );
    let mut outcomes = journal[4..6].to_vec();
    outcomes.sort();
    assert_eq!(outcomes, ["ok 1", "ok 2"]);
    assert_eq!(journal[6..], ["start 3#1", "ok 3", "finished committed"]);
}

#[tokio::test]
async fn recovery_runs_again_only_the_member_cut_short_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let print = fingerprint_grouped(TripSaga::STEPS, TripSaga::GROUPS);
    let journal = vec![
        started(0, 1),
        succeeded(0),
        started(1, 1),
        started(2, 1),
        succeeded(1),
    ];
    let id = crashed(&store, print, journal).await;
    let executor = Executor::new(store.clone())
        .resource(Agent::default())
        .register::<TripSaga>();
    let report = executor.recover().await.unwrap();
    assert_eq!(report.sagas[0].outcome, RecoveredOutcome::Committed);
    let used = executor.resources().get::<Agent>().unwrap();
    // The flight had its outcome: only the hotel ran again, with its key.
    assert_eq!(
        used.calls(),
        [format!("hotel [{id}-2]"), format!("payment [{id}-3]")]
    );
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        kinds(&record.journal)[5..],
        [
            "start 2#2",
            "ok 2",
            "start 3#1",
            "ok 3",
            "finished committed"
        ]
    );
}

#[tokio::test]
async fn a_group_being_undone_goes_on_being_undone() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let print = fingerprint_grouped(TripSaga::STEPS, TripSaga::GROUPS);
    let journal = vec![
        started(0, 1),
        succeeded(0),
        started(1, 1),
        started(2, 1),
        succeeded(1),
        Entry::StepFailed {
            index: 2,
            error: "no hotel".into(),
        },
        Entry::CompensationStarted {
            index: 1,
            attempt: 1,
        },
    ];
    let id = crashed(&store, print, journal).await;
    let executor = Executor::new(store.clone())
        .resource(Agent::default())
        .register::<TripSaga>();
    let report = executor.recover().await.unwrap();
    assert_eq!(
        report.sagas[0].outcome,
        RecoveredOutcome::Compensated {
            failed_step: "sleep_at".into(),
            undone: vec!["fly".into(), "hold".into()]
        }
    );
    let used = executor.resources().get::<Agent>().unwrap();
    assert_eq!(
        used.calls(),
        [
            format!("cancel flight [{id}-1-undo]"),
            format!("cancel seat [{id}-0-undo]")
        ]
    );
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Compensated);
}

#[tokio::test]
async fn a_changed_grouping_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    // Started when the flight and the hotel ran one after the other.
    let id = crashed(&store, fingerprint(TripSaga::STEPS), vec![started(0, 1)]).await;
    let executor = Executor::new(store.clone())
        .resource(Agent::default())
        .register::<TripSaga>();
    let report = executor.recover().await.unwrap();
    match &report.sagas[0].outcome {
        RecoveredOutcome::Refused(reason) => assert!(
            reason.contains(
                "step 2 (`fly:compensate=unfly`) has moved into or out of a `sagaflow::join!` group"
            ),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Running);
    assert_eq!(record.journal.len(), 1);
}

/// Nothing stays booked unless the saga committed, and then all four.
fn nothing_held_unless_committed(
    agent: &Agent,
) -> impl FnMut(&sagaflow::testing::RunSummary) -> Result<(), String> + '_ {
    move |run| {
        let mut held = agent.held();
        held.sort();
        let want: &[&str] = if run.committed() {
            &["flight", "hotel", "payment", "seat"]
        } else {
            &[]
        };
        if held == want {
            Ok(())
        } else {
            Err(format!("held {held:?}, expected {want:?}"))
        }
    }
}

#[test]
fn every_sweep_covers_each_member() {
    let agent = Agent::default();
    let mut test = SagaTest::new(|| {
        agent.reset();
        TripSaga::new(&agent, 7)
    })
    .invariant(nothing_held_unless_committed(&agent));
    let failures = test.failure_sweep().unwrap();
    // A clean run, then 4 steps × 3 faults; a failing member undoes its
    // sibling, then the seat. Then each member failing while the other is in
    // flight, which then runs to its end or fails: 2 × 2.
    assert_eq!(failures.runs(), 17, "{failures}");
    assert!(
        failures
            .cases()
            .contains(&"`sleep_at` made to fail by a panic".to_owned()),
        "{failures}"
    );
    let repeats = test.repeat_sweep().unwrap();
    // Each of 4 steps twice, and the 3 compensations that a later step's
    // failure runs (the flight's by the hotel's) twice.
    assert_eq!(repeats.runs(), 7, "{repeats}");
    let crashes = test
        .crash_sweep(|store| {
            Executor::new(store)
                .resource(agent.clone())
                .register::<TripSaga>()
        })
        .unwrap();
    let cases = crashes.cases().join("\n");
    // The group's two intents are one commit: no run dies between them.
    assert!(cases.contains("(step 2 attempt 1 began)"), "{cases}");
    assert!(!cases.contains("(step 1 attempt 1 began)"), "{cases}");
    // Each member's outcome is a commit of its own.
    assert!(cases.contains("(step 1 succeeded"), "{cases}");
    assert!(cases.contains("(step 2 succeeded"), "{cases}");
    assert_eq!(crashes.cases().last().unwrap(), "ran to its end");
}

#[test]
fn the_crash_sweep_with_a_failing_member_undoes_the_other() {
    let agent = Agent::failing("hotel");
    let mut test = SagaTest::new(|| {
        agent.reset();
        TripSaga::new(&agent, 7)
    })
    .invariant(nothing_held_unless_committed(&agent));
    let crashes = test
        .crash_sweep(|store| {
            Executor::new(store)
                .resource(agent.clone())
                .register::<TripSaga>()
        })
        .unwrap();
    let cases = crashes.cases().join("\n");
    assert!(cases.contains("(step 2 failed"), "{cases}");
    assert!(cases.contains("(compensation 1 succeeded)"), "{cases}");
}
