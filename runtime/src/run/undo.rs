//! A compensation's attempts by its policy, after a first one made on the
//! short path or from the first: told as they go, the outcome returned for
//! [`undone`](super::Run::undone) to record.

use super::*;

impl<'h, H: Hooks, J: Journal> Run<'h, H, J> {
    /// [`undo`](Self::undo), after a first attempt that failed (with the
    /// time it started) if `first` is one.
    ///
    /// Its awaits stay here, its helpers plain functions: as `async` helpers,
    /// each a layer of its own in the saga's future, they cost a failing saga
    /// about 30 instructions more (the `overhead` bench's `failure` run).
    pub(crate) async fn undo_after<S, F, Fut>(
        &self,
        _step: core::marker::PhantomData<S>,
        index: u32,
        mut call: F,
        first: Option<(StepFailure<CompensationError>, Option<Instant>)>,
    ) -> Undo
    where
        S: Step,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), CompensationError>>,
    {
        let (true, Some(function)) = (S::INFO.kind().is_undone(), S::INFO.compensation()) else {
            return Undo::Skipped;
        };
        let Some(phase) = self.undo_phase::<S>() else {
            return Undo::Skipped;
        };
        let name = S::INFO.name();
        let policy = S::INFO.compensation_retry();
        let (mut pending, started) = match first {
            Some((failure, started)) => (Some(failure), started),
            None => (None, self.now()),
        };
        let (first_attempt, spent) = if J::DURABLE {
            match self.undo_replayed(index) {
                Ok(resumed) => resumed,
                Err(undo) => return undo,
            }
        } else {
            (1, 0)
        };
        let mut attempt_no = first_attempt;
        let mut last_error = None;
        loop {
            let cx = self.context(name, index, attempt_no, phase);
            // A first attempt made on the short path (`compensate`) is not
            // made again: its failure is where this loop starts.
            let outcome = match pending.take() {
                Some(failure) => Err(failure),
                None => {
                    if J::DURABLE {
                        let entry = Entry::CompensationStarted {
                            index,
                            attempt: attempt_no,
                        };
                        if let Err(e) = self.journal.record(entry).await {
                            return Undo::Halt(e);
                        }
                    }
                    let span = self.compensation_starts(&cx, function);
                    let timeout = S::INFO.compensation_timeout();
                    self.one_attempt(&mut call, cx, phase, timeout, span).await
                }
            };
            let failure = match outcome {
                Ok(()) => {
                    if let Err(e) = self.compensation_done(name, function, index).await {
                        return Undo::Halt(e);
                    }
                    return self.compensation_undone(&cx, started, last_error);
                }
                Err(failure) => failure.map_err(|CompensationError(text)| text),
            };
            let text = text_of(&failure);
            // Across restarts, as for steps (see `step_attempts`).
            let tries = spent + (attempt_no - first_attempt + 1);
            if policy.allows_attempt_after(tries) {
                let delay = self.compensation_will_retry(&cx, function, policy, tries, &text);
                last_error = Some(text);
                tokio::time::sleep(delay).await;
                attempt_no = attempt_no.saturating_add(1);
                continue;
            }
            if J::DURABLE {
                let entry = Entry::CompensationFailed {
                    index,
                    error: text.clone(),
                };
                if let Err(e) = self.journal.record(entry).await {
                    return Undo::Halt(e);
                }
            }
            return self.compensation_gave_up(&cx, function, &failure, started, text);
        }
    }

    /// The phase undoing `S` runs in, or `None` if a TCC step's confirm runs
    /// instead.
    #[inline]
    fn undo_phase<S: Step>(&self) -> Option<Phase> {
        if S::INFO.kind() != StepKind::Tcc {
            return Some(Phase::Compensation);
        }
        if self.decided {
            // A confirm never turns into a cancel: only messages that
            // failed after the decision could lead here.
            tracing::error!(parent: &self.span, step = S::INFO.name(), "not cancelled: the saga decided to commit, and its confirm runs instead");
            return None;
        }
        Some(Phase::Cancel)
    }

    /// In a durable run, where the compensation of step `index` stands after
    /// a restart: the attempt to make next and the attempts spent before, or
    /// the outcome if it was recorded (or the store had failed).
    #[inline]
    fn undo_replayed(&self, index: u32) -> Result<(u32, u32), Undo> {
        if self.journal.halted() {
            return Err(Undo::Skipped);
        }
        match self.journal.replayed(index, true) {
            Replayed::Succeeded(_) => Err(Undo::Undone {
                attempts: 0,
                duration: None,
                last_error: None,
            }),
            Replayed::Failed(error) => Err(Undo::Failed {
                attempts: 0,
                outcome: None,
                duration: None,
                error,
            }),
            Replayed::Run {
                next_attempt,
                spent,
            } => Ok((next_attempt, spent)),
        }
    }

    /// Tells that attempt `cx` of a compensation starts, its intent
    /// written: its span, if the saga's is enabled.
    #[inline]
    fn compensation_starts(
        &self,
        cx: &StepContext,
        function: &'static str,
    ) -> Option<tracing::Span> {
        if let Some(outgoing) = &self.outgoing {
            outgoing.discard(cx.index, Phase::Compensation);
        }
        self.hooks.compensation_started(cx);
        self.span_for(cx.phase, cx.step, function, cx.attempt)
    }

    /// Tells that attempt `cx` of a compensation succeeded, now recorded:
    /// the step is undone.
    #[inline]
    fn compensation_undone(
        &self,
        cx: &StepContext,
        started: Option<Instant>,
        last_error: Option<String>,
    ) -> Undo {
        let duration = started.map(|s| s.elapsed());
        self.hooks
            .compensation_succeeded(cx, duration.unwrap_or_default());
        Undo::Undone {
            attempts: cx.attempt,
            duration,
            last_error,
        }
    }

    /// Tells that attempt `cx` of a compensation failed and another follows,
    /// and returns the backoff to wait first. Not `async`, and kept out of
    /// line, so that the compensation's state machine carries none of it.
    #[cold]
    #[inline(never)]
    fn compensation_will_retry(
        &self,
        cx: &StepContext,
        function: &'static str,
        policy: RetryPolicy,
        tries: u32,
        text: &str,
    ) -> Duration {
        let delay = jittered_delay(policy, tries);
        tracing::warn!(parent: &self.span, step = cx.step, compensation = function, attempt = cx.attempt, error = %text, ?delay, "compensation failed, retrying");
        self.hooks.compensation_retrying(cx, text, delay);
        delay
    }

    /// Tells that the compensation failed for good at attempt `cx`, now
    /// recorded: the step's effect stays.
    #[inline]
    fn compensation_gave_up(
        &self,
        cx: &StepContext,
        function: &'static str,
        failure: &StepFailure<String>,
        started: Option<Instant>,
        text: String,
    ) -> Undo {
        tracing::error!(parent: &self.span, step = cx.step, compensation = function, attempts = cx.attempt, error = %text, "compensation failed for good; the step's effect needs manual repair");
        self.hooks.compensation_failed(cx, &text);
        Undo::Failed {
            attempts: cx.attempt,
            outcome: Some(outcome_of(failure)),
            duration: started.map(|s| s.elapsed()),
            error: text,
        }
    }
}
