//! What a group member writes as it ends: its output, with what it sent, and
//! the stop of a member whose store failed.

use super::{Group, Member, Stop, wake_siblings};
use crate::context::Phase;
use crate::durable::journal::{Journal, Keep};
use crate::durable::{Entry, StoreError};
use crate::error::StepFailure;
use crate::hooks::Hooks;
use crate::run::Run;
use crate::step::Step;

impl<H: Hooks, J: Journal> Run<'_, H, J> {
    /// A member's output written on its own, with what it sent, in a durable
    /// run (in memory its messages go to the sink): `Err(Ok(..))` if it
    /// cannot be encoded or its messages not sent (the step fails),
    /// `Err(Err(..))` if the store failed.
    pub(super) async fn persist_output<S: Step>(
        &self,
        index: u32,
        output: &S::Output,
    ) -> Result<(), Result<StepFailure<S::Error>, StoreError>>
    where
        J: Keep<S::Output>,
    {
        let messages = match &self.outgoing {
            Some(outgoing) => outgoing.take(index, Phase::Forward),
            None => Vec::new(),
        };
        if !J::DURABLE {
            return self
                .to_sink(&messages)
                .await
                .map_err(|message| Ok(StepFailure::NotSent { message }));
        }
        let bytes =
            J::encode(output).map_err(|message| Ok(StepFailure::NotPersisted { message }))?;
        let succeeded = Entry::StepSucceeded {
            index,
            output: bytes,
        };
        let written = if messages.is_empty() {
            self.journal.record(succeeded).await
        } else {
            self.journal
                .record_all(vec![succeeded, Entry::Sent { messages }])
                .await
        };
        written.map_err(Err)
    }

    pub(super) async fn member_stopped<T, E>(
        &self,
        mut member: Member<T, E>,
        group: &Group,
        stop: Stop,
    ) -> Member<T, E> {
        member.stop = Some(Box::new(stop));
        member.result = None;
        member.rank = group.fail();
        wake_siblings().await;
        member
    }
}
