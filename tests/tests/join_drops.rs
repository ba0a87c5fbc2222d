//! `sagaflow::join!` members' hand-written future (`MemberFuture`, with its
//! `ptr::read`s and in-place drops): every step future and every output is
//! dropped exactly once, whichever way the group ends — finished, failed,
//! panicked while polled, panicked in a drop, or dropped half way.

use std::future::{Future, IntoFuture, poll_fn};
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll};
use std::time::Duration;

use sagaflow::__private::{Group, JoinAll, Joinable, Run};
use sagaflow::{Hooks, Runner, Saga, SagaError, StepFailure, StepInfo, saga, step};

type Oops = &'static str;

/// How many values of one kind were made, and how many dropped.
struct Count {
    made: AtomicUsize,
    dropped: AtomicUsize,
}

impl Count {
    const fn new() -> Self {
        Count {
            made: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        }
    }
    fn get(&self) -> (usize, usize) {
        (self.made.load(SeqCst), self.dropped.load(SeqCst))
    }
}

/// A counted value (a step's output, or a local inside a step's future);
/// a bomb's drop panics, after counting.
struct Token(&'static Count, bool);

impl Token {
    fn new(count: &'static Count) -> Self {
        Token::made(count, false)
    }
    fn bomb(count: &'static Count) -> Self {
        Token::made(count, true)
    }
    fn made(count: &'static Count, bomb: bool) -> Self {
        count.made.fetch_add(1, SeqCst);
        Token(count, bomb)
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        self.0.dropped.fetch_add(1, SeqCst);
        assert!(!self.1, "bomb dropped");
    }
}

/// One test's counters: `quick`'s outputs and the token inside its future,
/// the sibling's, and what ran.
struct World {
    out: Count,
    quick_in: Count,
    other_out: Count,
    other_in: Count,
    log: Mutex<Vec<&'static str>>,
}

/// A test's world, by value: `#[saga]` gives a reference parameter a
/// lifetime of its own, and the tokens keep `'static` ones.
#[derive(Clone, Copy)]
struct W(&'static World);

impl World {
    const fn new() -> Self {
        World {
            out: Count::new(),
            quick_in: Count::new(),
            other_out: Count::new(),
            other_in: Count::new(),
            log: Mutex::new(Vec::new()),
        }
    }
    fn log(&self, entry: &'static str) {
        self.log.lock().unwrap().push(entry);
    }
    fn entries(&self) -> Vec<&'static str> {
        self.log.lock().unwrap().clone()
    }
}

#[step(compensate = undo_quick)]
async fn quick(w: W) -> Result<Token, Oops> {
    let _inner = Token::new(&w.0.quick_in);
    w.0.log("quick");
    Ok(Token::new(&w.0.out))
}

async fn undo_quick(w: W, _out: &Token) -> Result<(), Oops> {
    w.0.log("undo quick");
    Ok(())
}

async fn undo_other(w: W, _out: &Token) -> Result<(), Oops> {
    w.0.log("undo other");
    Ok(())
}

/// Never finishes, holding a token: the plain first attempt, pending.
#[step(compensate = undo_other)]
async fn stuck(w: W) -> Result<Token, Oops> {
    let _inner = Token::new(&w.0.other_in);
    std::future::pending::<()>().await;
    Ok(Token::new(&w.0.other_out))
}

/// The same with a timeout: the decorated first attempt, pending.
#[step(compensate = undo_other, timeout = "1h")]
async fn stuck_timed(w: W) -> Result<Token, Oops> {
    let _inner = Token::new(&w.0.other_in);
    std::future::pending::<()>().await;
    Ok(Token::new(&w.0.other_out))
}

/// Fails its first attempt, then waits an hour to retry: the long way.
#[step(compensate = undo_other, retry(max = 1, backoff = "1h"))]
async fn flaky(w: W) -> Result<Token, Oops> {
    let _inner = Token::new(&w.0.other_in);
    w.0.log("flaky");
    Err("flaky refused")
}

#[step(compensate = undo_other)]
async fn boom(w: W) -> Result<Token, Oops> {
    let _inner = Token::new(&w.0.other_in);
    panic!("boom while polled")
}

/// Builds its output, then a local's drop panics as the body ends.
#[step(compensate = undo_other)]
async fn drop_boom(w: W) -> Result<Token, Oops> {
    let _bomb = Token::bomb(&w.0.other_in);
    Ok(Token::new(&w.0.other_out))
}

/// Never finishes, holding a value whose drop panics.
#[step(compensate = undo_other)]
async fn stuck_bomb(w: W) -> Result<Token, Oops> {
    let _bomb = Token::bomb(&w.0.other_in);
    std::future::pending::<()>().await;
    Ok(Token::new(&w.0.other_out))
}

/// `quick` beside each other step, in a group.
macro_rules! pairs {
    ($($saga:ident: $other:ident),*) => {$(
        #[saga]
        async fn $saga(w: W) -> Result<(), Oops> {
            let (_q, _s) = sagaflow::join!(quick(w), $other(w))?;
            Ok(())
        }
    )*};
}

pairs!(plain_pair: stuck, timed_pair: stuck_timed, retry_pair: flaky, panic_pair: boom,
    drop_panic_pair: drop_boom, bomb_pair: stuck_bomb);

/// Runs `saga` for a second of the paused clock, then drops it: `quick` has
/// finished (not taken), its sibling has not.
async fn drop_mid_group(w: &'static World, saga: impl IntoFuture) {
    let ran = tokio::time::timeout(Duration::from_secs(1), saga).await;
    assert!(ran.is_err(), "the group never ends");
    assert_eq!(w.out.get(), (1, 1), "quick's output, finished, not taken");
    assert_eq!(w.quick_in.get(), (1, 1));
    assert_eq!(w.other_in.get(), (1, 1), "the pending sibling's future");
    assert_eq!(w.other_out.get(), (0, 0));
    assert!(!w.entries().iter().any(|e| e.starts_with("undo")));
}

#[tokio::test(start_paused = true)]
async fn dropped_mid_group_plain_first_attempt() {
    static WORLD: World = World::new();
    drop_mid_group(&WORLD, plain_pair(W(&WORLD))).await;
}

#[tokio::test(start_paused = true)]
async fn dropped_mid_group_decorated_first_attempt() {
    static WORLD: World = World::new();
    drop_mid_group(&WORLD, timed_pair(W(&WORLD))).await;
}

#[tokio::test(start_paused = true)]
async fn dropped_mid_group_in_a_retry_backoff() {
    static WORLD: World = World::new();
    drop_mid_group(&WORLD, retry_pair(W(&WORLD))).await;
    assert_eq!(WORLD.entries(), ["quick", "flaky"], "then the backoff");
}

#[tokio::test]
async fn a_member_panicking_while_polled_fails_the_saga_and_undoes_its_sibling() {
    static WORLD: World = World::new();
    let err: SagaError<Oops> = panic_pair(W(&WORLD)).await.unwrap_err();
    assert_eq!(err.failed_step(), "boom");
    match err.failure() {
        StepFailure::Panicked { message } => assert_eq!(message, "boom while polled"),
        other => panic!("expected a panic, got {other:?}"),
    }
    assert!(err.is_compensated(), "{err}");
    assert_eq!(err.undone(), ["quick"]);
    assert_eq!(WORLD.entries(), ["quick", "undo quick"]);
    assert_eq!(WORLD.out.get(), (1, 1), "quick's output, after its undo");
    assert_eq!(WORLD.other_in.get(), (1, 1), "by the unwinding");
    assert_eq!(WORLD.other_out.get(), (0, 0));
}

#[tokio::test]
async fn a_drop_panicking_as_a_member_finishes_is_its_failure() {
    static WORLD: World = World::new();
    let err: SagaError<Oops> = drop_panic_pair(W(&WORLD)).await.unwrap_err();
    assert_eq!(err.failed_step(), "drop_boom");
    match err.failure() {
        StepFailure::Panicked { message } => assert_eq!(message, "bomb dropped"),
        other => panic!("expected a panic, got {other:?}"),
    }
    assert_eq!(err.undone(), ["quick"]);
    assert_eq!(WORLD.entries(), ["quick", "undo quick"]);
    assert_eq!(WORLD.out.get(), (1, 1));
    assert_eq!(WORLD.other_in.get(), (1, 1));
    // The output built before the panic is never dropped twice; rustc leaks
    // a return value when a local's drop panics (rust-lang/rust#47949), in
    // a plain `fn` as in an `async fn`, so it may not be dropped at all.
    let (made, dropped) = WORLD.other_out.get();
    assert!(made == 1 && dropped <= 1, "{made} made, {dropped} dropped");
}

/// Polls `future`, turning a panic out of its poll into its message.
async fn caught<F: Future>(future: F) -> Result<F::Output, String> {
    let mut future = pin!(future);
    poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(polled) => polled.map(Ok),
            Err(payload) => Poll::Ready(Err(message(payload))),
        },
    )
    .await
}

