//! A group member's future, written by hand: one layer between the group's
//! poll and the step's own future on the default path (in memory, no timeout,
//! nobody listening to spans), where two nested `async fn`s and a slot for
//! the output (`Joined`) used to be.
//!
//! ```text
//! Start ──plain──▶ First { step's future, context } ──ok──▶ Done(Member)
//!   │                        └──failed──▶ Long (boxed retries) ──▶ Done
//!   ├──timeout or span──▶ Decorated (first attempt as an async fn) ──ok──▶ Done
//!   │                        └──failed──▶ Long
//!   └──durable, test kit or outbox──▶ Long
//! ```
//! Every state but `Long` is inline, so the success path allocates nothing.

use core::future::Future;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::panic::AssertUnwindSafe;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::time::Instant;

use super::member::{Member, Tally};
use crate::context::{Phase, StepContext};
use crate::durable::journal::Journal;
use crate::error::StepFailure;
use crate::hooks::Hooks;
use crate::run::attempts::panic_message;
use crate::run::{Group, Run};
use crate::step::Step;

/// What a member's future is doing.
enum Stage<Fut, A, L, M> {
    /// Not polled yet.
    Start,
    /// The plain first attempt: the step's future, under its context.
    First { future: Fut, cx: StepContext },
    /// The first attempt with a timeout or a span.
    Decorated(A),
    /// The retry machinery (boxed), or a durable or test-kit run.
    Long(L),
    /// Finished: what `Run::settle` takes.
    Done(M),
    /// Taken by [`Joinable::take`].
    Taken,
}

