//! The run's durable side: writing transitions, halting on a store error, and
//! a step replayed from the journal or run with its intent first.

use super::*;

impl<'h, H: Hooks, J: Journal> Run<'h, H, J> {
    /// Writes `entry`, with a deferred step outcome before it in the same commit.
    pub(super) async fn write(&mut self, entry: Entry) -> Result<(), StoreError> {
        let mut entries = self.journal.take_deferred();
        if entries.is_empty() {
            self.journal.record(entry).await
        } else {
            entries.push(entry);
            self.journal.record_all(entries).await
        }
    }

    /// Writes the entries kept by `defer`, in one commit.
    pub(super) async fn write_deferred(&mut self) -> Result<(), StoreError> {
        let mut entries = self.journal.take_deferred();
        match entries.len() {
            0 => Ok(()),
            1 => self.journal.record(entries.remove(0)).await,
            _ => self.journal.record_all(entries).await,
        }
    }

    pub(super) fn halt(&mut self, error: StoreError) {
        if error.is_lease_lost() {
            tracing::warn!(parent: &self.span, %error, "lease lost: another worker has this saga now; this run stops here");
            self.hooks.lease_lost(self.saga, self.id, error.message());
        } else {
            tracing::error!(parent: &self.span, %error, "the saga's store failed; the saga stops here and stays for recovery");
        }
        self.journal.halt(error);
    }

    /// Takes the store error that stopped the run, if one did.
    pub(crate) fn take_halt(&mut self) -> Option<StoreError> {
        self.journal.take_halt()
    }

    /// Stops the run without writing anything, as `halt` does: what the journal
    /// holds cannot be resumed by this code.
    #[cold]
    pub(super) fn refuse(&mut self, reason: String) {
        tracing::error!(parent: &self.span, %reason, "the saga cannot be resumed; it stops here, its record untouched");
        self.journal.refuse(reason);
    }

    /// Why a run cannot go on past a step whose recorded output no longer reads.
    #[cold]
    pub(super) fn output_changed(&self, name: &str, index: u32, error: &str) -> String {
        format!(
            "saga {} (`{}`) cannot be resumed: the output recorded for step `{name}` (step {}) \
             no longer reads as the step's output type: {error}; the type changed since the \
             step ran; its record is left as it is",
            self.id,
            self.saga,
            index + 1
        )
    }

    /// Takes the reason the run was refused, if it was.
    pub(crate) fn take_refusal(&mut self) -> Option<String> {
        self.journal.take_refusal()
    }

    /// A step of a durable saga: answered from the journal if it finished before a
    /// restart; otherwise each attempt's intent is durable before the attempt
    /// starts, and the outcome before the saga moves on.
    pub(super) async fn step_durable<S, F, Fut>(
        &mut self,
        index: u32,
        call: F,
    ) -> Result<S::Output, StepFailure<S::Error>>
    where
        S: Step,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<S::Output, S::Error>>,
        J: Keep<S::Output>,
    {
        let name = S::INFO.name();
        if self.journal.halted() {
            return Err(halted());
        }
        let attempt_no = match self.journal.replayed(index, false) {
            Replayed::Succeeded(bytes) => match J::decode(&bytes) {
                Ok(output) => {
                    self.succeeded += 1;
                    return Ok(output);
                }
                Err(e) => {
                    // The step happened; its output type changed since. Failing
                    // it would leave its effect in place, never undone, and going
                    // on needs the output: a changed definition, refused.
                    let reason = self.output_changed(name, index, &e);
                    self.refuse(reason);
                    return Err(halted());
                }
            },
            Replayed::Failed(message) => {
                self.push_failure(name, index, 0, Outcome::Failed, None, message.clone());
                return Err(StepFailure::Recovered { message });
            }
            Replayed::Run {
                next_attempt,
                spent,
            } => (next_attempt, spent),
        };
        let started = self.now();
        self.step_attempts::<S, F, Fut>(index, call, attempt_no, None, started)
            .await
    }
}