fn message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<&'static str>() {
        Ok(s) => (*s).to_owned(),
        Err(payload) => *payload.downcast::<String>().unwrap(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_saga_dropped_mid_group_whose_pending_member_panics_in_drop() {
    static WORLD: World = World::new();
    let mut saga = Box::pin(bomb_pair(W(&WORLD)).into_future());
    let polled = poll_fn(|cx| Poll::Ready(saga.as_mut().poll(cx).is_pending())).await;
    assert!(polled, "the group never ends");
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(saga)));
    assert_eq!(message(dropped.unwrap_err()), "bomb dropped");
    assert_eq!(WORLD.other_in.get(), (1, 1), "the bomb, dropped once");
    assert_eq!(WORLD.out.get(), (1, 1), "the finished sibling");
    assert_eq!(WORLD.quick_in.get(), (1, 1));
}

// --- straight on the members, as the generated code uses them ---

/// A step's future whose first poll is ready, and whose drop panics: on the
/// plain path the member drops it in place, in `after_first`.
struct ReadyThenBomb(&'static World);

impl Future for ReadyThenBomb {
    type Output = Result<Token, Oops>;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(Token::new(&self.0.out)))
    }
}

impl Drop for ReadyThenBomb {
    fn drop(&mut self) {
        self.0.quick_in.dropped.fetch_add(1, SeqCst);
        panic!("finished future dropped");
    }
}

