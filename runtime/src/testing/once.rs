//! One run of a sweep in memory, on a runtime whose clock is paused, and the
//! checks made after it whatever the saga.

use super::*;

/// Keeps the panics the kit injects out of the test output; every other panic
/// goes to the hook that was there before.
pub(super) fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !message.starts_with("a panic injected into `") {
                previous(info);
            }
        }));
    });
}

pub(super) fn paused_runtime() -> Result<tokio::runtime::Runtime, SweepFailure> {
    quiet_injected_panics();
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| SweepFailure {
            message: format!("could not start the sweep's runtime: {e}"),
        })
}

/// What is wrong with a run's messages, whatever the saga: a message sent
/// twice (the same id), or a body message of a saga that did not commit.
fn messages_broken(summary: &RunSummary) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    for message in &summary.messages {
        if !seen.insert(message.id.as_str()) {
            return Some(format!("message {} was sent twice", message.id));
        }
        if !summary.committed && message.id.contains("-end-") {
            return Some(format!(
                "message {} to `{}` was sent by the saga's body, but the saga did not commit",
                message.id, message.destination
            ));
        }
    }
    None
}

impl<'a, S> SagaTest<'a, S>
where
    S: DurableSaga<Plan>,
{
    pub(super) fn check(
        &mut self,
        sweep: &str,
        run: usize,
        summary: &RunSummary,
    ) -> Result<(), SweepFailure> {
        if let Some(broken) = messages_broken(summary) {
            return Err(SweepFailure {
                message: format!("{sweep}, run {run} ({}): {broken}", summary.case),
            });
        }
        if let Some(invariant) = self.invariant.as_mut()
            && let Err(broken) = invariant(summary)
        {
            return Err(SweepFailure {
                message: format!(
                    "{sweep}, run {run} ({}): invariant broken: {broken}",
                    summary.case
                ),
            });
        }
        Ok(())
    }

    pub(super) async fn run_once(&mut self, plan: Plan) -> Result<S::Output, SagaError<S::Error>> {
        let saga = (self.make)(self.input);
        let hooks = NoHooks;
        let kept = crate::outbox::sending::Kept::default();
        let id = SagaId::random();
        let span = tracing::Span::none();
        let mut run = Run::with_journal(&hooks, plan, S::NAME, id, S::STEPS, &span, false, true);
        // What the saga sends is kept for the run's summary.
        let sink: std::sync::Arc<dyn crate::outbox::sending::DynSink> =
            std::sync::Arc::new(kept.clone());
        let outgoing = crate::outbox::sending::Outgoing::new(S::NAME, id, Some(sink));
        run.outgoing = Some(outgoing.clone());
        let drive = saga.__sagaflow_drive_with(&mut run);
        let result = crate::outbox::sending::WithOutgoing::new(drive, Some(outgoing)).await;
        self.overlapped = run.journal.overlapped.load(Ordering::Relaxed);
        let plan = core::mem::take(&mut run.journal);
        drop(run);
        self.taken.extend(plan.arms.iter().copied());
        self.last_arms = plan.arms;
        self.last_reached = plan.reached.into_inner();
        self.sent = kept.take();
        result
    }
}
