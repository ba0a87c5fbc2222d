//! A step's first attempt under its timeout, or under none: chosen by a type
//! that `#[step]` sets ([`Step::__SagaflowLimit`](crate::Step)), not by an
//! `if` on the step's declaration.
//!
//! rustc lays a future out before it folds constants: an attempt written as
//! `match S::INFO.timeout() { None => .., Some(after) => timeout(after, ..).await }`
//! keeps room for the timer's await (a tokio `Sleep`, about 110 bytes) in the
//! future of every step, timeout or not, and so in every saga's future. With
//! the limit a type, a step without a timeout has no timer in its layout.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

/// How a step's first attempt is limited in time: [`Untimed`] or [`Timed`].
pub trait Limit {
    /// `future` under the limit: `None` once its time is up.
    type Limited<G: Future>: Future<Output = Option<G::Output>>;

    /// Limits `future` to `after` (the step's timeout), if this limit has a
    /// timer.
    fn limit<G: Future>(future: G, after: Option<Duration>) -> Self::Limited<G>;
}

/// The limit of a step without a timeout: none, and no room for a timer.
#[derive(Debug)]
pub struct Untimed;

/// The limit of a step with a timeout: a tokio timer per attempt.
#[derive(Debug)]
pub struct Timed;

impl Limit for Untimed {
    type Limited<G: Future> = Unlimited<G>;

    #[inline]
    fn limit<G: Future>(future: G, _after: Option<Duration>) -> Unlimited<G> {
        Unlimited { future }
    }
}

impl Limit for Timed {
    type Limited<G: Future> = TimeLimited<G>;

    #[inline]
    fn limit<G: Future>(future: G, after: Option<Duration>) -> TimeLimited<G> {
        // `#[step]` chooses `Timed` only with a timeout; without one (a
        // hand-written `Step`), the timer never fires.
        TimeLimited {
            inner: tokio::time::timeout(after.unwrap_or(Duration::MAX), future),
        }
    }
}

pin_project_lite::pin_project! {
    /// A future that is never cut short: the future itself, in its place.
    pub struct Unlimited<G> {
        #[pin]
        future: G,
    }
}

impl<G: Future> Future for Unlimited<G> {
    type Output = Option<G::Output>;

    // Always, as `Guarded`'s poll: a layer of nothing around the step's.
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().future.poll(task).map(Some)
    }
}

pin_project_lite::pin_project! {
    /// A future under a tokio timeout.
    pub struct TimeLimited<G> {
        #[pin]
        inner: tokio::time::Timeout<G>,
    }
}

impl<G: Future> Future for TimeLimited<G> {
    type Output = Option<G::Output>;

    #[inline]
    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(task).map(Result::ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn timed_cuts_short_and_untimed_does_not() {
        let slow = || tokio::time::sleep(Duration::from_secs(60));
        let after = Some(Duration::from_secs(1));
        assert_eq!(Timed::limit(slow(), after).await, None);
        assert_eq!(Timed::limit(async { 7 }, after).await, Some(7));
        assert_eq!(Untimed::limit(slow(), after).await, Some(()));
    }

    #[test]
    fn untimed_has_no_room_for_a_timer() {
        let future = async { 7 };
        let plain = core::mem::size_of_val(&future);
        assert_eq!(
            core::mem::size_of_val(&Untimed::limit(async { 7 }, None)),
            plain
        );
        assert!(core::mem::size_of_val(&Timed::limit(async { 7 }, None)) > plain + 64);
    }
}