#[derive(Clone, Copy)]
enum How {
    /// Poll a member whose finished future panics in its drop.
    DropPanicsAfterReady,
    /// Take a member's output before it was polled.
    TakeEarly,
    /// Take a member's output twice.
    TakeTwice,
}

/// A saga written by hand around two members.
struct Direct(&'static World, How);

impl Saga for Direct {
    type Output = ();
    type Error = Oops;
    const NAME: &'static str = "direct";
    const STEPS: &'static [StepInfo] = &[<quick as sagaflow::Step>::INFO; 2];

    fn __sagaflow_drive<H: Hooks>(
        self,
        run: &mut Run<'_, H>,
    ) -> impl Future<Output = Result<(), SagaError<Oops>>> {
        let Direct(w, how) = self;
        async move {
            let group = Group::new();
            let shared = &*run;
            let (mut bomb, mut plain) = (|| ReadyThenBomb(w), || quick(W(w)));
            let mut late = || stuck(W(w));
            match how {
                How::DropPanicsAfterReady => {
                    let b = shared.member(PhantomData::<stuck>, 1, &group, &mut late);
                    let a = shared.member(PhantomData::<quick>, 0, &group, &mut bomb);
                    // The pending member first, so that it has a future to drop.
                    JoinAll((b, a)).await;
                }
                How::TakeEarly => {
                    let mut a = pin!(shared.member(PhantomData::<quick>, 0, &group, &mut plain));
                    drop(Joinable::take(a.as_mut()));
                }
                How::TakeTwice => {
                    let mut a = pin!(shared.member(PhantomData::<quick>, 0, &group, &mut plain));
                    let mut q = || quick(W(w));
                    let mut b = pin!(shared.member(PhantomData::<quick>, 1, &group, &mut q));
                    poll_fn(|cx| {
                        let done = a.as_mut().poll_done(cx) & b.as_mut().poll_done(cx);
                        if done { Poll::Ready(()) } else { Poll::Pending }
                    })
                    .await;
                    drop(Joinable::take(a.as_mut()));
                    assert_eq!(w.out.get(), (2, 1), "the taken output, dropped");
                    let done = poll_fn(|cx| Poll::Ready(a.as_mut().poll_done(cx))).await;
                    assert!(done, "a taken member stays finished");
                    drop(Joinable::take(a.as_mut()));
                }
            }
            Ok(())
        }
    }
}

async fn direct(w: &'static World, how: How) -> String {
    let ran = caught(Runner::new().run(Direct(w, how))).await;
    ran.expect_err("the member panicked")
}

#[tokio::test]
async fn a_finished_future_panicking_in_its_drop_leaves_the_output_dropped_once() {
    static WORLD: World = World::new();
    let message = direct(&WORLD, How::DropPanicsAfterReady).await;
    assert_eq!(message, "finished future dropped");
    // Dropped once: a second drop would panic while unwinding, an abort.
    assert_eq!(WORLD.quick_in.get(), (0, 1), "the future");
    assert_eq!(WORLD.out.get(), (1, 1), "its output");
    assert_eq!(WORLD.other_in.get(), (1, 1), "the pending sibling");
}

#[tokio::test]
async fn taking_a_member_before_it_finished_is_a_panic() {
    static WORLD: World = World::new();
    let message = direct(&WORLD, How::TakeEarly).await;
    assert!(message.contains("taken once, after it"), "{message}");
    assert_eq!(WORLD.out.get(), (0, 0));
    assert_eq!(WORLD.quick_in.get(), (0, 0), "never started");
}

#[tokio::test]
async fn taking_a_member_twice_is_a_panic_and_drops_nothing_twice() {
    static WORLD: World = World::new();
    let message = direct(&WORLD, How::TakeTwice).await;
    assert!(message.contains("taken once, after it"), "{message}");
    // `a`'s output taken and dropped, `b`'s dropped with its member.
    assert_eq!(WORLD.out.get(), (2, 2));
    assert_eq!(WORLD.quick_in.get(), (2, 2));
}
