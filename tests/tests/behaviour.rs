//! How sagas run and unwind: order of steps and compensations, retries, timeouts,
//! panics, failed compensations, the pivot, hooks, reports and step contexts.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sagaflow::{
    Hooks, Outcome, Phase, RunOutcome, RunReport, Runner, SagaError, StepContext, StepFailure,
    saga, step,
};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Oops(String);

impl fmt::Display for Oops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Oops {}

/// What the services saw, in order, plus knobs that make steps fail.
#[derive(Default)]
struct World {
    log: Mutex<Vec<String>>,
    fail_at: Mutex<Option<&'static str>>,
    failures_left: AtomicU32,
    undo_fails: Mutex<Option<&'static str>>,
    evaluations: AtomicU32,
}

impl World {
    fn failing(step: &'static str) -> Self {
        let w = World::default();
        *w.fail_at.lock().unwrap() = Some(step);
        w
    }
    fn log(&self, entry: impl Into<String>) {
        self.log.lock().unwrap().push(entry.into());
    }
    fn entries(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
    fn maybe_fail(&self, step: &'static str) -> Result<(), Oops> {
        if *self.fail_at.lock().unwrap() == Some(step) {
            if self.failures_left.load(Ordering::SeqCst) == 0 {
                return Err(Oops(format!("{step} refused")));
            }
            if self.failures_left.fetch_sub(1, Ordering::SeqCst) > 1 {
                return Err(Oops(format!("{step} flaked")));
            }
            // The last planned failure: from now on the step works.
            *self.fail_at.lock().unwrap() = None;
            return Err(Oops(format!("{step} flaked")));
        }
        Ok(())
    }
    fn undo(&self, step: &'static str, detail: String) -> Result<(), Oops> {
        if *self.undo_fails.lock().unwrap() == Some(step) {
            self.log(format!("undo {step} failed"));
            return Err(Oops(format!("cannot undo {step}")));
        }
        self.log(format!("undo {step} {detail}"));
        Ok(())
    }
    fn evaluated(&self) -> u32 {
        self.evaluations.fetch_add(1, Ordering::SeqCst);
        7
    }
}

#[step(compensate = unreserve)]
async fn reserve(world: &World, item: &str, qty: u32) -> Result<u64, Oops> {
    world.maybe_fail("reserve")?;
    world.log(format!("reserve {item} x{qty}"));
    Ok(1000 + u64::from(qty))
}

async fn unreserve(world: &World, item: &str, qty: u32, reservation: &u64) -> Result<(), Oops> {
    world.undo("reserve", format!("{item} x{qty} #{reservation}"))
}

#[step(read_only)]
async fn quote_price(world: &World, reservation: &u64) -> Result<u64, Oops> {
    world.maybe_fail("quote_price")?;
    world.log(format!("quote #{reservation}"));
    Ok(250)
}

#[step(compensate = refund, retry(max = 2, backoff = "10ms"))]
async fn charge(world: &World, amount: u64) -> Result<String, Oops> {
    world.maybe_fail("charge")?;
    world.log(format!("charge {amount}"));
    Ok(format!("pay-{amount}"))
}

async fn refund(world: &World, amount: u64, payment: &String) -> Result<(), Oops> {
    world.undo("charge", format!("{amount} {payment}"))
}

#[step(pivot)]
async fn ship(world: &World, payment: &str) -> Result<u32, Oops> {
    world.maybe_fail("ship")?;
    world.log(format!("ship for {payment}"));
    Ok(99)
}

#[step(retriable, retry(backoff = "1s", max_backoff = "4s"))]
async fn notify(world: &World, parcel: u32) -> Result<(), Oops> {
    world.maybe_fail("notify")?;
    world.log(format!("notify parcel {parcel}"));
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
struct Order {
    payment: String,
    parcel: u32,
    total: u64,
}

#[saga]
async fn place_order(world: &World, item: String, qty: u32) -> Result<Order, Oops> {
    let reservation = reserve(world, &item, qty).await?;
    let price = quote_price(world, &reservation).await?;
    let total: u64 = price * u64::from(qty);
    let payment = charge(world, total).await?;
    let parcel = ship(world, &payment).await?;
    notify(world, parcel).await?;
    Ok(Order {
        payment,
        parcel,
        total,
    })
}

#[tokio::test(start_paused = true)]
async fn success_runs_every_step_in_order_and_undoes_nothing() {
    let world = World::default();
    let order = place_order(&world, "lamp".into(), 2).await.unwrap();
    assert_eq!(
        order,
        Order {
            payment: "pay-500".into(),
            parcel: 99,
            total: 500
        }
    );
    assert_eq!(
        world.entries(),
        [
            "reserve lamp x2",
            "quote #1002",
            "charge 500",
            "ship for pay-500",
            "notify parcel 99"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_pivot_undoes_compensatable_steps_in_reverse_and_skips_read_only_ones() {
    let world = World::failing("ship");
    let err = place_order(&world, "lamp".into(), 2).await.unwrap_err();
    assert_eq!(err.failed_step(), "ship");
    assert_eq!(err.cause(), Some(&Oops("ship refused".into())));
    assert!(err.is_compensated());
    assert_eq!(err.undone(), ["charge", "reserve"]);
    assert!(err.failed_compensations().is_empty());
    // Each compensation got its step's arguments, evaluated again, and its output.
    assert_eq!(
        world.entries(),
        [
            "reserve lamp x2",
            "quote #1002",
            "charge 500",
            "undo charge 500 pay-500",
            "undo reserve lamp x2 #1002"
        ]
    );
    assert_eq!(
        err.to_string(),
        "saga step `ship` failed (ship refused); undone: `charge`, `reserve`"
    );
    assert_eq!(err.report().outcome(), RunOutcome::Compensated);
    let steps: Vec<_> = err
        .report()
        .steps()
        .map(|r| (r.step(), r.outcome(), r.attempts()))
        .collect();
    assert_eq!(
        steps,
        [
            ("reserve", Outcome::Succeeded, 1),
            ("quote_price", Outcome::Succeeded, 1),
            ("charge", Outcome::Succeeded, 1),
            ("ship", Outcome::Failed, 1)
        ]
    );
    let order: Vec<_> = err
        .report()
        .records()
        .iter()
        .map(|r| r.function())
        .collect();
    assert_eq!(
        order,
        [
            "reserve",
            "quote_price",
            "charge",
            "ship",
            "refund",
            "unreserve"
        ]
    );
    let comps: Vec<_> = err
        .report()
        .compensations()
        .map(|r| (r.step(), r.function(), r.outcome()))
        .collect();
    assert_eq!(
        comps,
        [
            ("charge", "refund", Outcome::Succeeded),
            ("reserve", "unreserve", Outcome::Succeeded)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_first_step_has_nothing_to_undo() {
    let world = World::failing("reserve");
    let err = place_order(&world, "lamp".into(), 1).await.unwrap_err();
    assert_eq!(err.failed_step(), "reserve");
    assert!(err.undone().is_empty());
    assert!(world.entries().is_empty());
    assert_eq!(
        err.to_string(),
        "saga step `reserve` failed (reserve refused); nothing had to be undone"
    );
}

#[tokio::test(start_paused = true)]
async fn a_read_only_step_failing_undoes_what_came_before() {
    let world = World::failing("quote_price");
    let err = place_order(&world, "desk".into(), 1).await.unwrap_err();
    assert_eq!(err.failed_step(), "quote_price");
    assert_eq!(err.undone(), ["reserve"]);
    assert_eq!(
        world.entries(),
        ["reserve desk x1", "undo reserve desk x1 #1001"]
    );
}

#[tokio::test(start_paused = true)]
async fn retries_are_counted_and_a_step_that_recovers_in_time_succeeds() {
    let world = World::failing("charge");
    world.failures_left.store(2, Ordering::SeqCst);
    let (result, report) = Runner::new()
        .run_reported(PlaceOrderSaga::new(&world, "lamp".into(), 1))
        .await;
    assert!(result.is_ok(), "{result:?}");
    let charge = report.find("charge", Phase::Forward).unwrap();
    assert_eq!(charge.attempts(), 3);
    assert_eq!(charge.outcome(), Outcome::Succeeded);
    assert_eq!(charge.error(), Some("charge flaked"));
    assert_eq!(report.outcome(), RunOutcome::Committed);
    assert_eq!(report.steps().count(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_step_that_exhausts_its_retries_fails_for_good() {
    let world = World::failing("charge");
    world.failures_left.store(3, Ordering::SeqCst);
    let err = place_order(&world, "lamp".into(), 1).await.unwrap_err();
    assert_eq!(err.failed_step(), "charge");
    let record = err.report().find("charge", Phase::Forward).unwrap();
    assert_eq!(record.attempts(), 3, "one attempt and `max = 2` retries");
    assert_eq!(record.outcome(), Outcome::Failed);
    assert_eq!(err.undone(), ["reserve"]);
}

#[tokio::test(start_paused = true)]
async fn after_the_pivot_a_retriable_step_is_retried_until_it_succeeds() {
    let world = World::failing("notify");
    world.failures_left.store(6, Ordering::SeqCst);
    let started = tokio::time::Instant::now();
    let (result, report) = Runner::new()
        .run_reported(PlaceOrderSaga::new(&world, "lamp".into(), 1))
        .await;
    assert!(result.is_ok());
    assert_eq!(report.find("notify", Phase::Forward).unwrap().attempts(), 7);
    assert!(report.compensations().next().is_none());
    // Backoff 1s doubling, capped at 4s, with equal jitter: at least half of each.
    let waited = started.elapsed();
    let floor = Duration::from_millis(500 + 1000 + 2000 + 2000 + 2000 + 2000);
    let ceiling = Duration::from_millis(1000 + 2000 + 4000 + 4000 + 4000 + 4000);
    assert!(
        waited >= floor && waited <= ceiling,
        "waited {waited:?}, expected between {floor:?} and {ceiling:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_compensation_that_keeps_failing_is_recorded_and_earlier_steps_are_still_undone() {
    let world = World::failing("ship");
    *world.undo_fails.lock().unwrap() = Some("charge");
    let err = place_order(&world, "lamp".into(), 2).await.unwrap_err();
    assert!(!err.is_compensated());
    assert!(matches!(err, SagaError::CompensationFailed { .. }));
    assert_eq!(err.failed_step(), "ship");
    assert_eq!(err.undone(), ["reserve"]);
    let failed = err.failed_compensations();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].step(), "charge");
    assert_eq!(failed[0].compensation(), "refund");
    assert_eq!(failed[0].error(), "cannot undo charge");
    assert_eq!(failed[0].attempts(), 6, "default policy: 5 retries");
    let attempts_logged = world
        .entries()
        .iter()
        .filter(|e| *e == "undo charge failed")
        .count();
    assert_eq!(attempts_logged, 6);
    assert_eq!(
        world.entries().last().unwrap(),
        "undo reserve lamp x2 #1002"
    );
    assert_eq!(err.report().outcome(), RunOutcome::CompensationFailed);
    assert_eq!(
        err.to_string(),
        "saga step `ship` failed (ship refused); could not undo `charge` (cannot undo charge), which needs manual repair; undone: `reserve`"
    );
}

// --- timeouts, panics, arguments evaluated again, error conversion ---

#[derive(Debug)]
enum AppError {
    Step(Oops),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Step(e) => write!(f, "app: {e}"),
        }
    }
}

impl std::error::Error for AppError {}

impl From<Oops> for AppError {
    fn from(e: Oops) -> Self {
        AppError::Step(e)
    }
}

#[step(compensate = release, retry = 1)]
async fn hold(world: &World, token: u32) -> Result<u32, Oops> {
    let attempt = StepContext::current().map(|c| c.attempt()).unwrap_or(0);
    world.log(format!("hold {token} attempt {attempt}"));
    if attempt == 1 {
        return Err(Oops("busy".into()));
    }
    Ok(token)
}

async fn release(world: &World, token: u32, held: &u32) -> Result<(), Oops> {
    let cx = StepContext::current().unwrap();
    assert_eq!(cx.phase(), Phase::Compensation);
    world.undo("hold", format!("{token} {held}"))
}

#[step(compensate = never_called, timeout = "2s")]
async fn slow(world: &World, mode: &str) -> Result<(), Oops> {
    world.log(format!("slow {mode}"));
    match mode {
        "sleep" => tokio::time::sleep(Duration::from_secs(60)).await,
        "panic" => panic!("slow step exploded"),
        _ => {}
    }
    Ok(())
}

async fn never_called(_: &World, _: &str, _: &()) -> Result<(), Oops> {
    unreachable!("a step that failed is never compensated")
}

#[saga]
async fn guarded(world: &World, mode: String) -> Result<u32, AppError> {
    let held = hold(world, world.evaluated()).await?;
    slow(world, &mode).await?;
    Ok(held)
}

#[tokio::test(start_paused = true)]
async fn a_timeout_fails_the_step_without_a_cause_and_compensates() {
    let world = World::default();
    let err = guarded(&world, "sleep".into()).await.unwrap_err();
    assert_eq!(err.failed_step(), "slow");
    assert!(err.cause().is_none());
    assert!(matches!(
        err.failure(),
        StepFailure::TimedOut { after } if *after == Duration::from_secs(2)
    ));
    assert_eq!(err.undone(), ["hold"]);
    assert_eq!(
        err.report().find("slow", Phase::Forward).unwrap().outcome(),
        Outcome::TimedOut
    );
    assert!(err.to_string().contains("timed out after 2s"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_step_is_caught_and_the_saga_compensates() {
    let world = World::default();
    let err = guarded(&world, "panic".into()).await.unwrap_err();
    assert_eq!(err.failed_step(), "slow");
    match err.failure() {
        StepFailure::Panicked { message } => assert_eq!(message, "slow step exploded"),
        other => panic!("expected a panic, got {other:?}"),
    }
    assert_eq!(err.undone(), ["hold"]);
}

#[tokio::test(start_paused = true)]
async fn arguments_are_evaluated_again_for_each_attempt_and_for_the_compensation() {
    let world = World::default();
    let err = guarded(&world, "sleep".into()).await.unwrap_err();
    // `hold` ran twice (retry = 1) and was compensated once.
    assert_eq!(world.evaluations.load(Ordering::SeqCst), 3);
    assert_eq!(
        world.entries(),
        [
            "hold 7 attempt 1",
            "hold 7 attempt 2",
            "slow sleep",
            "undo hold 7 7"
        ]
    );
    // `?` converted the step's error into the saga's error type.
    let _: Option<&AppError> = err.cause();
}

#[tokio::test(start_paused = true)]
async fn a_step_error_is_converted_like_question_mark_would() {
    #[step(read_only)]
    async fn refuse() -> Result<(), Oops> {
        Err(Oops("no".into()))
    }
    #[saga]
    async fn refuses() -> Result<(), AppError> {
        refuse().await?;
        Ok(())
    }
    let err = refuses().await.unwrap_err();
    assert!(matches!(err.cause(), Some(AppError::Step(Oops(s))) if s == "no"));
    let source = std::error::Error::source(&err).expect("the cause is the source");
    assert_eq!(source.to_string(), "app: no");
}

// --- hooks and contexts ---

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
    keys: Mutex<Vec<String>>,
}

impl Recorder {
    fn push(&self, e: String) {
        self.events.lock().unwrap().push(e);
    }
}

impl Hooks for Recorder {
    fn saga_started(&self, saga: &'static str, _: sagaflow::SagaId) {
        self.push(format!("saga {saga} started"));
    }
    fn step_started(&self, cx: &StepContext) {
        self.keys
            .lock()
            .unwrap()
            .push(cx.idempotency_key().to_string());
        self.push(format!("{} #{} started", cx.step(), cx.attempt()));
    }
    fn step_succeeded(&self, cx: &StepContext, _: Duration) {
        self.push(format!("{} succeeded", cx.step()));
    }
    fn step_retrying(&self, cx: &StepContext, error: &str, _: Duration) {
        self.push(format!("{} retrying after {error}", cx.step()));
    }
    fn step_failed(&self, cx: &StepContext, error: &str) {
        self.push(format!("{} failed: {error}", cx.step()));
    }
    fn compensation_started(&self, cx: &StepContext) {
        self.push(format!("undo {} #{} started", cx.step(), cx.attempt()));
    }
    fn compensation_succeeded(&self, cx: &StepContext, _: Duration) {
        self.push(format!("undo {} succeeded", cx.step()));
    }
    fn compensation_retrying(&self, cx: &StepContext, error: &str, _: Duration) {
        self.push(format!("undo {} retrying after {error}", cx.step()));
    }
    fn compensation_failed(&self, cx: &StepContext, error: &str) {
        self.push(format!("undo {} failed: {error}", cx.step()));
    }
    fn saga_finished(&self, report: &RunReport) {
        self.push(format!("saga finished {:?}", report.outcome()));
    }
}

#[tokio::test(start_paused = true)]
async fn hooks_see_every_transition_in_order() {
    let world = World::default();
    let recorder = Recorder::default();
    let runner = Runner::new().with_hooks(&recorder);
    let _ = runner
        .run(GuardedSaga::new(&world, "sleep".into()))
        .await
        .unwrap_err();
    assert_eq!(
        *recorder.events.lock().unwrap(),
        [
            "saga guarded started",
            "hold #1 started",
            "hold retrying after busy",
            "hold #2 started",
            "hold succeeded",
            "slow #1 started",
            "slow failed: timed out after 2s",
            "undo hold #1 started",
            "undo hold succeeded",
            "saga finished Compensated",
        ]
    );
    let keys = recorder.keys.lock().unwrap();
    assert_eq!(
        keys[0], keys[1],
        "the idempotency key is stable across retries"
    );
    assert_ne!(keys[0], keys[2], "and differs between steps");
}

#[tokio::test(start_paused = true)]
async fn a_run_under_a_given_id_shows_it_to_its_steps() {
    #[step(read_only)]
    async fn whoami() -> Result<String, Oops> {
        let cx = StepContext::current().expect("inside a saga");
        Ok(format!(
            "{} {} {}",
            cx.saga(),
            cx.step(),
            cx.idempotency_key()
        ))
    }
    #[saga]
    async fn identify() -> Result<String, Oops> {
        let me = whoami().await?;
        Ok(me)
    }
    let id = sagaflow::SagaId::from_u128(0x2a);
    let out = Runner::new()
        .run_with_id(IdentifySaga::new(), id)
        .await
        .unwrap();
    assert_eq!(out, "identify whoami 0000000000000000000000000000002a-0");
    assert!(StepContext::current().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_spawn_by_the_thousand() {
    static WORLD: std::sync::LazyLock<World> = std::sync::LazyLock::new(World::default);
    let tasks: Vec<_> = (0..2000u32)
        .map(|i| tokio::spawn(place_order(&WORLD, format!("item{i}"), 1)))
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(WORLD.entries().len(), 2000 * 5);
}

#[test]
fn the_graph_lists_steps_kinds_and_compensations() {
    use sagaflow::StepKind;
    let graph = PlaceOrderSaga::graph();
    assert_eq!(graph.name(), "place_order");
    let steps: Vec<_> = graph
        .steps()
        .iter()
        .map(|s| (s.name(), s.kind(), s.compensation()))
        .collect();
    assert_eq!(
        steps,
        [
            ("reserve", StepKind::Compensatable, Some("unreserve")),
            ("quote_price", StepKind::ReadOnly, None),
            ("charge", StepKind::Compensatable, Some("refund")),
            ("ship", StepKind::Pivot, None),
            ("notify", StepKind::Retriable, None),
        ]
    );
    assert_eq!(graph.pivot(), Some(3));
    assert_eq!(graph.steps()[2].retry().max_retries(), Some(2));
    assert_eq!(graph.steps()[4].retry().max_retries(), None);
    assert_eq!(
        graph.steps()[4].retry().max_backoff(),
        Duration::from_secs(4)
    );
}

#[tokio::test(start_paused = true)]
async fn a_step_stays_callable_on_its_own() {
    let world = World::default();
    assert_eq!(reserve(&world, "cup", 3).await.unwrap(), 1003);
    unreserve(&world, "cup", 3, &1003).await.unwrap();
    assert_eq!(
        world.entries(),
        ["reserve cup x3", "undo reserve cup x3 #1003"]
    );
}

/// A value that logs when it is dropped, so a test can see how long the saga
/// held it.
struct Tracked {
    world: std::sync::Arc<World>,
    name: &'static str,
    value: u64,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.world.log(format!("drop {}", self.name));
    }
}

#[step(compensate = unlog)]
async fn log_step(world: &World, name: &'static str, value: u64) -> Result<u64, Oops> {
    world.maybe_fail(name)?;
    world.log(format!("{name} {value}"));
    Ok(value + 1)
}

async fn unlog(world: &World, name: &'static str, _: u64, _: &u64) -> Result<(), Oops> {
    world.undo(name, String::new())
}

#[saga]
async fn holding(world: &World, ticket: Tracked) -> Result<u64, Oops> {
    // `ticket` is read only here, `stub` only by the first step's arguments,
    // which its compensation evaluates again.
    let n: u64 = ticket.value;
    let stub: u64 = n * 10;
    let first = log_step(world, "first", stub).await?;
    let second = log_step(world, "second", first).await?;
    Ok(second)
}

#[tokio::test(start_paused = true)]
async fn a_value_nothing_reads_any_more_is_dropped_where_it_was_last_needed() {
    let world = std::sync::Arc::new(World::default());
    let ticket = Tracked {
        world: world.clone(),
        name: "ticket",
        value: 4,
    };
    assert_eq!(holding(&world, ticket).await.unwrap(), 42);
    assert_eq!(world.entries(), ["drop ticket", "first 40", "second 41"]);

    // On failure too; the compensation still sees what it needs.
    let world = std::sync::Arc::new(World::failing("second"));
    let ticket = Tracked {
        world: world.clone(),
        name: "ticket",
        value: 4,
    };
    let error = holding(&world, ticket).await.unwrap_err();
    assert!(error.is_compensated());
    assert_eq!(world.entries(), ["drop ticket", "first 40", "undo first "]);
}

// --- a compensation that hangs ---

#[step(compensate = unlock_door, compensate_timeout = "50ms", compensate_retry(max = 1, backoff = "10ms"))]
async fn lock_door(world: &World, door: u32) -> Result<u32, Oops> {
    world.log(format!("lock {door}"));
    Ok(door)
}

/// Hangs on its first attempt, as a compensation behind a dead connection
/// would, unless `undo_fails` names the door step, in which case it hangs always.
async fn unlock_door(world: &World, door: u32, _: &u32) -> Result<(), Oops> {
    let attempt = StepContext::current().map(|c| c.attempt()).unwrap_or(0);
    world.log(format!("unlock {door} attempt {attempt}"));
    if attempt == 1 || *world.undo_fails.lock().unwrap() == Some("lock_door") {
        std::future::pending::<()>().await;
    }
    world.log(format!("unlocked {door}"));
    Ok(())
}

#[saga]
async fn enter(world: &World, door: u32) -> Result<u32, Oops> {
    let locked = lock_door(world, door).await?;
    let second = log_step(world, "second", u64::from(locked)).await?;
    Ok(locked + second as u32)
}

#[tokio::test(start_paused = true)]
async fn a_compensation_that_hangs_times_out_and_is_retried() {
    let world = World::failing("second");
    let err = enter(&world, 7).await.unwrap_err();
    assert!(err.is_compensated(), "{err}");
    assert_eq!(err.undone(), ["lock_door"]);
    assert_eq!(
        world.entries(),
        [
            "lock 7",
            "unlock 7 attempt 1",
            "unlock 7 attempt 2",
            "unlocked 7"
        ]
    );
    let undo = err.report().compensations().next().unwrap();
    assert_eq!(undo.attempts(), 2);
    assert_eq!(undo.error(), Some("timed out after 50ms"));
}

#[tokio::test(start_paused = true)]
async fn a_compensation_that_always_hangs_is_recorded_as_timed_out() {
    let world = World::failing("second");
    *world.undo_fails.lock().unwrap() = Some("lock_door");
    let started = tokio::time::Instant::now();
    let err = enter(&world, 7).await.unwrap_err();
    assert!(!err.is_compensated());
    let failed = err.failed_compensations();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].compensation(), "unlock_door");
    assert_eq!(failed[0].error(), "timed out after 50ms");
    assert_eq!(failed[0].attempts(), 2);
    let undo = err.report().compensations().next().unwrap();
    assert_eq!(undo.outcome(), Outcome::TimedOut);
    // Two attempts of 50ms and one wait of 5..10ms between them.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(105) && waited <= Duration::from_millis(111),
        "{waited:?}"
    );
}
