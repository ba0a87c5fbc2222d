//! `sagaflow::join!` groups on PostgreSQL: a grouped saga run durably on the
//! server, a group cut short by a crash (a member with an intent and no
//! outcome) recovered by running only that member again, with its key, a group
//! that was being undone undone to its end, and the test kit's crash sweep over
//! a grouped saga, committing and failing. Each test uses a schema of its own
//! on the server at `SAGAFLOW_PG_URL`.
#![cfg(all(feature = "postgres", feature = "testing"))]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sagaflow::durable::{
    Entry, Executor, NewSaga, PgConfig, PgStore, RecoveredOutcome, SagaStatus, Store,
    fingerprint_grouped,
};
use sagaflow::testing::{RunSummary, SagaTest};
use sagaflow::{Saga, SagaId, StepContext, saga, step};

const LONG: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct TripError(String);

impl std::fmt::Display for TripError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A travel agent whose clones share its books: live bookings by idempotency
/// key (a repeated delivery books once), and every call with its key.
#[derive(Clone, Default)]
struct Agent(Arc<Mutex<Books>>);

#[derive(Default)]
struct Books {
    held: BTreeMap<String, &'static str>,
    calls: Vec<String>,
    /// What this agent cannot book.
    full: Option<&'static str>,
}

fn key() -> String {
    StepContext::current()
        .map(|c| c.idempotency_key().to_string())
        .unwrap_or_default()
}

impl Agent {
    fn full(what: &'static str) -> Agent {
        let agent = Agent::default();
        agent.0.lock().unwrap().full = Some(what);
        agent
    }

    fn book(&self, what: &'static str) -> Result<u64, TripError> {
        let mut books = self.0.lock().unwrap();
        let key = key();
        books.calls.push(format!("{what} [{key}]"));
        if books.full == Some(what) {
            return Err(TripError(format!("no {what} left")));
        }
        books.held.insert(key, what);
        Ok(100)
    }

    fn cancel(&self, what: &'static str) -> Result<(), TripError> {
        let mut books = self.0.lock().unwrap();
        let key = key();
        books.calls.push(format!("cancel {what} [{key}]"));
        books.held.remove(key.trim_end_matches("-undo"));
        Ok(())
    }

    fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap().calls.clone()
    }

    fn held(&self) -> Vec<&'static str> {
        let mut held: Vec<_> = self.0.lock().unwrap().held.values().copied().collect();
        held.sort_unstable();
        held
    }

    fn reset(&self) {
        let mut books = self.0.lock().unwrap();
        books.held.clear();
        books.calls.clear();
    }
}

#[step(compensate = refund)]
async fn pay(agent: &Agent, trip: &u32) -> Result<u64, TripError> {
    let _ = trip;
    agent.book("payment")
}

async fn refund(agent: &Agent, _trip: &u32, _paid: &u64) -> Result<(), TripError> {
    agent.cancel("payment")
}

#[step(compensate = unfly)]
async fn fly(agent: &Agent, trip: &u32) -> Result<u64, TripError> {
    let _ = trip;
    agent.book("flight")
}

async fn unfly(agent: &Agent, _trip: &u32, _out: &u64) -> Result<(), TripError> {
    agent.cancel("flight")
}

#[step(compensate = unsleep)]
async fn sleep_at(agent: &Agent, trip: &u32) -> Result<u64, TripError> {
    let _ = trip;
    agent.book("hotel")
}

async fn unsleep(agent: &Agent, _trip: &u32, _out: &u64) -> Result<(), TripError> {
    agent.cancel("hotel")
}

#[step(compensate = unrent)]
async fn rent_car(agent: &Agent, trip: &u32) -> Result<u64, TripError> {
    let _ = trip;
    agent.book("car")
}

async fn unrent(agent: &Agent, _trip: &u32, _out: &u64) -> Result<(), TripError> {
    agent.cancel("car")
}

#[step(retriable)]
async fn confirm(agent: &Agent, total: u64) -> Result<u64, TripError> {
    let _ = agent;
    Ok(total)
}

/// Pay, then the flight, the hotel and the car at once, then confirm.
#[saga]
async fn trip(agent: &Agent, trip: u32) -> Result<u64, TripError> {
    let _paid = pay(agent, &trip).await?;
    let (flight, hotel, car) = sagaflow::join!(
        fly(agent, &trip),
        sleep_at(agent, &trip),
        rent_car(agent, &trip)
    )?;
    let total = confirm(agent, flight + hotel + car).await?;
    Ok(total)
}

