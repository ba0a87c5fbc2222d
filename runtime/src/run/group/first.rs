//! The first attempt of an in-memory group member when the step has a timeout
//! or someone listens to its span: the short path a step in sequence takes
//! (`Run::step`), no retry state. The plain case (no timeout, no span) is
//! polled by [`MemberFuture`](super::fast::MemberFuture) itself.

use core::future::Future;
use std::time::Instant;

use tracing::Instrument;

use crate::context::StepContext;
use crate::durable::journal::Journal;
use crate::error::StepFailure;
use crate::hooks::Hooks;
use crate::run::Run;
use crate::run::attempts::{Guarded, settle};
use crate::step::Step;

impl<H: Hooks, J: Journal> Run<'_, H, J> {
    /// Attempt 1 of member `S`, whose start the hooks have been told (`cx`),
    /// under its timeout and in `span`; tells the hooks it succeeded if it
    /// did (a failure is told by the retry machinery). Gives `call` back, for
    /// the retries.
    pub(super) async fn decorated_first<S, F, Fut>(
        &self,
        mut call: F,
        cx: StepContext,
        span: Option<tracing::Span>,
        started: Option<Instant>,
    ) -> (F, Result<S::Output, StepFailure<S::Error>>)
    where
        S: Step,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<S::Output, S::Error>>,
    {
        let guarded = Guarded {
            future: call(),
            cx: &cx,
        };
        // Nested matches, as in `Run::step`: a `(timeout, span)` pair would be
        // kept across the await.
        let outcome = match S::INFO.timeout() {
            None => match span {
                None => settle(guarded.await),
                Some(span) => settle(guarded.instrument(span).await),
            },
            Some(after) => {
                let limited = tokio::time::timeout(after, guarded);
                let result = match span {
                    None => limited.await,
                    Some(span) => limited.instrument(span).await,
                };
                match result {
                    Ok(outcome) => settle(outcome),
                    Err(_elapsed) => Err(StepFailure::TimedOut { after }),
                }
            }
        };
        if outcome.is_ok() && !H::__SILENT {
            let elapsed = started.map(|s| s.elapsed()).unwrap_or_default();
            self.hooks.step_succeeded(&cx, elapsed);
        }
        (call, outcome)
    }
}