/// A member of a group polled with its siblings: [`JoinAll`](super::JoinAll)
/// polls it with [`Joinable::poll_done`] until it has finished, then takes its
/// output with [`Joinable::take`].
#[doc(hidden)]
pub trait Joinable {
    /// What the member leaves once finished.
    type Output;
    /// Polls unless finished; whether it has finished.
    fn poll_done(self: Pin<&mut Self>, cx: &mut Context<'_>) -> bool;
    /// The output, once [`poll_done`](Self::poll_done) said it finished.
    fn take(self: Pin<&mut Self>) -> Self::Output;
}

impl<Fut, A, L, M> Stage<Fut, A, L, M> {
    /// Writes `wrap(value)` over a `First` stage whose future has finished:
    /// drops that future in place, inline (its context needs no drop), where
    /// an assignment would call the whole stage's drop glue out of line
    /// (about 15 instructions a member, twice). The next stage is built at its
    /// place from the small `value`: a whole stage built beforehand and
    /// moved in would be copied at the size of the largest stage (the
    /// decorated attempt), about 40 instructions a member. It is written
    /// even if the future's drop panics, as an assignment would.
    ///
    /// # Safety
    /// `self` is `First`, and pinned: its future is not moved.
    #[inline]
    unsafe fn after_first<V>(&mut self, value: V, wrap: fn(V) -> Self) {
        /// Writes `wrap(value)` into `place` when dropped, unwinding or not.
        struct Then<T, V> {
            place: *mut T,
            value: ManuallyDrop<V>,
            wrap: fn(V) -> T,
        }
        impl<T, V> Drop for Then<T, V> {
            #[inline]
            fn drop(&mut self) {
                // SAFETY: `place` is valid and its old future has been
                // dropped (or left, by a panicking drop, with nothing else
                // to drop); `value` is taken once.
                unsafe {
                    let value = ManuallyDrop::take(&mut self.value);
                    core::ptr::write(self.place, (self.wrap)(value))
                }
            }
        }
        let then = Then {
            place: self as *mut Self,
            value: ManuallyDrop::new(value),
            wrap,
        };
        // SAFETY: the caller says the stage is `First`; its future is
        // dropped in place, once, and `then` overwrites the stage. Its
        // context needs no drop (asserted below), so a panicking drop of the
        // future leaks nothing.
        unsafe {
            if let Stage::First { future, .. } = &mut *then.place {
                core::ptr::drop_in_place(future);
            }
        }
        drop(then);
    }
}

// `after_first` drops a finished attempt's future but not its context.
const _: () = assert!(!core::mem::needs_drop::<StepContext>());

/// A member's stage, for a step `S` whose first attempt is `Fut`.
type MemberStage<S, Fut, A, L> = Stage<Fut, A, L, Member<<S as Step>::Output, <S as Step>::Error>>;

/// One member's run: see the module's text for its states.
///
/// The stage is dropped by hand: a member that has been taken holds nothing,
/// and its drop is then a test inline instead of a call to the stage's drop
/// glue (about 19 instructions a member).
pub(super) struct MemberFuture<'r, 'h, H, J, S: Step, F, Fut, D, A, G, L> {
    parts: Parts<'r, 'h, H, J, S, F, Fut, D, A, G, L>,
    stage: ManuallyDrop<MemberStage<S, Fut, A, L>>,
}

impl<H, J, S: Step, F, Fut, D, A, G, L> Drop for MemberFuture<'_, '_, H, J, S, F, Fut, D, A, G, L> {
    #[inline]
    fn drop(&mut self) {
        if !matches!(*self.stage, Stage::Taken) {
            // SAFETY: the member is being dropped: its stage is not used
            // again.
            unsafe { drop_stage(&mut self.stage) };
        }
    }
}

/// Drops a member's stage that was not taken: a saga dropped while the group
/// ran, or a group that turned back before taking its members.
///
/// # Safety
/// Called at most once, and the stage is not used afterwards.
#[inline(never)]
unsafe fn drop_stage<T>(stage: &mut ManuallyDrop<T>) {
    // SAFETY: the caller drops the stage once; it is dropped in place, as it
    // is pinned.
    unsafe { ManuallyDrop::drop(stage) }
}

/// Names types a member's methods use, without owning any.
type Marker<T> = PhantomData<fn() -> T>;

/// What a member keeps beside its stage.
struct Parts<'r, 'h, H, J, S, F, Fut, D, A, G, L> {
    run: &'r Run<'h, H, J>,
    group: &'r Group,
    index: u32,
    started: Option<Instant>,
    /// The step's call; moved to `decorated` or `long` when they start.
    call: Option<F>,
    /// Starts the first attempt with a timeout or span. Captures nothing
    /// (it is given the run), so that building a member writes nothing for
    /// it; so does `long`.
    decorated: D,
    /// Starts the retry machinery, after a failed first attempt or at once.
    long: G,
    _types: Marker<(S, Fut, A, L)>,
}

impl<'r, 'h, H, J, S: Step, F, Fut, D, A, G, L> MemberFuture<'r, 'h, H, J, S, F, Fut, D, A, G, L> {
    /// A member not polled yet.
    #[inline]
    pub(super) fn new(
        run: &'r Run<'h, H, J>,
        group: &'r Group,
        index: u32,
        call: F,
        decorated: D,
        long: G,
    ) -> Self {
        MemberFuture {
            parts: Parts {
                run,
                group,
                index,
                started: None,
                call: Some(call),
                decorated,
                long,
                _types: PhantomData,
            },
            stage: ManuallyDrop::new(Stage::Start),
        }
    }
}

/// How a member's first poll goes on.
enum Begin {
    /// The plain first attempt, polled by the member.
    Plain(StepContext),
    /// The first attempt under a timeout or in a span.
    Decorated(StepContext, Option<tracing::Span>),
    /// The long way at once.
    Long,
}

impl<'r, 'h, H, J, S, F, Fut, D, A, G, L> Parts<'r, 'h, H, J, S, F, Fut, D, A, G, L>
where
    H: Hooks,
    J: Journal,
    S: Step,
    F: FnMut() -> Fut,
    G: Fn(
        &'r Run<'h, H, J>,
        u32,
        &'r Group,
        F,
        Option<StepFailure<S::Error>>,
        Option<Instant>,
    ) -> L,
{
    /// Which way the first attempt goes; tells the hooks it started unless
    /// it goes the long way (which tells them itself).
    #[inline]
    fn begin(&mut self) -> Begin {
        let run = self.run;
        // Written only in a run that keeps times: it is `None` already.
        if let Some(now) = run.now() {
            self.started = Some(now);
        }
        if J::DURABLE || J::FAULTS || run.outgoing.is_some() {
            return Begin::Long;
        }
        let cx = run.context(S::INFO.name(), self.index, 1, Phase::Forward);
        if !H::__SILENT {
            run.hooks.step_started(&cx);
        }
        let span = run.span_for(Phase::Forward, S::INFO.name(), "", 1);
        if span.is_some() || S::INFO.timeout().is_some() {
            Begin::Decorated(cx, span)
        } else {
            Begin::Plain(cx)
        }
    }

    /// The step's call, while no stage has taken it.
    #[inline]
    fn call(&mut self) -> F {
        match self.call.take() {
            Some(call) => call,
            None => unreachable!("a group member's call is taken by one stage at a time"),
        }
    }

    /// The retry machinery, after `first` failed (or at once if `None`).
    #[inline]
    fn long(&mut self, call: F, first: Option<StepFailure<S::Error>>) -> L {
        (self.long)(self.run, self.index, self.group, call, first, self.started)
    }

    /// Tells the hooks the plain first attempt succeeded.
    #[inline]
    fn succeeded(&self, cx: &StepContext) {
        if !H::__SILENT {
            let elapsed = self.started.map(|s| s.elapsed()).unwrap_or_default();
            self.run.hooks.step_succeeded(cx, elapsed);
        }
    }
}

impl<'r, 'h, H, J, S, F, Fut, D, A, G, L> Joinable
    for MemberFuture<'r, 'h, H, J, S, F, Fut, D, A, G, L>
where
    H: Hooks,
    J: Journal,
    S: Step,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<S::Output, S::Error>>,
    D: Fn(&'r Run<'h, H, J>, F, StepContext, Option<tracing::Span>, Option<Instant>) -> A,
    A: Future<Output = (F, Result<S::Output, StepFailure<S::Error>>)>,
    G: Fn(
        &'r Run<'h, H, J>,
        u32,
        &'r Group,
        F,
        Option<StepFailure<S::Error>>,
        Option<Instant>,
    ) -> L,
    L: Future<Output = Tally<S::Output, S::Error>> + Unpin,
{
    type Output = Member<S::Output, S::Error>;

    // Each stage is written in place, never returned by value: a stage is as
    // large as the largest (the decorated attempt), and moving it costs more
    // than the rest of the member. On the default path the old stage is known
    // (`Start`, then a finished `First`), so it is overwritten without its
    // drop glue.
    #[inline]
    fn poll_done(self: Pin<&mut Self>, task: &mut Context<'_>) -> bool {
        // SAFETY: only `stage` is structurally pinned (`MemberFuture` has no
        // `Unpin` impl of its own, so it is `Unpin` only when they are). The
        // futures in it are polled in place and dropped in place, by
        // `after_first` and the assignments to `*stage`, never moved out.
        let this = unsafe { self.get_unchecked_mut() };
        let (parts, stage) = (&mut this.parts, &mut *this.stage);
        if let Stage::Start = stage {
            match parts.begin() {
                Begin::Plain(cx) => {
                    let Some(call) = parts.call.as_mut() else {
                        unreachable!("a group member's call is kept until its first attempt")
                    };
                    let future = call();
                    // SAFETY: `Start` holds nothing to drop.
                    unsafe { core::ptr::write(stage, Stage::First { future, cx }) };
                }
                Begin::Decorated(cx, span) => {
                    let call = parts.call();
                    let first = (parts.decorated)(parts.run, call, cx, span, parts.started);
                    let next = Stage::Decorated(first);
                    // SAFETY: `Start` holds nothing to drop.
                    unsafe { core::ptr::write(stage, next) };
                }
                Begin::Long => {
                    let call = parts.call();
                    let next = Stage::Long(parts.long(call, None));
                    // SAFETY: `Start` holds nothing to drop.
                    unsafe { core::ptr::write(stage, next) };
                }
            }
        }
        // A test of its own, not an arm of the loop below: just after the
        // plain start above, the stage is known to be `First`, and the test
        // folds away (a `match` in the loop went through its jump table).
        if let Stage::First { future, cx } = stage {
            // SAFETY: see above.
            let future = unsafe { Pin::new_unchecked(future) };
            let polled = StepContext::enter(cx, || {
                std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(task)))
            });
            let failure = match polled {
                Ok(Poll::Pending) => return false,
                Ok(Poll::Ready(Ok(output))) => {
                    parts.succeeded(cx);
                    let done = Member::succeeded(output, parts.started);
                    // SAFETY: the stage is `First`, pinned.
                    unsafe { stage.after_first(done, Stage::Done) };
                    return true;
                }
                Ok(Poll::Ready(Err(error))) => StepFailure::Error(error),
                Err(payload) => StepFailure::Panicked {
                    message: panic_message(payload.as_ref()),
                },
            };
            let call = parts.call();
            let long = parts.long(call, Some(failure));
            // SAFETY: the stage is `First`, pinned.
            unsafe { stage.after_first(long, Stage::Long) };
        }
        loop {
            match stage {
                Stage::Decorated(first) => {
                    // SAFETY: see above.
                    let first = unsafe { Pin::new_unchecked(first) };
                    let Poll::Ready((call, outcome)) = first.poll(task) else {
                        return false;
                    };
                    match outcome {
                        Ok(output) => {
                            *stage = Stage::Done(Member::succeeded(output, parts.started));
                            return true;
                        }
                        Err(failure) => *stage = Stage::Long(parts.long(call, Some(failure))),
                    }
                }
                Stage::Long(long) => {
                    let Poll::Ready(tally) = Pin::new(long).poll(task) else {
                        return false;
                    };
                    *stage = Stage::Done(tally.into_member());
                    return true;
                }
                Stage::Done(_) | Stage::Taken => return true,
                Stage::Start | Stage::First { .. } => {
                    unreachable!("a group member's first attempt is started and polled above")
                }
            }
        }
    }

    #[inline]
    fn take(self: Pin<&mut Self>) -> Self::Output {
        // SAFETY: a finished stage holds no pinned future, and an unfinished
        // one is not moved.
        let this = unsafe { self.get_unchecked_mut() };
        let Stage::Done(member) = &mut *this.stage else {
            unreachable!("a group member's output is taken once, after it finished")
        };
        // SAFETY: the member is read out once, and the stage it was in is
        // overwritten at once without being dropped. A plain `mem::replace`
        // would copy the whole stage, as large as the largest.
        unsafe {
            let member = core::ptr::read(member);
            core::ptr::write(&mut *this.stage, Stage::Taken);
            member
        }
    }
}
