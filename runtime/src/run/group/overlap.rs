//! A group member's attempt under the test kit, overlapping a sibling's
//! failure for good as the kit's plan says: the failing member starts late, so
//! that its siblings' attempts are in flight when it fails; a held sibling's
//! attempt stays in flight until that failure, then ends.

use core::future::Future;
use core::task::Poll;
use core::time::Duration;

use super::Group;
use crate::context::{Phase, StepContext};
use crate::durable::journal::{Journal, Overlap};
use crate::error::StepFailure;
use crate::hooks::Hooks;
use crate::run::Run;

/// How long a held attempt waits for a sibling's failure at most, on the kit's
/// paused clock (which costs no real time): a plan that holds a member of a
/// group none of whose members fails ends instead of hanging.
const HOLD_AT_MOST: Duration = Duration::from_secs(365 * 24 * 3600);

impl Group {
    /// Resolves once a member has failed for good (the failing member wakes
    /// the task when it does), or after [`HOLD_AT_MOST`].
    async fn until_failed(&self) {
        let mut give_up = core::pin::pin!(tokio::time::sleep(HOLD_AT_MOST));
        core::future::poll_fn(|cx| {
            if self.failed() {
                return Poll::Ready(());
            }
            give_up.as_mut().poll(cx)
        })
        .await;
    }
}

/// Lets the task poll the other members once before this one goes on.
async fn yield_once() {
    let mut yielded = false;
    core::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

impl<H: Hooks, J: Journal> Run<'_, H, J> {
    /// One attempt of a group member, shaped by the test kit's plan.
    pub(super) async fn overlapping_attempt<F, Fut, T, E>(
        &self,
        call: &mut F,
        cx: StepContext,
        group: &Group,
        timeout: Option<Duration>,
        span: Option<tracing::Span>,
    ) -> Result<T, StepFailure<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match self.journal.overlap(cx.index, cx.attempt) {
            None => {
                self.one_attempt(call, cx, Phase::Forward, timeout, span)
                    .await
            }
            Some(Overlap::Late) => {
                yield_once().await;
                self.one_attempt(call, cx, Phase::Forward, timeout, span)
                    .await
            }
            Some(Overlap::Held { fails }) => {
                if !group.failed() {
                    self.journal.overlapped(cx.index);
                }
                if fails {
                    group.until_failed().await;
                    return Err(StepFailure::Injected {
                        message: format!(
                            "an error injected into `{}` once a sibling had failed",
                            cx.step
                        ),
                    });
                }
                let outcome = self
                    .one_attempt(call, cx, Phase::Forward, timeout, span)
                    .await;
                group.until_failed().await;
                outcome
            }
        }
    }
}
