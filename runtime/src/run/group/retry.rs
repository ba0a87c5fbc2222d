//! The pieces of a group member's attempts off the short path: where a
//! restart left it, one attempt, and its failure for good.

use core::future::Future;

use super::{Group, Stop, Tally, wake_siblings};
use crate::context::{Phase, StepContext};
use crate::durable::Entry;
use crate::durable::journal::{Journal, Keep, Replayed};
use crate::error::StepFailure;
use crate::hooks::Hooks;
use crate::run::Run;
use crate::step::Step;

impl<H: Hooks, J: Journal> Run<'_, H, J> {
    /// In a durable run, where member `S` (at `index`) stands after a
    /// restart: the attempt to make next and the attempts spent before, or
    /// `None` once `member` holds its recorded outcome (or its stop).
    #[inline]
    pub(super) fn member_resumed<S: Step>(
        &self,
        index: u32,
        group: &Group,
        member: &mut Tally<S::Output, S::Error>,
    ) -> Option<(u32, u32)>
    where
        J: Keep<S::Output>,
    {
        if self.journal.halted() {
            member.rank = group.fail();
            return None;
        }
        match self.journal.replayed(index, false) {
            Replayed::Succeeded(bytes) => {
                match J::decode(&bytes) {
                    Ok(output) => {
                        member.result = Some(Ok(output));
                        member.replayed = true;
                    }
                    Err(e) => {
                        let reason = self.output_changed(S::INFO.name(), index, &e);
                        member.stop = Some(Box::new(Stop::Refuse(reason)));
                        member.rank = group.fail();
                    }
                }
                None
            }
            Replayed::Failed(message) => {
                member.result = Some(Err(StepFailure::Recovered { message }));
                member.replayed = true;
                member.rank = group.fail();
                None
            }
            Replayed::Run {
                next_attempt,
                spent,
            } => Some((next_attempt, spent)),
        }
    }

    /// One attempt of member `S` after an in-memory first one, or under the
    /// test kit (which may overlap it with a sibling's failure).
    #[inline]
    pub(super) async fn member_attempt<S, F, Fut>(
        &self,
        call: &mut F,
        cx: StepContext,
        group: &Group,
    ) -> Result<S::Output, StepFailure<S::Error>>
    where
        S: Step,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<S::Output, S::Error>>,
    {
        if let Some(outgoing) = &self.outgoing {
            outgoing.discard(cx.index, Phase::Forward);
        }
        self.hooks.step_started(&cx);
        let span = self.span_for(Phase::Forward, cx.step, "", cx.attempt);
        let timeout = S::INFO.timeout();
        if J::FAULTS {
            Box::pin(self.overlapping_attempt(call, cx, group, timeout, span)).await
        } else {
            self.one_attempt(call, cx, Phase::Forward, timeout, span)
                .await
        }
    }

    /// Records and tells that `member` failed for good at attempt `cx`, and
    /// lets its siblings see it at once.
    #[inline]
    pub(super) async fn member_failed<T, E: core::fmt::Display>(
        &self,
        cx: &StepContext,
        mut member: Tally<T, E>,
        group: &Group,
        failure: StepFailure<E>,
    ) -> Tally<T, E> {
        let text = failure.to_string();
        if J::DURABLE {
            let entry = Entry::StepFailed {
                index: cx.index,
                error: text.clone(),
            };
            if let Err(e) = self.journal.record(entry).await {
                return self.member_stopped(member, group, Stop::Halt(e)).await;
            }
        }
        member.rank = group.fail();
        wake_siblings().await;
        tracing::warn!(parent: &self.span, step = cx.step, attempts = cx.attempt, error = %text, "group member failed for good, compensating");
        self.hooks.step_failed(cx, &text);
        member.last_error = Some(text);
        member.result = Some(Err(failure));
        member
    }
}
