//! A step that failed: retry or give up, and what the run records of it;
//! compensations, and the error a failed run ends with.

use super::*;

impl<'h, H: Hooks, J: Journal> Run<'h, H, J> {
    /// Ends a step that failed for good: written first in a durable run, then
    /// told and recorded.
    pub(super) async fn step_failed<S: Step>(
        &mut self,
        index: u32,
        attempts: u32,
        failure: StepFailure<S::Error>,
        started: Option<Instant>,
    ) -> Result<S::Output, StepFailure<S::Error>> {
        let name = S::INFO.name();
        let text = text_of(&failure);
        if J::DURABLE {
            let entry = Entry::StepFailed {
                index,
                error: text.clone(),
            };
            if let Err(e) = self.write(entry).await {
                self.halt(e);
                return Err(halted());
            }
        }
        let cx = self.context(name, index, attempts, Phase::Forward);
        self.step_failed_for_good::<S>(&cx, &failure, text, started);
        Err(failure)
    }

    /// [`step_failed`](Self::step_failed) in memory, where nothing is
    /// written: not `async`, so that a failed first attempt without retries
    /// need not enter the boxed retry loop. The error text is written in the
    /// failure's box, not in a `String` of its own: a failed run whose report
    /// nobody reads allocates nothing for it.
    #[cold]
    #[inline(never)]
    pub(super) fn step_failed_in_memory<S: Step>(
        &mut self,
        index: u32,
        failure: &StepFailure<S::Error>,
        started: Option<Instant>,
    ) {
        let name = S::INFO.name();
        let cx = self.context(name, index, 1, Phase::Forward);
        // Untimed, its record is a short one, which reads the text kept.
        let long = match started {
            None => self.failure().text.keep(failure),
            Some(_) => Some(text_of(failure)),
        };
        // Read only by a subscriber or hooks that listen.
        let text = || match (&long, &self.failure) {
            (Some(long), _) => long.as_str(),
            (None, Some(run)) => run.text.as_str(),
            (None, None) => "",
        };
        tracing::warn!(parent: &self.span, step = name, attempts = cx.attempt, error = %text(), "step failed for good, compensating");
        if !H::__SILENT {
            self.hooks.step_failed(&cx, text());
        }
        match long {
            None => {
                self.push_short(Short::Failed(index, outcome_of(failure)));
                self.failure().step = name;
            }
            long => self.push_failed_record(name, index, 1, outcome_of(failure), started, long),
        }
    }

    /// Tells of a step that failed for good and records it, for the report and
    /// for the error the saga ends with.
    #[cold]
    #[inline(never)]
    pub(super) fn step_failed_for_good<S: Step>(
        &mut self,
        cx: &StepContext,
        failure: &StepFailure<S::Error>,
        text: String,
        started: Option<Instant>,
    ) {
        let name = S::INFO.name();
        tracing::warn!(parent: &self.span, step = name, attempts = cx.attempt, error = %text, "step failed for good, compensating");
        self.hooks.step_failed(cx, &text);
        self.push_failure(
            name,
            cx.index,
            cx.attempt,
            outcome_of(failure),
            started,
            text,
        );
    }

    /// Records a step that failed for good, with its error's text.
    #[cold]
    #[inline(never)]
    pub(crate) fn push_failure(
        &mut self,
        name: &'static str,
        index: u32,
        attempts: u32,
        outcome: Outcome,
        started: Option<Instant>,
        text: String,
    ) {
        self.push_failed_record(name, index, attempts, outcome, started, Some(text));
    }

    /// [`push_failure`](Self::push_failure), with `text` `None` when the
    /// failure's box keeps it ([`StepText`](crate::failed_run::StepText)).
    fn push_failed_record(
        &mut self,
        name: &'static str,
        index: u32,
        attempts: u32,
        outcome: Outcome,
        started: Option<Instant>,
        text: Option<String>,
    ) {
        // The failure path from here on: the failed step and each
        // compensation add a record, each compensation a name. Room for all at
        // once, so that compensating allocates per saga, not per step, and for
        // the plain successes that the report rebuilds in place at the end.
        let steps = self.steps.len();
        self.records.reserve(2 * steps + 1);
        self.push_record(StepRecord {
            group: None,
            step: name,
            function: name,
            index,
            phase: Phase::Forward,
            outcome,
            attempts,
            duration: started.map(|s| s.elapsed()),
            error: text,
        });
        self.failure().step = name;
    }

