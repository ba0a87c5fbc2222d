//! The driver's part of try-confirm-cancel steps: the saga's decision to
//! commit, each TCC step's confirm, and the cancel of a try that failed.
//!
//! A TCC step's try is a step like any other ([`Run::step`]). On rollback its
//! cancel runs where a compensation would ([`Run::compensate`], with the try's
//! output), and also after a try that failed for good, timed out or panicked
//! ([`Run::cancel_tried`], with `None`): its effect may have landed. Once the
//! saga decides to commit ([`Run::decide`], durable before anything else
//! happens), the confirms of every tried step run at once on the saga's task
//! ([`Run::confirm`], on a shared borrow), each retried until it succeeds, and
//! are recorded afterwards ([`Run::confirmed`]). After the decision no cancel
//! runs.

use core::future::Future;
use core::marker::PhantomData;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use super::{CompensationError, Run, jittered_delay};
use crate::StepKind;
use crate::context::Phase;
use crate::durable::journal::{Journal, Replayed};
use crate::durable::{Entry, StoreError};
use crate::hooks::Hooks;
use crate::report::{Outcome, StepRecord};
use crate::step::Step;

/// What confirming one step came to; recorded by [`Run::confirmed`].
#[doc(hidden)]
#[derive(Debug)]
pub enum Confirmed {
    /// Nothing to confirm: not a TCC step, or the run stopped.
    Skipped,
    /// Confirmed before a restart.
    Replayed,
    /// Confirmed now, after `attempts` attempts.
    Done {
        /// From 1; numbering goes on across restarts.
        attempts: u32,
        /// From the first attempt to the success, if the run is timed.
        duration: Option<Duration>,
        /// The error that caused the last retry, if there was one.
        last_error: Option<String>,
    },
    /// The store failed: the run stops here, for recovery to confirm.
    Halt(StoreError),
}

impl<'h, H: Hooks, J: Journal> Run<'h, H, J> {
    /// The saga decides to commit, at its pivot or after its last step: in a
    /// durable run [`Entry::Decided`] is written (with the pivot's deferred
    /// outcome) before any confirm starts. From here on no cancel runs.
    pub async fn decide(&mut self) {
        self.decided = true;
        if self.reported {
            // The records of the plain successes so far, which the end would
            // rebuild, kept now: the confirms' records go after them.
            self.records = self.all_records();
        }
        if J::DURABLE {
            if self.journal.halted() {
                return;
            }
            if !self.journal.decided()
                && let Err(e) = self.write(Entry::Decided).await
            {
                self.halt(e);
                return;
            }
        }
        tracing::debug!(parent: &self.span, "decided to commit: confirming the tried steps");
        self.hooks.saga_confirming(self.saga, self.id);
    }

