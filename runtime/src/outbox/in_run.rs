//! What a saga run does with the messages its steps and body send: in a
//! durable run they join the commit of the transition that made them; in
//! memory they go to the runner's sink once that transition has happened.

use serde::Serialize;

use super::{Message, SendError};
use crate::context::Phase;
use crate::durable::Entry;
use crate::durable::journal::Journal;
use crate::error::StepFailure;
use crate::hooks::Hooks;
use crate::report::Outcome;
use crate::run::Run;

/// What `sagaflow::send!` can send: `serde::Serialize`. Its own trait so that
/// a type that falls short is named with the fix.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be sent as a message",
    label = "`{Self}` is not `serde::Serialize`",
    note = "a message is stored as JSON with the saga's commit and relayed later: derive `serde::Serialize` for the message's type"
)]
#[doc(hidden)]
pub trait Sendable: Serialize {}

// Not looked through in errors: the message above is the one to read.
#[diagnostic::do_not_recommend]
impl<T: Serialize + ?Sized> Sendable for T {}

/// The name a failure of the body's messages is reported under, where a
/// step's name would be.
pub(crate) const SEND_STEP: &str = "sagaflow::send!";

impl<H: Hooks, J: Journal> Run<'_, H, J> {
    /// Hands over what step (or compensation) `index` sent, now that it has
    /// succeeded: into the next commit of a durable run, to the sink in memory.
    pub(crate) async fn hand_over(&mut self, index: u32, phase: Phase) -> Result<(), String> {
        let Some(outgoing) = &self.outgoing else {
            return Ok(());
        };
        let messages = outgoing.take(index, phase);
        if messages.is_empty() {
            return Ok(());
        }
        if J::DURABLE {
            self.journal.defer(Entry::Sent { messages });
            return Ok(());
        }
        self.to_sink(&messages).await
    }

    /// Delivers the messages of a transition that happened in memory to the
    /// runner's sink: the text of what went wrong if there is no sink (a run
    /// that sends needs one) or the sink refused them. Every kind of transition
    /// (a step, a group member, a compensation, the body) hands over here.
    pub(crate) async fn to_sink(&self, messages: &[Message]) -> Result<(), String> {
        if messages.is_empty() {
            return Ok(());
        }
        match self.outgoing.as_ref().and_then(|o| o.sink()) {
            Some(sink) => sink
                .deliver_boxed(messages)
                .await
                .map_err(|e| format!("the runner's sink refused them: {e}")),
            None => Err(SendError::NoOutbox { saga: self.saga }.to_string()),
        }
    }

    /// Records that the compensation of step `index` succeeded, with what it
    /// sent: one commit in a durable run; in memory its messages go to the
    /// sink. On a shared borrow, since a group's members are undone at once.
    pub(crate) async fn compensation_done(
        &self,
        name: &'static str,
        function: &'static str,
        index: u32,
    ) -> Result<(), crate::durable::StoreError> {
        let messages = match &self.outgoing {
            Some(outgoing) => outgoing.take(index, Phase::Compensation),
            None => Vec::new(),
        };
        let done = Entry::CompensationSucceeded { index };
        if J::DURABLE {
            return if messages.is_empty() {
                self.journal.record(done).await
            } else {
                self.journal
                    .record_all(vec![done, Entry::Sent { messages }])
                    .await
            };
        }
        // The compensation happened, and undoing it is not an option: a sink
        // that refuses its messages in memory is told in the logs.
        if let Err(error) = self.to_sink(&messages).await {
            tracing::error!(parent: &self.span, step = name, compensation = function, %error, "the compensation's messages were not sent");
        }
        Ok(())
    }

    /// Fails a run in memory that would send with nowhere to send to, before
    /// any step runs: a saga whose body sends calls this first.
    pub fn sending_allowed<E>(&mut self) -> Result<(), StepFailure<E>> {
        if self.outgoing.is_some() {
            return Ok(());
        }
        let message = SendError::NoOutbox { saga: self.saga }.to_string();
        Err(self.messages_failed(0, message))
    }

    /// Makes the body's messages ready for the commit, once every step
    /// succeeded: kept for the final write of a durable run, handed to the sink
    /// in memory. A failure here compensates every step, as a failed last step
    /// would: the saga does not commit without its messages.
    pub async fn messages_ready<E>(&mut self) -> Result<(), StepFailure<E>> {
        let index = self.steps.len() as u32;
        // A handle of its own: failing below records on `self`.
        let Some(outgoing) = self.outgoing.clone() else {
            let message = SendError::NoOutbox { saga: self.saga }.to_string();
            return Err(self.messages_failed(index, message));
        };
        let messages = match outgoing.take_body() {
            Ok(messages) => messages,
            Err(message) => return Err(self.messages_failed(index, message)),
        };
        if J::DURABLE {
            outgoing.keep_for_commit(messages);
            return Ok(());
        }
        match self.to_sink(&messages).await {
            Ok(()) => Ok(()),
            Err(message) => Err(self.messages_failed(index, message)),
        }
    }

    #[cold]
    fn messages_failed<E>(&mut self, index: u32, message: String) -> StepFailure<E> {
        tracing::warn!(parent: &self.span, error = %message, "the saga's messages were not sent, compensating");
        self.push_failure(SEND_STEP, index, 1, Outcome::Failed, None, message.clone());
        StepFailure::NotSent { message }
    }
}