async fn store(test: &str) -> Option<(PgStore, PgConfig)> {
    let url = support::pg_url()?;
    let config = PgConfig::new(url)
        .schema(support::schema_for(test))
        .lease(LONG);
    let store = PgStore::connect_with(config.clone())
        .await
        .expect("connect to SAGAFLOW_PG_URL");
    Some((store, config))
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

fn sorted(mut entries: Vec<String>) -> Vec<String> {
    entries.sort();
    entries
}

/// Writes a saga as a process that died after `journal` would have left it.
async fn crashed(store: &PgStore, journal: Vec<Entry>) -> SagaId {
    let id = SagaId::random();
    store
        .create(NewSaga {
            id,
            saga_type: "trip".into(),
            fingerprint: fingerprint_grouped(TripSaga::STEPS, TripSaga::GROUPS),
            input: br#"{"trip":7}"#.to_vec(),
        })
        .await
        .unwrap();
    for entry in journal {
        store.append(id, entry).await.unwrap();
    }
    id
}

fn started(index: u32) -> Entry {
    Entry::StepStarted { index, attempt: 1 }
}

fn succeeded(index: u32) -> Entry {
    Entry::StepSucceeded {
        index,
        output: b"100".to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grouped_saga_commits_with_the_intents_first_then_each_outcome() {
    let Some((store, _)) = store("join_commits").await else {
        return;
    };
    let agent = Agent::default();
    let executor = Executor::new(store.clone()).register::<TripSaga>();
    let started = executor.start(TripSaga::new(&agent, 7)).await.unwrap();
    let id = started.id();
    assert_eq!(started.outcome().await.unwrap().unwrap(), 300);
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Committed);
    let journal = kinds(&record.journal);
    assert_eq!(
        journal[..5],
        ["start 0#1", "ok 0", "start 1#1", "start 2#1", "start 3#1"]
    );
    // The members' outcomes, each on its own, in the order they came.
    assert_eq!(sorted(journal[5..8].to_vec()), ["ok 1", "ok 2", "ok 3"]);
    assert_eq!(journal[8..], ["start 4#1", "ok 4", "finished committed"]);
    assert_eq!(agent.held(), ["car", "flight", "hotel", "payment"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_cut_short_runs_again_only_the_members_without_an_outcome() {
    let Some((store, _)) = store("join_cut_short").await else {
        return;
    };
    // Died with the flight booked and the hotel and the car in flight.
    let journal = vec![
        started(0),
        succeeded(0),
        started(1),
        started(2),
        started(3),
        succeeded(1),
    ];
    let id = crashed(&store, journal).await;
    let executor = Executor::new(store.clone())
        .resource(Agent::default())
        .register::<TripSaga>();
    let report = executor.recover().await.unwrap();
    assert_eq!(report.sagas.len(), 1);
    assert_eq!(report.sagas[0].outcome, RecoveredOutcome::Committed);
    let agent = executor.resources().get::<Agent>().unwrap();
    // The flight is not booked again; the hotel and the car are, with the
    // keys of the attempts the crash cut short.
    assert_eq!(
        sorted(agent.calls()),
        [format!("car [{id}-3]"), format!("hotel [{id}-2]")]
    );
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Committed);
    let journal = kinds(&record.journal);
    // One more attempt of each member cut short, then their outcomes.
    assert_eq!(sorted(journal[6..8].to_vec()), ["start 2#2", "start 3#2"]);
    assert_eq!(sorted(journal[8..10].to_vec()), ["ok 2", "ok 3"]);
    assert_eq!(journal[10..], ["start 4#1", "ok 4", "finished committed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_cut_short_by_a_failure_undoes_what_its_members_did() {
    let Some((store, _)) = store("join_cut_failing").await else {
        return;
    };
    // Died with the hotel failed for good, the flight booked, the car in
    // flight: recovery lets the car finish, then undoes the group's
    // members that succeeded, then the payment.
    let journal = vec![
        started(0),
        succeeded(0),
        started(1),
        started(2),
        started(3),
        succeeded(1),
        Entry::StepFailed {
            index: 2,
            error: "no hotel left".into(),
        },
    ];
    let id = crashed(&store, journal).await;
    let executor = Executor::new(store.clone())
        .resource(Agent::default())
        .register::<TripSaga>();
    let report = executor.recover().await.unwrap();
    let RecoveredOutcome::Compensated {
        failed_step,
        undone,
    } = &report.sagas[0].outcome
    else {
        panic!("{:?}", report.sagas[0].outcome);
    };
    assert_eq!(failed_step, "sleep_at");
    // The car's attempt cut short runs again (it may have booked), then the
    // group's members that succeeded are undone concurrently, then the payment.
    assert_eq!(sorted(undone[..2].to_vec()), ["fly", "rent_car"]);
    assert_eq!(undone[2..], ["pay"]);
    let agent = executor.resources().get::<Agent>().unwrap();
    assert_eq!(agent.held(), Vec::<&str>::new(), "{:?}", agent.calls());
    assert!(
        agent.calls().contains(&format!("car [{id}-3]")),
        "{:?}",
        agent.calls()
    );
    assert!(
        agent
            .calls()
            .contains(&format!("cancel flight [{id}-1-undo]")),
        "{:?}",
        agent.calls()
    );
    assert_eq!(
        agent.calls().last().unwrap(),
        &format!("cancel payment [{id}-0-undo]")
    );
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Compensated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_being_undone_when_the_process_died_goes_on_being_undone() {
    let Some((store, _)) = store("join_undoing").await else {
        return;
    };
    let journal = vec![
        started(0),
        succeeded(0),
        started(1),
        started(2),
        started(3),
        succeeded(1),
        succeeded(3),
        Entry::StepFailed {
            index: 2,
            error: "no hotel left".into(),
        },
        Entry::CompensationStarted {
            index: 3,
            attempt: 1,
        },
        Entry::CompensationStarted {
            index: 1,
            attempt: 1,
        },
        Entry::CompensationSucceeded { index: 3 },
    ];
    let id = crashed(&store, journal).await;
    let executor = Executor::new(store.clone())
        .resource(Agent::default())
        .register::<TripSaga>();
    let report = executor.recover().await.unwrap();
    let RecoveredOutcome::Compensated { undone, .. } = &report.sagas[0].outcome else {
        panic!("{:?}", report.sagas[0].outcome);
    };
    assert_eq!(sorted(undone[..2].to_vec()), ["fly", "rent_car"]);
    assert_eq!(undone[2], "pay");
    let agent = executor.resources().get::<Agent>().unwrap();
    // The car was undone before the crash: only the flight and the payment now.
    assert_eq!(
        agent.calls(),
        [
            format!("cancel flight [{id}-1-undo]"),
            format!("cancel payment [{id}-0-undo]")
        ]
    );
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Compensated);
}

/// Nothing stays booked unless the saga committed, and then everything.
fn nothing_held_unless_committed(agent: &Agent) -> impl FnMut(&RunSummary) -> Result<(), String> {
    let agent = agent.clone();
    move |run| {
        let held = agent.held();
        let want: &[&str] = if run.committed() {
            &["car", "flight", "hotel", "payment"]
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

/// The crash sweep over `agent` on a schema of its own: one run per
/// transition, each killed there and recovered on PostgreSQL.
fn crash_sweep(test: &str, agent: &Agent) -> Option<Vec<String>> {
    let url = support::pg_url()?;
    let config = PgConfig::new(url)
        .schema(support::schema_for(test))
        .lease(LONG);
    let report = SagaTest::new(|| {
        agent.reset();
        TripSaga::new(agent, 7)
    })
    .invariant(nothing_held_unless_committed(agent))
    .crash_sweep_on(
        |_run| {
            let config = config.clone();
            async move {
                PgStore::connect_with(config)
                    .await
                    .map_err(|e| e.to_string())
            }
        },
        |store| {
            Executor::new(store)
                .resource(agent.clone())
                .register::<TripSaga>()
        },
    )
    .unwrap();
    assert_eq!(report.cases().last().unwrap(), "ran to its end", "{report}");
    Some(report.cases().to_vec())
}

#[test]
fn the_crash_sweep_recovers_a_group_cut_at_every_transition() {
    let agent = Agent::default();
    let Some(cases) = crash_sweep("join_sweep", &agent) else {
        return;
    };
    let cases = cases.join("\n");
    // The group's three intents are one commit, its outcomes one each: the
    // sweep kills the saga between them.
    assert!(cases.contains("(step 3 attempt 1 began)"), "{cases}");
    assert!(!cases.contains("(step 1 attempt 1 began)"), "{cases}");
    for member in 1..=3 {
        assert!(
            cases.contains(&format!("(step {member} succeeded")),
            "{cases}"
        );
    }
}

#[test]
fn the_crash_sweep_recovers_a_failing_group_at_every_transition() {
    let agent = Agent::full("hotel");
    let Some(cases) = crash_sweep("join_sweep_failing", &agent) else {
        return;
    };
    let cases = cases.join("\n");
    assert!(cases.contains("(step 2 failed"), "{cases}");
    assert!(cases.contains("(compensation 1 succeeded)"), "{cases}");
    assert!(cases.contains("(compensation 3 succeeded)"), "{cases}");
    assert!(cases.contains("(compensation 0 succeeded)"), "{cases}");
}
