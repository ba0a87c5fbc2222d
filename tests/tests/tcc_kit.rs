//! The test kit over TCC steps: the failure sweep fails each try (its cancel
//! follows with `None`) and each confirm (retried until it succeeds), the
//! repeat sweep delivers tries, confirms and cancels twice, and the crash sweep
//! kills the saga around its decision and between its confirms.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use sagaflow::durable::Executor;
use sagaflow::testing::SagaTest;
use sagaflow::{StepContext, saga, step};

/// What a participant keeps per key: the barrier's rules, in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seat {
    Held,
    Confirmed,
    /// Released, or cancelled before any try came (an empty cancel).
    Released,
}

/// Seats by idempotency key, and what went wrong.
type Seats = (BTreeMap<String, Seat>, Vec<String>);

/// The airline, whose clones share its seats.
#[derive(Clone, Default)]
pub struct Airline {
    state: Arc<Mutex<Seats>>,
}

impl Airline {
    fn key() -> String {
        StepContext::current()
            .map(|c| c.idempotency_key().to_string())
            .unwrap_or_default()
    }
    fn reset(&self) {
        *self.state.lock().unwrap() = Default::default();
    }
    fn try_hold(&self) {
        let mut state = self.state.lock().unwrap();
        state.0.entry(Self::key()).or_insert(Seat::Held);
    }
    fn confirm(&self) {
        let key = Self::key();
        let mut state = self.state.lock().unwrap();
        match state.0.get(&key).copied() {
            Some(Seat::Held) | Some(Seat::Confirmed) => {
                state.0.insert(key, Seat::Confirmed);
            }
            other => state.1.push(format!("confirm of {key} found {other:?}")),
        }
    }
    fn cancel(&self) {
        let key = Self::key();
        let mut state = self.state.lock().unwrap();
        match state.0.get(&key).copied() {
            Some(Seat::Confirmed) => state.1.push(format!("cancel of confirmed {key}")),
            _ => {
                state.0.insert(key, Seat::Released);
            }
        }
    }
    fn seats(&self, seat: Seat) -> usize {
        self.state
            .lock()
            .unwrap()
            .0
            .values()
            .filter(|s| **s == seat)
            .count()
    }
    fn errors(&self) -> Vec<String> {
        self.state.lock().unwrap().1.clone()
    }
}

#[step(tcc(confirm = confirm_seat, cancel = release_seat), confirm_retry(backoff = "1ms"))]
async fn hold_seat(airline: &Airline, leg: u32) -> Result<u32, String> {
    airline.try_hold();
    Ok(leg)
}

async fn confirm_seat(airline: &Airline, _leg: u32, _hold: &u32) -> Result<(), String> {
    airline.confirm();
    Ok(())
}

async fn release_seat(airline: &Airline, _leg: u32, _hold: Option<&u32>) -> Result<(), String> {
    airline.cancel();
    Ok(())
}

#[step(tcc(confirm = confirm_back, cancel = release_back))]
async fn hold_back(airline: &Airline, leg: u32) -> Result<u32, String> {
    airline.try_hold();
    Ok(leg)
}

async fn confirm_back(airline: &Airline, _leg: u32, _hold: &u32) -> Result<(), String> {
    airline.confirm();
    Ok(())
}

async fn release_back(airline: &Airline, _leg: u32, _hold: Option<&u32>) -> Result<(), String> {
    airline.cancel();
    Ok(())
}

#[step(pivot)]
async fn pay(airline: &Airline) -> Result<(), String> {
    let _ = airline;
    Ok(())
}

#[step(retriable)]
async fn email(airline: &Airline) -> Result<(), String> {
    let _ = airline;
    Ok(())
}

#[saga]
async fn round_trip(airline: &Airline) -> Result<(), String> {
    let _ = hold_seat(airline, 1).await?;
    let _ = hold_back(airline, 2).await?;
    pay(airline).await?;
    email(airline).await?;
    Ok(())
}

/// Committed: both seats confirmed. Not: none held or confirmed. Never a
/// cancel of a confirmed seat, nor a confirm of a released one.
fn seats_settled(
    airline: &Airline,
) -> impl FnMut(&sagaflow::testing::RunSummary) -> Result<(), String> + '_ {
    move |run| {
        let errors = airline.errors();
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        let (held, confirmed) = (airline.seats(Seat::Held), airline.seats(Seat::Confirmed));
        let want = if run.committed() { (0, 2) } else { (0, 0) };
        if (held, confirmed) == want {
            Ok(())
        } else {
            Err(format!(
                "{held} seat(s) held and {confirmed} confirmed, expected {} and {}",
                want.0, want.1
            ))
        }
    }
}

#[test]
fn a_tcc_saga_passes_every_sweep() {
    let airline = Airline::default();
    let mut test = SagaTest::new(|| {
        airline.reset();
        RoundTripSaga::new(&airline)
    })
    .invariant(seats_settled(&airline));
    let failures = test.failure_sweep().unwrap();
    // A clean run, 4 steps × 3 faults, and each of 2 confirms made to fail.
    assert_eq!(failures.runs(), 15, "{failures}");
    assert!(
        failures
            .cases()
            .contains(&"`confirm_back` (confirming `hold_back`) made to fail 3 times".to_owned()),
        "{failures}"
    );
    let repeats = test.repeat_sweep().unwrap();
    // 4 steps twice, 2 cancels after a later failure twice, and per TCC step
    // its confirm twice and its cancel with `None` twice.
    assert_eq!(repeats.runs(), 10, "{repeats}");
    let crashes = test
        .crash_sweep(|store| {
            Executor::new(store)
                .resource(airline.clone())
                .register::<RoundTripSaga>()
        })
        .unwrap();
    let cases = crashes.cases().join("\n");
    assert!(cases.contains("the saga decided to commit"), "{cases}");
    assert!(
        cases.contains("confirm 0 succeeded") || cases.contains("confirm 1 succeeded"),
        "{cases}"
    );
}
