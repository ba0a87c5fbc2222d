//! `sagaflow::join!`: members run at once on the saga's task, each a step of its
//! own, and a failure undoes exactly what ran, the group's members together.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sagaflow::{Outcome, Phase, RunOutcome, Runner, SagaError, saga, step};
use tokio::sync::{Barrier, Notify};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Oops(String);

impl fmt::Display for Oops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the services saw, in order, and knobs that make them fail.
#[derive(Default)]
struct World {
    log: Mutex<Vec<String>>,
    /// Steps that fail at every attempt.
    failing: Mutex<Vec<&'static str>>,
    /// Both flight and hotel wait here at their first attempt: they finish
    /// only if both started.
    barrier: Option<Barrier>,
    /// The hotel's attempt ends only once the flight has failed.
    flight_failed: Notify,
    hotel_attempts: AtomicU32,
    /// Both cancellations wait here: they end only if they run at once.
    undo_barrier: Option<Barrier>,
    flight_attempts: AtomicU32,
    /// The flight fails at its first attempt only.
    flight_fails_once: bool,
}

impl World {
    fn failing(steps: &[&'static str]) -> Self {
        World {
            failing: Mutex::new(steps.to_vec()),
            ..World::default()
        }
    }
    fn log(&self, entry: impl Into<String>) {
        self.log.lock().unwrap().push(entry.into());
    }
    fn entries(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
    fn check(&self, step: &'static str) -> Result<(), Oops> {
        if self.failing.lock().unwrap().contains(&step) {
            self.log(format!("{step} failed"));
            return Err(Oops(format!("{step} refused")));
        }
        Ok(())
    }
}

#[step(compensate = unreserve)]
async fn reserve(world: &World, trip: &u32) -> Result<u32, Oops> {
    world.check("reserve")?;
    world.log(format!("reserve {trip}"));
    Ok(1)
}

async fn unreserve(world: &World, _trip: &u32, _r: &u32) -> Result<(), Oops> {
    world.log("undo reserve");
    Ok(())
}

#[step(compensate = cancel_flight, retry(max = 2, backoff = "10ms"))]
async fn book_flight(world: &World, trip: &u32) -> Result<u64, Oops> {
    let first = world.flight_attempts.fetch_add(1, Ordering::SeqCst) == 0;
    world.log("flight started");
    if let (Some(b), true) = (&world.barrier, first) {
        b.wait().await;
    }
    if world.flight_fails_once && first {
        world.log("flight failed once");
        return Err(Oops("flight busy".into()));
    }
    if let Err(e) = world.check("flight") {
        world.flight_failed.notify_one();
        return Err(e);
    }
    world.log(format!("flight booked {trip}"));
    Ok(100)
}

async fn cancel_flight(world: &World, _trip: &u32, price: &u64) -> Result<(), Oops> {
    if let Some(b) = &world.undo_barrier {
        b.wait().await;
    }
    world.log(format!("undo flight {price}"));
    Ok(())
}

#[step(compensate = cancel_hotel, retry(max = 3, backoff = "1s"))]
async fn book_hotel(world: &World, trip: &u32) -> Result<u64, Oops> {
    let first = world.hotel_attempts.fetch_add(1, Ordering::SeqCst) == 0;
    world.log("hotel started");
    if let (Some(b), true) = (&world.barrier, first) {
        b.wait().await;
    }
    world.check("hotel")?;
    world.log(format!("hotel booked {trip}"));
    Ok(80)
}

async fn cancel_hotel(world: &World, _trip: &u32, price: &u64) -> Result<(), Oops> {
    if let Some(b) = &world.undo_barrier {
        b.wait().await;
    }
    world.log(format!("undo hotel {price}"));
    Ok(())
}

/// Waits until the flight has failed, then succeeds: an attempt in flight
/// while its sibling fails for good.
#[step(compensate = cancel_car)]
async fn rent_car(world: &World) -> Result<u64, Oops> {
    world.log("car started");
    world.flight_failed.notified().await;
    world.log("car rented");
    Ok(30)
}

async fn cancel_car(world: &World, price: &u64) -> Result<(), Oops> {
    world.log(format!("undo car {price}"));
    Ok(())
}

#[step(read_only)]
async fn quote(world: &World, trip: &u32) -> Result<u64, Oops> {
    world.log(format!("quote {trip}"));
    Ok(5)
}

#[step(compensate = refund)]
async fn charge(world: &World, total: u64) -> Result<u64, Oops> {
    world.check("charge")?;
    world.log(format!("charge {total}"));
    Ok(total)
}

async fn refund(world: &World, total: u64, _c: &u64) -> Result<(), Oops> {
    world.log(format!("refund {total}"));
    Ok(())
}

#[saga]
async fn trip(world: &World, trip: u32) -> Result<u64, Oops> {
    let _r = reserve(world, &trip).await?;
    let (flight, hotel) = sagaflow::join!(book_flight(world, &trip), book_hotel(world, &trip))?;
    let total: u64 = flight + hotel;
    let paid = charge(world, total).await?;
    Ok(paid)
}

#[saga]
async fn car_and_flight(world: &World, trip: u32) -> Result<u64, Oops> {
    let (car, _) = sagaflow::join!(rent_car(world), book_flight(world, &trip))?;
    Ok(car)
}

#[saga]
async fn three_at_once(world: &World, trip: u32) -> Result<u64, Oops> {
    sagaflow::join!(
        book_hotel(world, &trip),
        quote(world, &trip),
        book_flight(world, &trip)
    )?;
    let paid = charge(world, 1).await?;
    Ok(paid)
}

fn barrier_world(failing: &[&'static str]) -> World {
    World {
        barrier: Some(Barrier::new(2)),
        ..World::failing(failing)
    }
}

/// The members meet at a barrier of two: run one after the other, the first
/// would wait forever (the paused clock then ends the test at once).
#[tokio::test(start_paused = true)]
async fn members_run_at_once() {
    let world = barrier_world(&[]);
    let run = tokio::time::timeout(Duration::from_secs(3600), trip(&world, 7));
    let total = run.await.expect("the members ran at once").unwrap();
    assert_eq!(total, 180);
    let log = world.entries();
    assert_eq!(log[0], "reserve 7");
    // Both started before either finished.
    let mut started = log[1..3].to_vec();
    started.sort();
    assert_eq!(started, ["flight started", "hotel started"]);
    assert_eq!(log.last().unwrap(), "charge 180");
}

#[tokio::test(start_paused = true)]
async fn a_failed_member_undoes_its_succeeded_sibling_then_the_steps_before() {
    let world = barrier_world(&["hotel"]);
    let err = tokio::time::timeout(Duration::from_secs(3600), trip(&world, 7))
        .await
        .expect("the members ran at once")
        .unwrap_err();
    assert!(err.is_compensated(), "{err}");
    assert_eq!(err.failed_step(), "book_hotel");
    assert_eq!(err.undone(), ["book_flight", "reserve"]);
    let log = world.entries();
    let flight_undone = log.iter().position(|e| e == "undo flight 100").unwrap();
    let reserve_undone = log.iter().position(|e| e == "undo reserve").unwrap();
    assert!(flight_undone < reserve_undone, "{log:?}");
    assert!(!log.iter().any(|e| e.starts_with("undo hotel")), "{log:?}");
    assert!(!log.iter().any(|e| e.starts_with("charge")), "{log:?}");
    // The flight succeeded at once; the hotel used its whole budget.
    assert_eq!(world.flight_attempts.load(Ordering::SeqCst), 1);
    assert_eq!(world.hotel_attempts.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_in_flight_finishes_and_is_undone() {
    let world = World::failing(&["flight"]);
    let err = car_and_flight(&world, 7).await.unwrap_err();
    assert_eq!(err.failed_step(), "book_flight");
    let log = world.entries();
    // The car's attempt was in flight when the flight failed for good: it
    // ran to its end and, having succeeded, was undone.
    assert!(log.contains(&"car rented".to_owned()), "{log:?}");
    assert_eq!(log.last().unwrap(), "undo car 30", "{log:?}");
    assert_eq!(err.undone(), ["rent_car"]);
}

#[tokio::test(start_paused = true)]
async fn no_retry_starts_once_a_sibling_failed_for_good() {
    // The flight fails first (it has 2 retries 10 ms apart), the hotel has
    // 3 retries a second apart: its backoff is cut short by the flight's
    // failure for good, and no second hotel attempt starts.
    let world = World::failing(&["flight", "hotel"]);
    let err = trip(&world, 7).await.unwrap_err();
    assert_eq!(world.flight_attempts.load(Ordering::SeqCst), 3);
    assert_eq!(world.hotel_attempts.load(Ordering::SeqCst), 1);
    // Both failures are in the error; the first to fail is named.
    assert_eq!(err.failed_step(), "book_flight");
    let failed: Vec<&str> = err.failed_steps().iter().map(|r| r.step()).collect();
    assert_eq!(failed, ["book_flight", "book_hotel"]);
    assert_eq!(err.failed_steps()[1].error(), Some("hotel refused"));
    let text = err.to_string();
    assert!(
        text.contains("`book_hotel` failed too (hotel refused)"),
        "{text}"
    );
    assert_eq!(err.undone(), ["reserve"]);
}

/// The cancellations meet at a barrier of two: undone one after the other,
/// the first would wait forever.
#[tokio::test(start_paused = true)]
async fn a_failure_after_the_group_undoes_every_member_at_once() {
    let world = World {
        undo_barrier: Some(Barrier::new(2)),
        ..World::failing(&["charge"])
    };
    let err = tokio::time::timeout(Duration::from_secs(3600), trip(&world, 7))
        .await
        .expect("the members were undone at once")
        .unwrap_err();
    assert_eq!(err.failed_step(), "charge");
    // The group's members, latest first, then the step before it.
    assert_eq!(err.undone(), ["book_hotel", "book_flight", "reserve"]);
    let log = world.entries();
    assert_eq!(log.last().unwrap(), "undo reserve");
}

#[tokio::test]
async fn a_bare_group_of_three_with_a_read_only_member() {
    let world = World::failing(&["charge"]);
    let err = three_at_once(&world, 9).await.unwrap_err();
    assert_eq!(err.undone(), ["book_flight", "book_hotel"]);
    assert!(world.entries().contains(&"quote 9".to_owned()));
    let world = World::default();
    assert_eq!(three_at_once(&world, 9).await.unwrap(), 1);
}

/// A member that succeeds at its second attempt beside one that succeeds at
/// its first: the group's outputs are bound from both, in an untimed run (one
/// member plain, the other not) and in a reported one (a timed run: neither
/// member is plain).
#[tokio::test(start_paused = true)]
async fn a_member_retried_to_success_is_bound_with_its_plain_sibling() {
    let world = World {
        flight_fails_once: true,
        ..World::default()
    };
    assert_eq!(trip(&world, 4).await.unwrap(), 180);
    assert_eq!(world.flight_attempts.load(Ordering::SeqCst), 2);
    assert_eq!(world.hotel_attempts.load(Ordering::SeqCst), 1);
    assert_eq!(world.entries().last().unwrap(), "charge 180");
    assert!(!world.entries().iter().any(|e| e.starts_with("undo")));

    let world = World {
        flight_fails_once: true,
        ..World::default()
    };
    let (result, report) = Runner::new().run_reported(TripSaga::new(&world, 4)).await;
    assert_eq!(result.unwrap(), 180);
    assert_eq!(report.outcome(), RunOutcome::Committed);
    let attempts: Vec<(&str, u32)> = report.steps().map(|r| (r.step(), r.attempts())).collect();
    assert_eq!(
        attempts,
        [
            ("reserve", 1),
            ("book_flight", 2),
            ("book_hotel", 1),
            ("charge", 1)
        ]
    );
}

/// In a run that keeps no times, a group whose members are all plain is
/// counted at once; the report, rebuilt from that count, still has a row for
/// each member: when the saga fails after the group, and when it commits.
#[tokio::test]
async fn plain_members_are_counted_in_an_untimed_run() {
    let world = World::failing(&["charge"]);
    let err = trip(&world, 5).await.unwrap_err();
    let rows: Vec<(&str, Outcome, u32)> = err
        .report()
        .steps()
        .filter(|r| r.phase() == Phase::Forward)
        .map(|r| (r.step(), r.outcome(), r.attempts()))
        .collect();
    assert_eq!(
        rows,
        [
            ("reserve", Outcome::Succeeded, 1),
            ("book_flight", Outcome::Succeeded, 1),
            ("book_hotel", Outcome::Succeeded, 1),
            ("charge", Outcome::Failed, 1)
        ]
    );

    let world = World::default();
    let runner = Runner::new().with_timings(false);
    let (result, report) = runner.run_reported(TripSaga::new(&world, 5)).await;
    assert_eq!(result.unwrap(), 180);
    let rows: Vec<(&str, Outcome)> = report.steps().map(|r| (r.step(), r.outcome())).collect();
    assert_eq!(
        rows,
        [
            ("reserve", Outcome::Succeeded),
            ("book_flight", Outcome::Succeeded),
            ("book_hotel", Outcome::Succeeded),
            ("charge", Outcome::Succeeded)
        ]
    );
}

#[tokio::test]
async fn each_member_has_its_report_row() {
    let world = World::default();
    let (result, report) = Runner::new().run_reported(TripSaga::new(&world, 3)).await;
    assert_eq!(result.unwrap(), 180);
    assert_eq!(report.outcome(), RunOutcome::Committed);
    let steps: Vec<(&str, u32)> = report.steps().map(|r| (r.step(), r.index())).collect();
    assert_eq!(
        steps,
        [
            ("reserve", 0),
            ("book_flight", 1),
            ("book_hotel", 2),
            ("charge", 3)
        ]
    );
    assert!(report.steps().all(|r| r.outcome() == Outcome::Succeeded));
    // The group is visible: its members' rows name it.
    let groups: Vec<Option<u32>> = report.steps().map(|r| r.group()).collect();
    assert_eq!(groups, [None, Some(0), Some(0), None]);
    let text = report.to_string();
    assert!(text.contains("book_flight ‖1"), "{text}");
    assert!(text.contains("book_hotel ‖1"), "{text}");

    let world = World::failing(&["hotel"]);
    let (result, report) = Runner::new().run_reported(TripSaga::new(&world, 3)).await;
    let err: SagaError<Oops> = result.unwrap_err();
    let hotel = report.find("book_hotel", Phase::Forward).unwrap();
    assert_eq!(hotel.outcome(), Outcome::Failed);
    assert_eq!(hotel.attempts(), 4);
    let undo = report.find("book_flight", Phase::Compensation).unwrap();
    assert_eq!(undo.group(), Some(0));
    assert_eq!(err.report(), &report);
}
