//! The test kit over a `sagaflow::join!` group: the failure sweep makes each
//! member fail for good while each sibling's attempt is in flight, and the
//! crash sweep kills the saga between the members' outcomes.

use std::sync::{Arc, Mutex};

use sagaflow::durable::Executor;
use sagaflow::testing::{RunSummary, SagaTest};
use sagaflow::{Phase, StepContext, saga, step};

use sagaflow_tests::Refused;

/// Bookings by idempotency key, and every call; clones share them.
#[derive(Clone, Default)]
struct Desk(Arc<Mutex<(Vec<String>, Vec<String>)>>);

impl Desk {
    fn book(&self, what: &str) -> Result<u32, Refused> {
        let key = StepContext::current()
            .map(|c| c.idempotency_key().to_string())
            .unwrap_or_default();
        let mut desk = self.0.lock().unwrap();
        desk.1.push(what.to_owned());
        if !desk.0.contains(&key) {
            desk.0.push(key);
        }
        Ok(1)
    }
    fn cancel(&self, what: &str) -> Result<(), Refused> {
        let key = StepContext::current()
            .map(|c| c.idempotency_key().to_string())
            .unwrap_or_default();
        let mut desk = self.0.lock().unwrap();
        desk.1.push(format!("cancel {what}"));
        desk.0
            .retain(|k| k.as_str() != key.trim_end_matches("-undo"));
        Ok(())
    }
    fn held(&self) -> usize {
        self.0.lock().unwrap().0.len()
    }
    fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap().1.clone()
    }
    fn reset(&self) {
        *self.0.lock().unwrap() = Default::default();
    }
}

#[step(compensate = refund)]
async fn pay(desk: &Desk, trip: u32) -> Result<u32, Refused> {
    let _ = trip;
    desk.book("pay")
}
async fn refund(desk: &Desk, _trip: u32, _paid: &u32) -> Result<(), Refused> {
    desk.cancel("pay")
}

#[step(compensate = unfly, retry = 2)]
async fn fly(desk: &Desk, trip: u32) -> Result<u32, Refused> {
    let _ = trip;
    desk.book("fly")
}
async fn unfly(desk: &Desk, _trip: u32, _out: &u32) -> Result<(), Refused> {
    desk.cancel("fly")
}

#[step(compensate = unstay, retry = 3)]
async fn stay(desk: &Desk, trip: u32) -> Result<u32, Refused> {
    let _ = trip;
    // A slow hotel: its attempt is still in flight when a fast sibling ends.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    desk.book("stay")
}
async fn unstay(desk: &Desk, _trip: u32, _out: &u32) -> Result<(), Refused> {
    desk.cancel("stay")
}

#[step(read_only)]
async fn look(desk: &Desk, trip: u32) -> Result<u32, Refused> {
    let _ = (desk, trip);
    Ok(0)
}

#[step(retriable)]
async fn mail(desk: &Desk, total: u32) -> Result<(), Refused> {
    let _ = (desk, total);
    Ok(())
}

#[saga]
async fn trip(desk: &Desk, trip: u32) -> Result<u32, Refused> {
    let _paid = pay(desk, trip).await?;
    let (flight, hotel, seen) =
        sagaflow::join!(fly(desk, trip), stay(desk, trip), look(desk, trip))?;
    let total: u32 = flight + hotel + seen;
    mail(desk, total).await?;
    Ok(total)
}

const MEMBERS: [&str; 3] = ["fly", "stay", "look"];

/// Nothing is held unless the saga committed; and in each run where a member
/// failed while a sibling was in flight, the sibling's report says what the
/// case says: one attempt that failed, or an attempt that ended and was undone.
fn checked(desk: &Desk) -> impl FnMut(&RunSummary) -> Result<(), String> + '_ {
    move |run| {
        let want = if run.committed() { 3 } else { 0 };
        if desk.held() != want {
            return Err(format!("{} held, expected {want}", desk.held()));
        }
        let Some((_, rest)) = run.case().split_once("while `") else {
            return Ok(());
        };
        let held = rest.split('`').next().unwrap_or_default();
        let report = run.report().ok_or("no report")?;
        let record = report.find(held, Phase::Forward);
        if run.case().ends_with("then fails") {
            match record {
                Some(r) if r.attempts() == 1 && r.error().is_some() => Ok(()),
                _ => Err(format!("`{held}` should have failed once: {record:?}")),
            }
        } else if held == "look" || run.undone().iter().any(|s| s == held) {
            // It ended; a compensatable one was undone.
            Ok(())
        } else {
            Err(format!(
                "`{held}` ended but was not undone: {:?}",
                run.undone()
            ))
        }
    }
}

#[test]
fn the_failure_sweep_fails_each_member_while_each_sibling_is_in_flight() {
    let desk = Desk::default();
    let mut test = SagaTest::new(|| {
        desk.reset();
        TripSaga::new(&desk, 7)
    })
    .invariant(checked(&desk));
    let report = test.failure_sweep().unwrap_or_else(|e| panic!("{e}"));
    let in_flight: Vec<&String> = report
        .cases()
        .iter()
        .filter(|c| c.contains("is in flight"))
        .collect();
    let mut expected = Vec::new();
    // Every member can fail, the read-only one too.
    for a in MEMBERS {
        for b in MEMBERS.iter().filter(|b| **b != a) {
            for then in ["then runs to its end", "then fails"] {
                expected.push(format!(
                    "`{a}` made to fail by an error while `{b}` is in flight, which {then}"
                ));
            }
        }
    }
    assert_eq!(in_flight, expected.iter().collect::<Vec<_>>(), "{report}");
    // A clean run, 5 steps × 3 faults, then 3 members × 2 siblings × 2 ends.
    assert_eq!(report.runs(), 1 + 15 + 12, "{report}");
}

#[test]
fn a_sibling_in_flight_finishes_and_is_undone_but_is_not_retried() {
    // The sweep's own checks, seen from the services: in the run where the
    // flight fails while the slow hotel is in flight, the hotel is booked
    // once and cancelled; the flight's injected errors never reach the desk.
    let desk = Desk::default();
    let mut calls = Vec::new();
    let mut test = SagaTest::new(|| {
        desk.reset();
        TripSaga::new(&desk, 7)
    })
    .invariant(|run| {
        if run.case() == "`fly` made to fail by an error while `stay` is in flight, which then runs to its end" {
            calls = desk.calls();
        }
        Ok(())
    });
    test.failure_sweep().unwrap_or_else(|e| panic!("{e}"));
    drop(test);
    assert_eq!(calls, ["pay", "stay", "cancel stay", "cancel pay"]);
}

#[test]
fn the_crash_sweep_kills_the_saga_between_the_members_outcomes() {
    let desk = Desk::default();
    let mut test = SagaTest::new(|| {
        desk.reset();
        TripSaga::new(&desk, 7)
    })
    .invariant(|run| {
        let want = if run.committed() { 3 } else { 0 };
        match desk.held() {
            n if n == want => Ok(()),
            n => Err(format!("{n} held, expected {want}")),
        }
    });
    let report = test
        .crash_sweep(|store| {
            Executor::new(store)
                .resource(desk.clone())
                .register::<TripSaga>()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let between: Vec<&String> = report
        .cases()
        .iter()
        .filter(|c| c.contains("in its group, had no outcome yet"))
        .collect();
    // The fast members end first, the slow hotel last: two outcomes before
    // the hotel's, each a run of its own.
    assert_eq!(between.len(), 2, "{report}");
    assert!(between.iter().all(|c| c.contains("`stay`")), "{report}");
    assert_eq!(report.cases().last().unwrap(), "ran to its end", "{report}");
}
