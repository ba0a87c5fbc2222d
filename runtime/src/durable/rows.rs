//! The journal row layout both stores share: an entry as a row's columns and
//! back, a saga id as text, and records built from rows of sagas joined with
//! their journals, with what is damaged said in the store's own words.

use core::fmt;

use super::store::{Entry, SagaRecord, SagaStatus, StoreError};
use crate::SagaId;

/// One journal row as both stores lay it out, without its saga id, sequence number and time.
pub(crate) struct Row {
    pub(crate) kind: &'static str,
    pub(crate) step_index: Option<u32>,
    pub(crate) attempt: Option<u32>,
    pub(crate) payload: Option<Vec<u8>>,
    pub(crate) note: Option<String>,
}

pub(crate) fn encode(entry: Entry) -> Row {
    let row = |kind, step_index, attempt, payload, note| Row {
        kind,
        step_index,
        attempt,
        payload,
        note,
    };
    match entry {
        Entry::StepStarted { index, attempt } => {
            row("step_started", Some(index), Some(attempt), None, None)
        }
        Entry::StepSucceeded { index, output } => {
            row("step_succeeded", Some(index), None, Some(output), None)
        }
        Entry::StepFailed { index, error } => {
            row("step_failed", Some(index), None, None, Some(error))
        }
        Entry::CompensationStarted { index, attempt } => row(
            "compensation_started",
            Some(index),
            Some(attempt),
            None,
            None,
        ),
        Entry::CompensationSucceeded { index } => {
            row("compensation_succeeded", Some(index), None, None, None)
        }
        Entry::CompensationFailed { index, error } => {
            row("compensation_failed", Some(index), None, None, Some(error))
        }
        Entry::Decided => row("decided", None, None, None, None),
        Entry::ConfirmStarted { index, attempt } => {
            row("confirm_started", Some(index), Some(attempt), None, None)
        }
        Entry::Confirmed { index } => row("confirmed", Some(index), None, None, None),
        Entry::Finished { status, output } => row(
            "finished",
            None,
            None,
            output,
            Some(status.as_str().to_owned()),
        ),
        Entry::Intervention { retry: true, note } => {
            row("intervention_retry", None, None, None, Some(note))
        }
        Entry::Intervention { retry: false, note } => {
            row("intervention_resolve", None, None, None, Some(note))
        }
        Entry::Arm { branch, arm } => row("arm", Some(branch), Some(arm), None, None),
        Entry::Sent { messages } => {
            // Plain data with string keys: serializing it cannot fail.
            let json = serde_json::to_vec(&messages).unwrap_or_default();
            row("sent", None, None, Some(json), None)
        }
    }
}

/// The entry a journal row holds, or why it holds none.
pub(crate) fn decode(
    kind: &str,
    step_index: Option<i64>,
    attempt: Option<i64>,
    payload: Option<Vec<u8>>,
    note: Option<String>,
) -> Result<Entry, String> {
    let number = |value: Option<i64>, column: &str| -> Result<u32, String> {
        let value = value.ok_or_else(|| format!("{column} is missing"))?;
        u32::try_from(value).map_err(|_| format!("{column} {value} is out of range"))
    };
    let index = || number(step_index, "step_index");
    let attempt = || number(attempt, "attempt");
    let note = || note.ok_or_else(|| "note is missing".to_owned());
    Ok(match kind {
        "step_started" => Entry::StepStarted {
            index: index()?,
            attempt: attempt()?,
        },
        "step_succeeded" => Entry::StepSucceeded {
            index: index()?,
            output: payload.ok_or("payload is missing")?,
        },
        "step_failed" => Entry::StepFailed {
            index: index()?,
            error: note()?,
        },
        "compensation_started" => Entry::CompensationStarted {
            index: index()?,
            attempt: attempt()?,
        },
        "compensation_succeeded" => Entry::CompensationSucceeded { index: index()? },
        "compensation_failed" => Entry::CompensationFailed {
            index: index()?,
            error: note()?,
        },
        "decided" => Entry::Decided,
        "confirm_started" => Entry::ConfirmStarted {
            index: index()?,
            attempt: attempt()?,
        },
        "confirmed" => Entry::Confirmed { index: index()? },
        "finished" => {
            let word = note()?;
            let status =
                SagaStatus::parse(&word).ok_or_else(|| format!("unknown status {word:?}"))?;
            Entry::Finished {
                status,
                output: payload,
            }
        }
        "intervention_retry" => Entry::Intervention {
            retry: true,
            note: note()?,
        },
        "intervention_resolve" => Entry::Intervention {
            retry: false,
            note: note()?,
        },
        "arm" => Entry::Arm {
            branch: index()?,
            arm: attempt()?,
        },
        "sent" => {
            let json = payload.ok_or("payload is missing")?;
            let messages = serde_json::from_slice(&json)
                .map_err(|e| format!("its messages are not readable: {e}"))?;
            Entry::Sent { messages }
        }
        other => return Err(format!("unknown entry kind {other:?}")),
    })
}

