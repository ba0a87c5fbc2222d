//! The test kit over a saga with branches: the sweeps take each arm the
//! inputs take, say which arms no run took, and crash inside each arm.

use std::sync::{Arc, Mutex};

use sagaflow::durable::Executor;
use sagaflow::testing::SagaTest;
use sagaflow::{saga, step};
use serde::{Deserialize, Serialize};

/// What is booked, by name (once: booking is idempotent): the invariant reads it.
#[derive(Clone, Default)]
struct Ledger(Arc<Mutex<Vec<String>>>);

impl Ledger {
    fn add(&self, what: &str) {
        let mut held = self.0.lock().unwrap();
        if !held.iter().any(|h| h == what) {
            held.push(what.to_owned());
        }
    }
    fn remove(&self, what: &str) {
        let mut held = self.0.lock().unwrap();
        if let Some(i) = held.iter().position(|h| h == what) {
            held.remove(i);
        }
    }
    fn held(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn reset(&self) {
        self.0.lock().unwrap().clear();
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    express: bool,
}

#[step(compensate = release)]
async fn reserve(ledger: &Ledger, _order: &Order) -> Result<u32, String> {
    ledger.add("reserve");
    Ok(1)
}
async fn release(ledger: &Ledger, _order: &Order, _r: &u32) -> Result<(), String> {
    ledger.remove("reserve");
    Ok(())
}

#[step(compensate = cancel_express)]
async fn ship_express(ledger: &Ledger, _order: &Order) -> Result<u32, String> {
    ledger.add("express");
    Ok(2)
}
async fn cancel_express(ledger: &Ledger, _order: &Order, _s: &u32) -> Result<(), String> {
    ledger.remove("express");
    Ok(())
}

#[step(compensate = cancel_ground)]
async fn ship_ground(ledger: &Ledger, _order: &Order) -> Result<u32, String> {
    ledger.add("ground");
    Ok(3)
}
async fn cancel_ground(ledger: &Ledger, _order: &Order, _s: &u32) -> Result<(), String> {
    ledger.remove("ground");
    Ok(())
}

#[step(compensate = unbill)]
async fn bill(ledger: &Ledger, shipment: &u32) -> Result<u32, String> {
    ledger.add("bill");
    Ok(*shipment)
}
async fn unbill(ledger: &Ledger, _shipment: &u32, _b: &u32) -> Result<(), String> {
    ledger.remove("bill");
    Ok(())
}

#[saga]
async fn ship(ledger: &Ledger, order: Order) -> Result<u32, String> {
    let _ = reserve(ledger, &order).await?;
    let shipment = if order.express {
        ship_express(ledger, &order).await?
    } else {
        ship_ground(ledger, &order).await?
    };
    let billed = bill(ledger, &shipment).await?;
    Ok(billed)
}

fn test<'a>(ledger: &'a Ledger, inputs: &'a [bool]) -> SagaTest<'a, ShipSaga<'a>> {
    SagaTest::with_inputs(inputs.len(), move |i| {
        ledger.reset();
        ShipSaga::new(ledger, Order { express: inputs[i] })
    })
    .invariant(move |run| {
        let held = ledger.held();
        match (run.committed(), held.len()) {
            (true, 3) | (false, 0) => Ok(()),
            _ => Err(format!("holding {held:?}")),
        }
    })
}

#[test]
fn one_input_leaves_an_arm_untaken_and_the_report_says_which() {
    let ledger = Ledger::default();
    let report = test(&ledger, &[true]).failure_sweep().unwrap();
    assert_eq!(report.untaken_arms(), ["arm `false` of `order.express`"]);
    // `ship_ground` is not on this input's path: made to fail, it never runs.
    assert!(
        report
            .cases()
            .iter()
            .any(|c| c.starts_with("`ship_ground` made to fail by an error (not reached")),
        "{report}"
    );
    let err = test(&ledger, &[true])
        .every_arm()
        .failure_sweep()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "failure sweep: no run took arm `false` of `order.express`; give the test inputs that take it (`SagaTest::with_inputs`)"
    );
}

#[test]
fn inputs_per_arm_cover_every_arm_in_each_sweep() {
    let ledger = Ledger::default();
    let mut t = test(&ledger, &[true, false]).every_arm();
    let failures = t.failure_sweep().unwrap();
    assert!(failures.untaken_arms().is_empty());
    // Per input: a clean run, then 4 steps × 3 faults.
    assert_eq!(failures.runs(), 26, "{failures}");
    assert!(
        failures
            .cases()
            .contains(&"input 1: `bill` made to fail by an error".to_owned())
    );
    let repeats = t.repeat_sweep().unwrap();
    assert!(repeats.untaken_arms().is_empty(), "{repeats}");
    // Each arm's compensation is repeated on the input that takes the arm,
    // made to run by a failure on that input's own path.
    for case in [
        "input 0: `bill` made to fail, so that `cancel_express` (undoing `ship_express`) runs, delivered twice",
        "input 1: `bill` made to fail, so that `cancel_ground` (undoing `ship_ground`) runs, delivered twice",
        "input 0: `ship_express` made to fail, so that `release` (undoing `reserve`) runs, delivered twice",
        "input 1: `ship_ground` made to fail, so that `release` (undoing `reserve`) runs, delivered twice",
    ] {
        assert!(
            repeats.cases().contains(&case.to_owned()),
            "{case}: {repeats}"
        );
    }
    assert!(
        !repeats
            .cases()
            .iter()
            .any(|c| c.starts_with("input 0") && c.contains("cancel_ground")),
        "{repeats}"
    );
}

#[test]
fn the_crash_sweep_crashes_inside_each_arm() {
    let ledger = Ledger::default();
    let crashes = test(&ledger, &[true, false])
        .every_arm()
        .crash_sweep(|store| {
            Executor::new(store)
                .resource(ledger.clone())
                .register::<ShipSaga>()
        })
        .unwrap();
    assert!(crashes.untaken_arms().is_empty());
    // Transition 3 commits step 0's outcome, the arm taken and the intent of
    // the arm's step: the crash lands inside the arm, on each input's own.
    for (input, step) in [(0, 1), (1, 2)] {
        let inside =
            format!("input {input}: killed after transition 3 (step {step} attempt 1 began)");
        assert!(crashes.cases().contains(&inside), "{crashes}");
    }
}
