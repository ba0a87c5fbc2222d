//! Inline steps (`sagaflow::inline!`): a step written in place, with an
//! optional compensation, named in the journal, the graph and the report.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use sagaflow::durable::Executor;
use sagaflow::testing::SagaTest;
use sagaflow::{Saga, StepContext, StepKind, saga, step};
use serde::{Deserialize, Serialize};

use sagaflow_tests::Refused as TripError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Trip {
    who: String,
    seats: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Hold {
    id: u32,
}

#[derive(Clone, Default)]
struct Office {
    log: Arc<Mutex<Vec<String>>>,
    held: Arc<Mutex<u32>>,
    keys: Arc<Mutex<HashSet<String>>>,
    fail_pay: Arc<Mutex<bool>>,
}

impl Office {
    fn note(&self, s: String) {
        self.log.lock().unwrap().push(s);
    }
    fn entries(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
    /// Whether the current step's effect is new: its idempotency key makes
    /// an at-least-once step exactly once.
    fn first_time(&self) -> bool {
        let key = StepContext::current()
            .map(|c| c.idempotency_key().to_string())
            .unwrap_or_default();
        self.keys.lock().unwrap().insert(key)
    }
    async fn hold(&self, trip: &Trip) -> Result<Hold, TripError> {
        if self.first_time() {
            *self.held.lock().unwrap() += trip.seats;
        }
        self.note(format!("hold {} for {}", trip.seats, trip.who));
        Ok(Hold { id: 9 })
    }
    async fn release(&self, trip: &Trip, hold: &Hold) -> Result<(), TripError> {
        if self.first_time() {
            *self.held.lock().unwrap() -= trip.seats;
        }
        self.note(format!("release #{}", hold.id));
        Ok(())
    }
}

#[step(compensate = refund)]
async fn pay(office: &Office, trip: &Trip) -> Result<u64, TripError> {
    if *office.fail_pay.lock().unwrap() {
        return Err(TripError("card declined".into()));
    }
    office.note(format!("pay for {}", trip.who));
    Ok(100)
}

async fn refund(office: &Office, _trip: &Trip, _paid: &u64) -> Result<(), TripError> {
    office.note("refund".into());
    Ok(())
}

#[saga]
async fn book(office: &Office, trip: Trip) -> Result<u32, TripError> {
    let _ = sagaflow::inline!(log_booking, read_only, async {
        office.note(format!("booking for {}", trip.who));
        Ok(())
    })?;
    let hold: Hold = sagaflow::inline!(
        hold_seat,
        compensate = async |hold| office.release(trip, hold).await,
        retry = 1,
        async { office.hold(trip).await }
    )?;
    let paid = pay(office, &trip).await?;
    Ok(hold.id + paid as u32)
}

fn trip() -> Trip {
    Trip {
        who: "ada".into(),
        seats: 2,
    }
}

#[tokio::test]
async fn inline_steps_run_in_place() {
    let office = Office::default();
    assert_eq!(book(&office, trip()).await.unwrap(), 109);
    assert_eq!(
        office.entries(),
        ["booking for ada", "hold 2 for ada", "pay for ada"]
    );
}

#[tokio::test]
async fn an_inline_compensation_undoes_its_step() {
    let office = Office::default();
    *office.fail_pay.lock().unwrap() = true;
    let err = book(&office, trip()).await.unwrap_err();
    assert_eq!(err.failed_step(), "pay");
    assert_eq!(
        office.entries(),
        ["booking for ada", "hold 2 for ada", "release #9"]
    );
    assert_eq!(*office.held.lock().unwrap(), 0);
}

#[test]
fn inline_steps_have_their_names_and_kinds() {
    let steps = <BookSaga as Saga>::STEPS;
    let names: Vec<&str> = steps.iter().map(|s| s.name()).collect();
    assert_eq!(names, ["log_booking", "hold_seat", "pay"]);
    assert_eq!(steps[0].kind(), StepKind::ReadOnly);
    assert_eq!(steps[1].kind(), StepKind::Compensatable);
    assert_eq!(steps[1].retry().max_retries(), Some(1));
    assert!(BookSaga::graph().to_dot().contains("hold_seat"));
}

#[test]
fn a_saga_with_inline_steps_survives_every_crash() {
    let office = Office::default();
    let mut test = SagaTest::new(|| {
        office.keys.lock().unwrap().clear();
        *office.held.lock().unwrap() = 0;
        BookSaga::new(&office, trip())
    })
    .invariant(|run| {
        let want = if run.committed() { 2 } else { 0 };
        match *office.held.lock().unwrap() {
            h if h == want => Ok(()),
            h => Err(format!("{h} seats held, expected {want}")),
        }
    });
    test.failure_sweep().unwrap();
    let crashes = test
        .crash_sweep(|store| {
            Executor::new(store)
                .resource(office.clone())
                .register::<BookSaga>()
        })
        .unwrap();
    assert!(crashes.runs() >= 4, "{crashes}");
}