    /// Pushes a record after every other, the ones the failure's box keeps
    /// included.
    pub(super) fn push_record(&mut self, record: StepRecord) {
        if let Some(run) = self.failure.as_deref_mut()
            && !run.kept.is_empty()
        {
            run.kept.spill(&mut self.records, self.steps, &run.text);
        }
        self.records.push(record);
    }

    /// Keeps a record in the failure's box, after every other: in a few
    /// bytes, where a failed run allocates nothing for it. A box that is full
    /// spills what it keeps into the records first.
    fn push_short(&mut self, short: Short) {
        let (saga, id) = (self.saga, self.id);
        let run = self
            .failure
            .get_or_insert_with(|| Box::new(FailedRun::new(saga, id)));
        if !run.kept.push(short) {
            self.records.reserve(2 * self.steps.len() + 1);
            run.kept.spill(&mut self.records, self.steps, &run.text);
            run.kept.push(short);
        }
    }

    /// Tells that attempt `retry` of a step failed and another follows, and
    /// returns the backoff to wait first. Not `async`, and kept out of line, so
    /// that the step's state machine carries none of it.
    #[cold]
    #[inline(never)]
    pub(super) fn step_will_retry(
        &self,
        cx: &StepContext,
        policy: RetryPolicy,
        retry: u32,
        text: &str,
    ) -> Duration {
        let delay = jittered_delay(policy, retry);
        tracing::warn!(parent: &self.span, step = cx.step, attempt = cx.attempt, error = %text, ?delay, "step failed, retrying");
        self.hooks.step_retrying(cx, text, delay);
        delay
    }

    /// A compensation's attempts after `first`, the failure of one made on
    /// the short path (with when it started), or all of them.
    pub(super) async fn compensate_step<S, F, Fut>(
        &mut self,
        step: core::marker::PhantomData<S>,
        index: u32,
        call: F,
        first: Option<(StepFailure<CompensationError>, Option<Instant>)>,
    ) where
        S: Step,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), CompensationError>>,
    {
        if J::DURABLE
            && let Err(e) = self.write_deferred().await
        {
            self.halt(e);
            return;
        }
        let undo = self.undo_after(step, index, call, first).await;
        self.undone::<S>(index, undo);
    }

    /// Records a compensation (or a TCC cancel, by `phase`) that succeeded: its
    /// step is undone.
    #[allow(clippy::too_many_arguments)] // the record's fields, each one plain value
    pub(super) fn record_undone(
        &mut self,
        name: &'static str,
        function: &'static str,
        index: u32,
        attempts: u32,
        duration: Option<Duration>,
        last_error: Option<String>,
        phase: Phase,
    ) {
        if attempts == 1
            && duration.is_none()
            && last_error.is_none()
            && phase == Phase::Compensation
        {
            self.push_short(Short::Undone(index));
            return;
        }
        self.push_record(StepRecord {
            group: None,
            step: name,
            function,
            index,
            phase,
            outcome: Outcome::Succeeded,
            attempts,
            duration,
            error: last_error,
        });
    }

    /// Ends a run that failed with `failure` and compensated what it could.
    pub async fn failed<E>(&mut self, failure: StepFailure<E>) -> SagaError<E> {
        if J::DURABLE && !self.journal.halted() {
            let status = if self.failure().failed.is_empty() {
                SagaStatus::Compensated
            } else {
                SagaStatus::Parked
            };
            let entry = Entry::Finished {
                status,
                output: None,
            };
            if let Err(e) = self.write(entry).await {
                self.halt(e);
            }
        }
        let outcome = if self.failure().failed.is_empty() {
            RunOutcome::Compensated
        } else {
            RunOutcome::CompensationFailed
        };
        self.failure();
        let Some(mut run) = self.failure.take() else {
            unreachable!("made above")
        };
        self.finish_failed(outcome, &mut run);
        if run.failed.is_empty() {
            SagaError::Compensated { failure, run }
        } else {
            SagaError::CompensationFailed { failure, run }
        }
    }

    /// What the run's failure left so far; made if the run has not failed yet
    /// (a compensation runs only after a failure, so in practice it was made).
    pub(super) fn failure(&mut self) -> &mut FailedRun {
        let (saga, id) = (self.saga, self.id);
        self.failure
            .get_or_insert_with(|| Box::new(FailedRun::new(saga, id)))
    }
}
