//! Try-confirm-cancel steps in memory: the confirms at the decision to commit
//! (at the pivot, or after the last step), concurrent and retried until they
//! succeed; the cancels on rollback, with the try's output or `None` after a
//! try that failed, timed out or panicked; hooks, report rows and keys.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sagaflow::{Hooks, Phase, RunOutcome, Runner, StepContext, saga, step};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Oops(String);

impl fmt::Display for Oops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the participants saw, in order, and what makes them fail.
#[derive(Default)]
struct Airline {
    log: Mutex<Vec<String>>,
    /// The step that fails (`"hold"`, `"charge"`, `"slow"`, `"panic"`).
    fail: Mutex<Option<&'static str>>,
    /// Confirm attempts to fail before one succeeds.
    confirm_failures: AtomicU32,
    /// Confirms in flight now, and the most at once.
    in_flight: AtomicU32,
    most_in_flight: AtomicU32,
}

impl Airline {
    fn failing(step: &'static str) -> Self {
        let a = Airline::default();
        *a.fail.lock().unwrap() = Some(step);
        a
    }
    fn log(&self, entry: impl Into<String>) {
        self.log.lock().unwrap().push(entry.into());
    }
    fn entries(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
    fn fails(&self, step: &str) -> bool {
        *self.fail.lock().unwrap() == Some(step)
    }
    fn key(&self) -> String {
        let cx = StepContext::current().unwrap();
        format!("{:?} {}", cx.phase(), cx.idempotency_key())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Hold(String);

#[step(tcc(confirm = confirm_seat, cancel = release_seat), timeout = "1s", confirm_retry(backoff = "1ms", max_backoff = "2ms"))]
async fn hold_seat(airline: &Airline, seat: &str) -> Result<Hold, Oops> {
    airline.log(format!("try {seat}"));
    if airline.fails("hold") {
        return Err(Oops("no seat".into()));
    }
    if airline.fails("slow") {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    if airline.fails("panic") {
        panic!("the seat map broke");
    }
    Ok(Hold(seat.to_owned()))
}

async fn confirm_seat(airline: &Airline, seat: &str, hold: &Hold) -> Result<(), Oops> {
    let now = airline.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    airline.most_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    airline.in_flight.fetch_sub(1, Ordering::SeqCst);
    let left = airline.confirm_failures.load(Ordering::SeqCst);
    if left > 0 {
        airline.confirm_failures.store(left - 1, Ordering::SeqCst);
        airline.log(format!("confirm {seat} failed"));
        return Err(Oops("confirm refused".into()));
    }
    assert_eq!(hold.0, seat);
    airline.log(format!("confirm {seat}"));
    Ok(())
}

async fn release_seat(airline: &Airline, seat: &str, hold: Option<&Hold>) -> Result<(), Oops> {
    match hold {
        Some(hold) => airline.log(format!("cancel {seat} {}", hold.0)),
        None => airline.log(format!("cancel {seat} none")),
    }
    Ok(())
}

#[step(compensate = refund)]
async fn charge(airline: &Airline, amount: u32) -> Result<u32, Oops> {
    airline.log(format!("charge {amount}"));
    if airline.fails("charge") {
        return Err(Oops("card declined".into()));
    }
    Ok(amount)
}

async fn refund(airline: &Airline, amount: u32, _: &u32) -> Result<(), Oops> {
    airline.log(format!("refund {amount}"));
    Ok(())
}

#[step(pivot)]
async fn ticket(airline: &Airline) -> Result<(), Oops> {
    airline.log("ticket");
    if airline.fails("ticket") {
        return Err(Oops("no ticket".into()));
    }
    Ok(())
}

#[step(retriable)]
async fn email(airline: &Airline) -> Result<(), Oops> {
    airline.log("email");
    Ok(())
}

#[saga]
async fn fly(airline: &Airline) -> Result<u32, Oops> {
    let _ = hold_seat(airline, "1A").await?;
    let _ = hold_seat_back(airline, "9F").await?;
    let paid = charge(airline, 300).await?;
    Ok(paid)
}

#[saga]
async fn fly_with_pivot(airline: &Airline) -> Result<(), Oops> {
    let _seat = hold_seat(airline, "1A").await?;
    ticket(airline).await?;
    email(airline).await?;
    Ok(())
}

// A second TCC step, so that two confirms can run at once.
#[step(tcc(confirm = confirm_seat, cancel = release_seat), confirm_retry(backoff = "1ms"))]
async fn hold_seat_back(airline: &Airline, seat: &str) -> Result<Hold, Oops> {
    airline.log(format!("try {seat}"));
    Ok(Hold(seat.to_owned()))
}

#[tokio::test]
async fn a_committed_saga_confirms_every_try_after_its_last_step_at_once() {
    let airline = Airline::default();
    let (result, report) = Runner::new().run_reported(FlySaga::new(&airline)).await;
    assert_eq!(result.unwrap(), 300);
    let log = airline.entries();
    assert_eq!(&log[..3], ["try 1A", "try 9F", "charge 300"]);
    let mut confirms = log[3..].to_vec();
    confirms.sort();
    assert_eq!(confirms, ["confirm 1A", "confirm 9F"]);
    assert_eq!(
        airline.most_in_flight.load(Ordering::SeqCst),
        2,
        "concurrent"
    );
    assert_eq!(report.outcome(), RunOutcome::Committed);
    let rows: Vec<_> = report
        .confirms()
        .map(|r| (r.step(), r.function()))
        .collect();
    assert_eq!(
        rows,
        [
            ("hold_seat", "confirm_seat"),
            ("hold_seat_back", "confirm_seat")
        ]
    );
    assert_eq!(report.cancels().count(), 0);
    let text = report.to_string();
    assert!(text.contains("confirm: confirm_seat"), "{text}");
}

#[tokio::test]
async fn a_later_failure_cancels_each_try_with_its_output_in_reverse_order() {
    let airline = Airline::failing("charge");
    let (result, report) = Runner::new().run_reported(FlySaga::new(&airline)).await;
    let error = result.unwrap_err();
    assert_eq!(error.failed_step(), "charge");
    assert_eq!(
        airline.entries(),
        [
            "try 1A",
            "try 9F",
            "charge 300",
            "cancel 9F 9F",
            "cancel 1A 1A"
        ]
    );
    assert_eq!(report.outcome(), RunOutcome::Compensated);
    let cancels: Vec<_> = report.cancels().map(|r| r.step()).collect();
    assert_eq!(cancels, ["hold_seat_back", "hold_seat"]);
    assert_eq!(report.confirms().count(), 0);
}

#[tokio::test]
async fn a_failed_try_is_cancelled_with_none() {
    let airline = Airline::failing("hold");
    let (result, report) = Runner::new().run_reported(FlySaga::new(&airline)).await;
    assert_eq!(result.unwrap_err().failed_step(), "hold_seat");
    assert_eq!(airline.entries(), ["try 1A", "cancel 1A none"]);
    assert_eq!(report.cancels().count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_try_that_timed_out_is_cancelled_with_none() {
    let airline = Airline::failing("slow");
    let result = FlySaga::new(&airline);
    let error = Runner::new().run(result).await.unwrap_err();
    assert!(error.cause().is_none());
    assert_eq!(airline.entries(), ["try 1A", "cancel 1A none"]);
}

#[tokio::test]
async fn a_try_that_panicked_is_cancelled_with_none() {
    let airline = Airline::failing("panic");
    let error = Runner::new().run(FlySaga::new(&airline)).await.unwrap_err();
    assert_eq!(error.failed_step(), "hold_seat");
    assert_eq!(airline.entries(), ["try 1A", "cancel 1A none"]);
}

#[tokio::test]
async fn the_pivot_decides_and_the_confirms_run_before_the_steps_after_it() {
    let airline = Airline::default();
    Runner::new()
        .run(FlyWithPivotSaga::new(&airline))
        .await
        .unwrap();
    assert_eq!(
        airline.entries(),
        ["try 1A", "ticket", "confirm 1A", "email"]
    );
}

#[tokio::test]
async fn a_failing_pivot_cancels_the_try() {
    let airline = Airline::failing("ticket");
    let error = Runner::new()
        .run(FlyWithPivotSaga::new(&airline))
        .await
        .unwrap_err();
    assert_eq!(error.failed_step(), "ticket");
    assert_eq!(airline.entries(), ["try 1A", "ticket", "cancel 1A 1A"]);
}

/// The events told to hooks, in order.
#[derive(Default)]
struct Told(Mutex<Vec<String>>);

impl Hooks for Told {
    fn saga_confirming(&self, saga: &'static str, _: sagaflow::SagaId) {
        self.0.lock().unwrap().push(format!("confirming {saga}"));
    }
    fn confirm_started(&self, cx: &StepContext) {
        self.0
            .lock()
            .unwrap()
            .push(format!("confirm {} #{}", cx.step(), cx.attempt()));
    }
    fn confirm_retrying(&self, cx: &StepContext, error: &str, _: Duration) {
        self.0
            .lock()
            .unwrap()
            .push(format!("retry {}: {error}", cx.step()));
    }
    fn confirm_succeeded(&self, cx: &StepContext, _: Duration) {
        self.0
            .lock()
            .unwrap()
            .push(format!("confirmed {}", cx.step()));
    }
    fn compensation_started(&self, cx: &StepContext) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{:?} {}", cx.phase(), cx.step()));
    }
}

#[tokio::test]
async fn a_failing_confirm_is_retried_until_it_succeeds_and_never_cancels() {
    let airline = Airline::default();
    airline.confirm_failures.store(3, Ordering::SeqCst);
    let hooks = Told::default();
    let runner = Runner::new().with_hooks(&hooks);
    let (result, report) = runner.run_reported(FlyWithPivotSaga::new(&airline)).await;
    result.unwrap();
    let log = airline.entries();
    assert_eq!(
        log,
        [
            "try 1A",
            "ticket",
            "confirm 1A failed",
            "confirm 1A failed",
            "confirm 1A failed",
            "confirm 1A",
            "email"
        ]
    );
    let told = hooks.0.lock().unwrap().clone();
    assert_eq!(told[0], "confirming fly_with_pivot");
    assert_eq!(told[1], "confirm hold_seat #1");
    assert_eq!(told[2], "retry hold_seat: confirm refused");
    assert_eq!(told.last().unwrap(), "confirmed hold_seat");
    assert!(!told.iter().any(|t| t.starts_with("Cancel")), "{told:?}");
    let row = report.find("hold_seat", Phase::Confirm).unwrap();
    assert_eq!(row.attempts(), 4);
    assert_eq!(row.error(), Some("confirm refused"));
    // The report lists things in the order they ran.
    let order: Vec<_> = report
        .records()
        .iter()
        .map(|r| format!("{:?} {}", r.phase(), r.step()))
        .collect();
    assert_eq!(
        order,
        [
            "Forward hold_seat",
            "Forward ticket",
            "Confirm hold_seat",
            "Forward email"
        ]
    );
}

/// The key each phase of a TCC step saw.
#[derive(Default)]
struct Keys(Mutex<Vec<String>>);

#[step(tcc(confirm = keyed_confirm, cancel = keyed_cancel))]
async fn keyed(keys: &Keys, airline: &Airline) -> Result<(), Oops> {
    keys.0.lock().unwrap().push(airline.key());
    Ok(())
}

async fn keyed_confirm(keys: &Keys, airline: &Airline, _: &()) -> Result<(), Oops> {
    keys.0.lock().unwrap().push(airline.key());
    Ok(())
}

async fn keyed_cancel(keys: &Keys, airline: &Airline, _: Option<&()>) -> Result<(), Oops> {
    keys.0.lock().unwrap().push(airline.key());
    Ok(())
}

#[saga]
async fn keyed_saga(keys: &Keys, airline: &Airline) -> Result<(), Oops> {
    keyed(keys, airline).await?;
    charge(airline, 1).await?;
    Ok(())
}

#[tokio::test]
async fn the_try_its_confirm_and_its_cancel_share_one_key() {
    for fail in [false, true] {
        let keys = Keys::default();
        let airline = if fail {
            Airline::failing("charge")
        } else {
            Airline::default()
        };
        let id = sagaflow::SagaId::from_u128(7);
        let _ = Runner::new()
            .run_with_id(KeyedSagaSaga::new(&keys, &airline), id)
            .await;
        let seen = keys.0.lock().unwrap().clone();
        let second = if fail { "Cancel" } else { "Confirm" };
        assert_eq!(
            seen,
            [format!("Forward {id}-0"), format!("{second} {id}-0")]
        );
    }
}

/// A TCC step method, whose confirm and cancel are methods of the same `impl`.
struct Seats {
    log: Mutex<Vec<String>>,
}

#[sagaflow::steps]
impl Seats {
    #[step(tcc(confirm = Self::confirm, cancel = Self::release))]
    async fn hold(&self, seat: u32) -> Result<u32, Oops> {
        self.log.lock().unwrap().push(format!("hold {seat}"));
        if seat == 13 {
            return Err(Oops("unlucky".into()));
        }
        Ok(seat * 10)
    }

    async fn confirm(&self, seat: u32, hold: &u32) -> Result<(), Oops> {
        self.log
            .lock()
            .unwrap()
            .push(format!("confirm {seat} {hold}"));
        Ok(())
    }

    async fn release(&self, seat: u32, hold: Option<&u32>) -> Result<(), Oops> {
        self.log
            .lock()
            .unwrap()
            .push(format!("release {seat} {hold:?}"));
        Ok(())
    }
}

#[saga]
async fn seat_method(seats: &Seats, seat: u32) -> Result<u32, Oops> {
    let held = seats.hold(seat).await?;
    Ok(held)
}

#[tokio::test]
async fn a_step_method_can_be_a_tcc_step() {
    let seats = Seats {
        log: Mutex::new(Vec::new()),
    };
    assert_eq!(seat_method(&seats, 4).await.unwrap(), 40);
    seat_method(&seats, 13).await.unwrap_err();
    assert_eq!(
        *seats.log.lock().unwrap(),
        ["hold 4", "confirm 4 40", "hold 13", "release 13 None"]
    );
}

#[test]
fn the_graph_and_the_step_table_know_the_kind() {
    let step = &<FlySaga as sagaflow::Saga>::STEPS[0];
    assert_eq!(step.kind(), sagaflow::StepKind::Tcc);
    assert_eq!(step.confirm(), Some("confirm_seat"));
    assert_eq!(step.compensation(), Some("release_seat"));
    assert_eq!(
        sagaflow::durable::fingerprint(<FlySaga as sagaflow::Saga>::STEPS),
        "hold_seat:tcc=release_seat+confirm_seat hold_seat_back:tcc=release_seat+confirm_seat charge:compensate=refund"
    );
}

/// The README's picture of a TCC saga: the guide's `fly` (a seat held by a
/// TCC step, then the pivot), drawn from its step table. Refresh it with
/// `SAGAFLOW_BLESS=1 cargo test -p sagaflow-tests --test tcc`.
#[test]
fn the_readme_picture_is_the_guides_saga() {
    use sagaflow::{SagaGraph, StepInfo, StepKind};
    const STEPS: &[StepInfo] = &[
        StepInfo::new("hold_seat", StepKind::Tcc)
            .with_compensation("release_seat")
            .with_confirm("confirm_seat")
            .with_timeout(Duration::from_secs(2)),
        StepInfo::new("charge", StepKind::Pivot),
    ];
    let svg = SagaGraph::new("fly", STEPS).to_svg_standalone();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/tcc.svg");
    if std::env::var_os("SAGAFLOW_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(path, &svg).unwrap();
    }
    let stored = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        stored == svg,
        "docs/tcc.svg is not the graph: SAGAFLOW_BLESS=1 cargo test -p sagaflow-tests --test tcc"
    );
}
