//! A compensation's attempts by its policy, after a first one made on the
//! short path or from the first: told as they go, the outcome returned for
//! [`undone`](super::Run::undone) to record.

use super::*;

impl<'h, H: Hooks, J: Journal> Run<'h, H, J> {
    /// [`undo`](Self::undo), after a first attempt that failed (with the
    /// time it started) if `first` is one.
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
        let name = S::INFO.name();
        let phase = if S::INFO.kind() == StepKind::Tcc {
            if self.decided {
                // A confirm never turns into a cancel: only messages that
                // failed after the decision could lead here.
                tracing::error!(parent: &self.span, step = name, "not cancelled: the saga decided to commit, and its confirm runs instead");
                return Undo::Skipped;
            }
            Phase::Cancel
        } else {
            Phase::Compensation
        };
        let policy = S::INFO.compensation_retry();
        let (mut pending, started) = match first {
            Some((failure, started)) => (Some(failure), started),
            None => (None, self.now()),
        };
        let mut attempt_no = 1u32;
        let mut spent = 0u32;
        if J::DURABLE {
            if self.journal.halted() {
                return Undo::Skipped;
            }
            match self.journal.replayed(index, true) {
                Replayed::Succeeded(_) => {
                    return Undo::Undone {
                        attempts: 0,
                        duration: None,
                        last_error: None,
                    };
                }
                Replayed::Failed(error) => {
                    return Undo::Failed {
                        attempts: 0,
                        outcome: None,
                        duration: None,
                        error,
                    };
                }
                Replayed::Run {
                    next_attempt,
                    spent: before,
                } => (attempt_no, spent) = (next_attempt, before),
            }
        }
        let first_attempt = attempt_no;
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
                    if let Some(outgoing) = &self.outgoing {
                        outgoing.discard(index, Phase::Compensation);
                    }
                    self.hooks.compensation_started(&cx);
                    let span = self.span_for(phase, name, function, attempt_no);
                    let timeout = S::INFO.compensation_timeout();
                    self.one_attempt(&mut call, cx, phase, timeout, span).await
                }
            };
            let failure = match outcome {
                Ok(()) => {
                    if let Err(e) = self.compensation_done(name, function, index).await {
                        return Undo::Halt(e);
                    }
                    let duration = started.map(|s| s.elapsed());
                    self.hooks
                        .compensation_succeeded(&cx, duration.unwrap_or_default());
                    return Undo::Undone {
                        attempts: attempt_no,
                        duration,
                        last_error,
                    };
                }
                Err(failure) => failure.map_err(|CompensationError(text)| text),
            };
            let text = text_of(&failure);
            // Across restarts, as for steps (see `step_attempts`).
            let tries = spent + (attempt_no - first_attempt + 1);
            if policy.allows_attempt_after(tries) {
                let delay = jittered_delay(policy, tries);
                tracing::warn!(parent: &self.span, step = name, compensation = function, attempt = attempt_no, error = %text, ?delay, "compensation failed, retrying");
                self.hooks.compensation_retrying(&cx, &text, delay);
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
            tracing::error!(parent: &self.span, step = name, compensation = function, attempts = attempt_no, error = %text, "compensation failed for good; the step's effect needs manual repair");
            self.hooks.compensation_failed(&cx, &text);
            return Undo::Failed {
                attempts: attempt_no,
                outcome: Some(outcome_of(&failure)),
                duration: started.map(|s| s.elapsed()),
                error: text,
            };
        }
    }
}
