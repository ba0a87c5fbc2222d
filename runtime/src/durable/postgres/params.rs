//! What one write puts in its statements, made once however often the write
//! is tried: the journal rows and outbox rows as parallel arrays, and the
//! status the entries leave.

use super::writer::Write;
use crate::SagaId;
use crate::durable::rows::encode;
use crate::durable::store::{Entry, SagaStatus};

/// A write's statement parameters, made once however often it is tried.
pub(super) struct Params {
    pub(super) id: String,
    pub(super) kinds: Vec<&'static str>,
    pub(super) steps: Vec<Option<i64>>,
    pub(super) attempts: Vec<Option<i64>>,
    pub(super) payloads: Vec<Option<Vec<u8>>>,
    pub(super) notes: Vec<Option<String>>,
    /// The status the entries leave, if they change it.
    pub(super) status: Option<&'static str>,
    /// The messages of the `sent` entries, as the outbox's parallel arrays.
    pub(super) messages: Messages,
}

/// The outbox rows of one write's `sent` entries, column by column.
#[derive(Default)]
pub(super) struct Messages {
    pub(super) ids: Vec<String>,
    /// The ordinal (from 1) of the entry that carries each, in the write.
    pub(super) ords: Vec<i64>,
    pub(super) ns: Vec<i64>,
    pub(super) destinations: Vec<String>,
    pub(super) keys: Vec<Option<String>>,
    pub(super) payloads: Vec<Vec<u8>>,
    pub(super) created: Vec<i64>,
}

impl Params {
    pub(super) fn of(write: &Write) -> Params {
        let (id, entries): (SagaId, Vec<Entry>) = match write {
            Write::Create { saga, .. } => (saga.id, Vec::new()),
            Write::Append { id, entries, .. } => (*id, entries.clone()),
            Write::AppendIf { id, entry, .. } => (*id, vec![entry.clone()]),
        };
        let mut params = Params {
            id: id.to_string(),
            kinds: Vec::with_capacity(entries.len()),
            steps: Vec::with_capacity(entries.len()),
            attempts: Vec::with_capacity(entries.len()),
            payloads: Vec::with_capacity(entries.len()),
            notes: Vec::with_capacity(entries.len()),
            status: None,
            messages: Messages::default(),
        };
        for (ord, entry) in (1_i64..).zip(entries) {
            if let Some(status) = entry.sets_status() {
                params.status = Some(status.as_str());
            }
            if let Entry::Sent { messages } = &entry {
                let m = &mut params.messages;
                for (n, message) in (0_i64..).zip(messages) {
                    m.ids.push(message.id.clone());
                    m.ords.push(ord);
                    m.ns.push(n);
                    m.destinations.push(message.destination.clone());
                    m.keys.push(message.key.clone());
                    m.payloads.push(message.payload.clone());
                    m.created
                        .push(i64::try_from(message.created_ms).unwrap_or(i64::MAX));
                }
            }
            let row = encode(entry);
            params.kinds.push(row.kind);
            params.steps.push(row.step_index.map(i64::from));
            params.attempts.push(row.attempt.map(i64::from));
            params.payloads.push(row.payload);
            params.notes.push(row.note);
        }
        params
    }
}

/// Whether a saga that takes status `word` leaves its run: every status but
/// running and confirming, which recovery resumes, ends the lease.
pub(super) fn ends_the_run(word: &str) -> bool {
    SagaStatus::parse(word).is_none_or(|status| !status.is_resumable())
}