    /// Confirms TCC step `S` (at `index`), retrying until it succeeds; on a
    /// shared borrow, so that every step's confirm runs at once. Nothing for a
    /// step of another kind.
    pub async fn confirm<S, F, Fut>(
        &self,
        _step: PhantomData<S>,
        index: u32,
        mut call: F,
    ) -> Confirmed
    where
        S: Step,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), CompensationError>>,
    {
        let (StepKind::Tcc, Some(function)) = (S::INFO.kind(), S::INFO.confirm()) else {
            return Confirmed::Skipped;
        };
        let name = S::INFO.name();
        let policy = S::INFO.confirm_retry();
        let started = self.now();
        let mut attempt_no = 1u32;
        if J::DURABLE {
            if self.journal.halted() {
                return Confirmed::Skipped;
            }
            match self.journal.replayed_confirm(index) {
                Replayed::Run { next_attempt, .. } => attempt_no = next_attempt,
                Replayed::Succeeded(_) | Replayed::Failed(_) => return Confirmed::Replayed,
            }
        }
        let first_attempt = attempt_no;
        let mut last_error = None;
        loop {
            if J::DURABLE {
                let entry = Entry::ConfirmStarted {
                    index,
                    attempt: attempt_no,
                };
                if let Err(e) = self.journal.record(entry).await {
                    return Confirmed::Halt(e);
                }
            }
            let cx = self.context(name, index, attempt_no, Phase::Confirm);
            self.hooks.confirm_started(&cx);
            let span = self.span_for(Phase::Confirm, name, function, attempt_no);
            let timeout = S::INFO.confirm_timeout();
            let outcome = self
                .one_attempt(&mut call, cx, Phase::Confirm, timeout, span)
                .await;
            match outcome {
                Ok(()) => {
                    if J::DURABLE
                        && let Err(e) = self.journal.record(Entry::Confirmed { index }).await
                    {
                        return Confirmed::Halt(e);
                    }
                    let duration = started.map(|s| s.elapsed());
                    self.hooks
                        .confirm_succeeded(&cx, duration.unwrap_or_default());
                    return Confirmed::Done {
                        attempts: attempt_no,
                        duration,
                        last_error,
                    };
                }
                Err(failure) => {
                    let text = failure.map_err(|CompensationError(text)| text).to_string();
                    // The backoff counts this run's attempts: a restart waits
                    // from the policy's first backoff again.
                    let delay = jittered_delay(policy, attempt_no - first_attempt + 1);
                    tracing::warn!(parent: &self.span, step = name, confirm = function, attempt = attempt_no, error = %text, ?delay, "confirm failed, retrying");
                    self.hooks.confirm_retrying(&cx, &text, delay);
                    last_error = Some(text);
                    tokio::time::sleep(delay).await;
                    attempt_no = attempt_no.saturating_add(1);
                }
            }
        }
    }

    /// Records what confirming step `S` (at `index`) came to.
    pub fn confirmed<S: Step>(&mut self, _step: PhantomData<S>, index: u32, confirmed: Confirmed) {
        match confirmed {
            Confirmed::Skipped | Confirmed::Replayed => {}
            Confirmed::Halt(e) => self.halt(e),
            Confirmed::Done {
                attempts,
                duration,
                last_error,
            } => self.push_record(StepRecord {
                group: None,
                step: S::INFO.name(),
                function: S::INFO.confirm().unwrap_or_default(),
                index,
                phase: Phase::Confirm,
                outcome: Outcome::Succeeded,
                attempts,
                duration,
                error: last_error,
            }),
        }
    }

    /// Cancels TCC step `S` (at `index`), whose try failed for good, timed out
    /// or panicked: its cancel gets `None`, since the try's effect may have
    /// landed all the same. Nothing for a step of another kind.
    pub async fn cancel_tried<S, F, Fut>(&mut self, step: PhantomData<S>, index: u32, call: F)
    where
        S: Step,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), CompensationError>>,
    {
        if S::INFO.kind() == StepKind::Tcc {
            // Boxed: a saga's future then carries a pointer for this branch,
            // which each of its steps has.
            Box::pin(self.compensate_step(step, index, call, None)).await;
        }
    }
}

pin_project_lite::pin_project! {
    /// Two futures polled together on one task, to the end of both: the
    /// confirms of a saga's TCC steps, nested. Not public API.
    #[doc(hidden)]
    pub struct Both<A: Future, B: Future> {
        #[pin]
        a: A,
        #[pin]
        b: B,
        a_out: Option<A::Output>,
        b_out: Option<B::Output>,
    }
}

impl<A: Future, B: Future> Both<A, B> {
    /// `a` and `b`, polled together.
    pub fn new(a: A, b: B) -> Self {
        Both {
            a,
            b,
            a_out: None,
            b_out: None,
        }
    }
}

impl<A: Future, B: Future> Future for Both<A, B> {
    type Output = (A::Output, B::Output);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if this.a_out.is_none()
            && let Poll::Ready(out) = this.a.poll(cx)
        {
            *this.a_out = Some(out);
        }
        if this.b_out.is_none()
            && let Poll::Ready(out) = this.b.poll(cx)
        {
            *this.b_out = Some(out);
        }
        if this.a_out.is_some() && this.b_out.is_some() {
            match (this.a_out.take(), this.b_out.take()) {
                (Some(a), Some(b)) => Poll::Ready((a, b)),
                _ => Poll::Pending,
            }
        } else {
            Poll::Pending
        }
    }
}
