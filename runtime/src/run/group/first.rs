//! The first attempt of an in-memory group member: the short path a step in
//! sequence takes (`Run::step`), no retry state, no timer unless the step has
//! a timeout, no span unless someone listens, no hook call for silent hooks.

use core::future::Future;
use std::time::Instant;

use tracing::Instrument;

use crate::context::Phase;
use crate::durable::journal::Journal;
use crate::error::StepFailure;
use crate::hooks::Hooks;
use crate::run::Run;
use crate::run::attempts::{Guarded, settle};
use crate::step::Step;

impl<H: Hooks, J: Journal> Run<'_, H, J> {
    /// Attempt 1 of member `S` (at `index`); tells the hooks it started, and
    /// that it succeeded if it did (a failure is told by the retry machinery).
    pub(super) async fn first_member_attempt<S, F, Fut>(
        &self,
        index: u32,
        call: &mut F,
        started: Option<Instant>,
    ) -> Result<S::Output, StepFailure<S::Error>>
    where
        S: Step,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<S::Output, S::Error>>,
    {
        let cx = self.context(S::INFO.name(), index, 1, Phase::Forward);
        if !H::__SILENT {
            self.hooks.step_started(&cx);
        }
        let span = self.span_for(Phase::Forward, S::INFO.name(), "", 1);
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
        outcome
    }
}