/// A journal row's columns as read: kind, step_index, attempt, payload, note.
pub(crate) type RowFields = (
    String,
    Option<i64>,
    Option<i64>,
    Option<Vec<u8>>,
    Option<String>,
);

/// The id as both stores keep it: 32 lowercase hex digits. `store` names the
/// store ("sagaflow store <file or server>") and `holder` what would be
/// damaged ("file", "store").
pub(crate) fn parse_id(
    store: &dyn fmt::Display,
    holder: &str,
    text: &str,
) -> Result<SagaId, StoreError> {
    // `SagaId`'s own reading of what it shows (which also refuses the `+`
    // that `u128::from_str_radix` would take).
    text.parse::<SagaId>().map_err(|_| {
        StoreError::new(format!(
            "{store}: saga id {text:?} is not 32 hex digits; the {holder} is damaged"
        ))
    })
}

/// Builds records from the rows of a query of sagas joined with their journal
/// (grouped by saga, in journal order), as both stores read them, and says
/// what is damaged in the store's own words.
pub(crate) struct Records<'a> {
    store: &'a dyn fmt::Display,
    holder: &'static str,
    records: Vec<SagaRecord>,
    current: String,
}

impl<'a> Records<'a> {
    /// `store` and `holder` as for [`parse_id`].
    pub(crate) fn new(store: &'a dyn fmt::Display, holder: &'static str) -> Self {
        Records {
            store,
            holder,
            records: Vec::new(),
            current: String::new(),
        }
    }

    /// Whether a row of saga `id_text` starts another saga than the last row.
    pub(crate) fn is_new(&self, id_text: &str) -> bool {
        self.records.is_empty() || id_text != self.current
    }

    /// Starts the record of a saga.
    pub(crate) fn saga(
        &mut self,
        id_text: &str,
        status: &str,
        saga_type: String,
        fingerprint: String,
        input: Vec<u8>,
    ) -> Result<(), StoreError> {
        let (store, holder) = (self.store, self.holder);
        let id = parse_id(store, holder, id_text)?;
        let status = SagaStatus::parse(status).ok_or_else(|| {
            StoreError::new(format!(
                "{store}: saga {id_text} has unknown status {status:?}; the {holder} is \
                 damaged or was written by a newer sagaflow"
            ))
        })?;
        self.records.push(SagaRecord {
            id,
            saga_type,
            fingerprint,
            input,
            status,
            journal: Vec::new(),
        });
        self.current = id_text.to_owned();
        Ok(())
    }

    /// Adds entry `seq` of the current saga, from its columns or why they
    /// would not read.
    pub(crate) fn entry(
        &mut self,
        seq: i64,
        fields: Result<RowFields, String>,
    ) -> Result<(), StoreError> {
        let bad = |why: String| {
            StoreError::new(format!(
                "{}: saga {}, journal entry {seq}: {why}; the {} is damaged or was written \
                 by a newer sagaflow",
                self.store, self.current, self.holder
            ))
        };
        let (kind, step_index, attempt, payload, note) = fields.map_err(bad)?;
        let entry = decode(&kind, step_index, attempt, payload, note).map_err(bad)?;
        if let Some(record) = self.records.last_mut() {
            record.journal.push(entry);
        }
        Ok(())
    }

    /// The records built.
    pub(crate) fn done(self) -> Vec<SagaRecord> {
        self.records
    }
}
