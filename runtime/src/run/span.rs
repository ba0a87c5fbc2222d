//! The saga's span, borrowed: whoever makes a [`Run`](super::Run) keeps the
//! span beside it, and both the run and the future that polls the saga in
//! the span point at it. An owned span in the run, and a clone of it in the
//! `Instrumented` wrapper of a saga whose span someone listens to, cost every
//! saga's future 80 bytes; the span and two pointers cost 56.

use core::future::Future;
use core::mem::ManuallyDrop;
use core::ops::Deref;
use core::pin::Pin;
use core::task::{Context, Poll};

/// A borrowed saga span. `parent: &run.span` reads as it does for an owned
/// [`tracing::Span`], so that the run's events and step spans name it as
/// their parent the same way.
#[derive(Clone, Copy)]
pub(crate) struct SpanRef<'s>(pub(crate) &'s tracing::Span);

impl Deref for SpanRef<'_> {
    type Target = tracing::Span;

    #[inline]
    fn deref(&self) -> &tracing::Span {
        self.0
    }
}

impl<'a> From<&'a SpanRef<'_>> for Option<tracing::Id> {
    #[inline]
    fn from(span: &'a SpanRef<'_>) -> Self {
        span.0.id()
    }
}

pin_project_lite::pin_project! {
    /// `future` polled, and dropped, in `span`, as `tracing::Instrumented`
    /// does, with the span borrowed; a span nobody listens to is not entered.
    pub(crate) struct InSpan<'s, F> {
        // `ManuallyDrop`, as in `Instrumented`: dropped in `drop`, in the span.
        #[pin]
        future: ManuallyDrop<F>,
        span: &'s tracing::Span,
    }

    impl<'s, F> PinnedDrop for InSpan<'s, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let _entered = (!this.span.is_disabled()).then(|| this.span.enter());
            // SAFETY: the future is pinned, and dropped in place; `drop` runs
            // once, and nothing reads the future after it.
            unsafe { ManuallyDrop::drop(this.future.get_unchecked_mut()) }
        }
    }
}

impl<'s, F> InSpan<'s, F> {
    pub(crate) fn new(future: F, span: &'s tracing::Span) -> Self {
        InSpan {
            future: ManuallyDrop::new(future),
            span,
        }
    }
}

impl<F: Future> Future for InSpan<'_, F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // SAFETY: the `ManuallyDrop` is pinned with the future in it, and the
        // future is not moved out of it: only dropped in place, in `drop`.
        let future = unsafe { this.future.map_unchecked_mut(|f| &mut **f) };
        if this.span.is_disabled() {
            return future.poll(task);
        }
        let _entered = this.span.enter();
        future.poll(task)
    }
}
