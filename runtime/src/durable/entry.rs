//! The two words of a saga's record: where it stands ([`SagaStatus`]) and
//! each transition written before it moves past it ([`Entry`]). Every store
//! writes and reads these, so they live apart from the [`Store`](super::store::Store)
//! interface that carries them.

use core::fmt;

/// Where a saga stands, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SagaStatus {
    /// Started and not finished: recovery resumes it.
    Running,
    /// Decided to commit ([`Entry::Decided`], written by a saga with TCC
    /// steps at its pivot, or after its last step when it has none): it can no
    /// longer roll back. Recovery resumes it and only goes forward, confirming
    /// what is not confirmed yet and running the steps after the pivot; it
    /// becomes committed when it ends.
    Confirming,
    /// Every step succeeded.
    Committed,
    /// A step failed and everything was undone.
    Compensated,
    /// A compensation failed for good: parked, with its history, until a person
    /// retries it or marks it resolved. Never resumed on its own, never dropped.
    Parked,
    /// Parked, then marked resolved by a person, with a note.
    Resolved,
}

impl SagaStatus {
    /// Every status, in the order a saga can pass through them.
    pub const ALL: [SagaStatus; 6] = [
        SagaStatus::Running,
        SagaStatus::Confirming,
        SagaStatus::Parked,
        SagaStatus::Committed,
        SagaStatus::Compensated,
        SagaStatus::Resolved,
    ];

    /// The word stored for this status.
    pub fn as_str(self) -> &'static str {
        match self {
            SagaStatus::Running => "running",
            SagaStatus::Confirming => "confirming",
            SagaStatus::Committed => "committed",
            SagaStatus::Compensated => "compensated",
            SagaStatus::Parked => "parked",
            SagaStatus::Resolved => "resolved",
        }
    }

    /// The status stored as `word`.
    pub fn parse(word: &str) -> Option<SagaStatus> {
        Some(match word {
            "running" => SagaStatus::Running,
            "confirming" => SagaStatus::Confirming,
            "committed" => SagaStatus::Committed,
            "compensated" => SagaStatus::Compensated,
            "parked" => SagaStatus::Parked,
            "resolved" => SagaStatus::Resolved,
            _ => return None,
        })
    }

    /// Whether recovery resumes a saga in this status on its own: running or
    /// confirming (a parked saga waits for a person).
    pub fn is_resumable(self) -> bool {
        matches!(self, SagaStatus::Running | SagaStatus::Confirming)
    }

    /// Whether the saga has ended (a parked saga has not: it waits for a person).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            SagaStatus::Committed | SagaStatus::Compensated | SagaStatus::Resolved
        )
    }
}

impl fmt::Display for SagaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One transition of a saga, written before the saga moves past it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Attempt `attempt` of step `index` is about to start (its intent). Written
    /// before the step's future is first polled.
    StepStarted {
        /// The step's position.
        index: u32,
        /// From 1.
        attempt: u32,
    },
    /// Step `index` succeeded with this serialized output.
    StepSucceeded {
        /// The step's position.
        index: u32,
        /// The output, serialized.
        output: Vec<u8>,
    },
    /// Step `index` failed for good with this error text; compensation follows.
    StepFailed {
        /// The step's position.
        index: u32,
        /// The error's `Display` text (or the timeout or panic).
        error: String,
    },
    /// Attempt `attempt` of the compensation of step `index` is about to start.
    CompensationStarted {
        /// The step's position.
        index: u32,
        /// From 1.
        attempt: u32,
    },
    /// The compensation of step `index` succeeded.
    CompensationSucceeded {
        /// The step's position.
        index: u32,
    },
    /// The compensation of step `index` failed for good with this error text.
    CompensationFailed {
        /// The step's position.
        index: u32,
        /// The last error's text.
        error: String,
    },
    /// The saga decided to commit: at its pivot, or after its last step when it
    /// has none. Written before the confirm of any TCC step starts; from here
    /// on recovery only goes forward, confirming what is not confirmed yet.
    Decided,
    /// Attempt `attempt` of the confirm of TCC step `index` is about to start.
    ConfirmStarted {
        /// The step's position.
        index: u32,
        /// From 1.
        attempt: u32,
    },
    /// The confirm of TCC step `index` succeeded.
    Confirmed {
        /// The step's position.
        index: u32,
    },
    /// The saga ended (or was parked) with this status; a committed saga's output,
    /// serialized.
    Finished {
        /// The final status; also becomes the saga's status.
        status: SagaStatus,
        /// The saga's serialized output, when it committed.
        output: Option<Vec<u8>>,
    },
    /// A person acted on a parked saga: `retry` sends it back to compensating,
    /// otherwise it is marked resolved. The note says who and why.
    Intervention {
        /// Whether the failed compensations are to be tried again.
        retry: bool,
        /// Free text for the record.
        note: String,
    },
    /// Branch `branch` (counted depth first in the saga's body) took arm
    /// `arm` (counted from 0 in the order written). Written in the same commit
    /// as the next transition after the choice (the first intent inside the
    /// arm, or whatever comes next for an arm without steps): recovery follows
    /// it and never evaluates the condition again.
    Arm {
        /// The branch's position among the saga's branches.
        branch: u32,
        /// The arm taken.
        arm: u32,
    },
    /// Messages for the outbox ([`crate::outbox`]), made by the transition
    /// written in the same commit just before this entry (a step's or a
    /// compensation's success, or the saga's commit). A store that keeps an
    /// outbox stores them there in that commit too, for a relay to deliver.
    Sent {
        /// The messages, in the order they were sent.
        messages: Vec<crate::outbox::Message>,
    },
}

impl Entry {
    /// The status a store gives the saga when it writes this entry, in the
    /// same commit: the final one for [`Finished`](Entry::Finished),
    /// `Confirming` for [`Decided`](Entry::Decided), `Running` or `Resolved`
    /// for an [`Intervention`](Entry::Intervention); `None` for the rest.
    pub fn sets_status(&self) -> Option<SagaStatus> {
        match self {
            Entry::Finished { status, .. } => Some(*status),
            Entry::Decided => Some(SagaStatus::Confirming),
            Entry::Intervention { retry: true, .. } => Some(SagaStatus::Running),
            Entry::Intervention { retry: false, .. } => Some(SagaStatus::Resolved),
            _ => None,
        }
    }

    /// The position of the step this entry is about; `None` for
    /// [`Decided`](Entry::Decided), [`Finished`](Entry::Finished),
    /// [`Intervention`](Entry::Intervention), [`Sent`](Entry::Sent) and
    /// [`Arm`](Entry::Arm).
    pub fn index(&self) -> Option<u32> {
        match self {
            Entry::StepStarted { index, .. }
            | Entry::StepSucceeded { index, .. }
            | Entry::StepFailed { index, .. }
            | Entry::CompensationStarted { index, .. }
            | Entry::CompensationSucceeded { index }
            | Entry::CompensationFailed { index, .. }
            | Entry::ConfirmStarted { index, .. }
            | Entry::Confirmed { index } => Some(*index),
            Entry::Decided
            | Entry::Finished { .. }
            | Entry::Intervention { .. }
            | Entry::Sent { .. }
            | Entry::Arm { .. } => None,
        }
    }
}
