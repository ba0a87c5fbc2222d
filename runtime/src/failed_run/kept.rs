//! What the failure's box keeps in place of records a failed run would push:
//! the plain ones, which the step table rebuilds, and the failed step's
//! error text, so that a failed run whose report nobody reads allocates for
//! neither.

use crate::StepInfo;
use crate::context::Phase;
use crate::report::{Outcome, StepRecord};

/// A record that the step table and the failure's box can rebuild: a few
/// bytes in place of a [`StepRecord`] pushed into a `Vec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Short {
    /// The compensation of the step at this position succeeded at its first
    /// attempt, untimed.
    Undone(u32),
    /// The step at this position failed for good at its first attempt,
    /// untimed; its error's text is the box's [`StepText`].
    Failed(u32, Outcome),
}

/// The records a failed run keeps in its box, in the order they ran, after
/// those in the run's `Vec`: room for a saga of up to `ROOM` compensations
/// with nothing to push elsewhere. A record that does not fit here, or that
/// must follow these, spills them into the `Vec` first.
#[derive(Debug)]
pub(crate) struct Kept {
    len: usize,
    slots: [Short; Kept::ROOM],
}

impl Kept {
    const ROOM: usize = 24;

    pub(crate) fn new() -> Self {
        Kept {
            len: 0,
            slots: [Short::Undone(0); Kept::ROOM],
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps `short` after the others, if there is room.
    #[inline]
    pub(crate) fn push(&mut self, short: Short) -> bool {
        match self.slots.get_mut(self.len) {
            Some(slot) => {
                *slot = short;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// The records kept, rebuilt, after `records`: for a report.
    pub(crate) fn extend_into(
        &self,
        records: &mut Vec<StepRecord>,
        steps: &[StepInfo],
        text: &StepText,
    ) {
        records.extend(self.slots[..self.len].iter().map(|s| s.record(steps, text)));
    }

    /// [`extend_into`](Self::extend_into), keeping nothing afterwards: the
    /// records go on in the `Vec`.
    pub(crate) fn spill(
        &mut self,
        records: &mut Vec<StepRecord>,
        steps: &[StepInfo],
        text: &StepText,
    ) {
        self.extend_into(records, steps, text);
        self.len = 0;
    }

    /// The steps undone among the records kept, in order.
    pub(crate) fn undone<'s>(
        &'s self,
        steps: &'s [StepInfo],
    ) -> impl Iterator<Item = &'static str> + 's {
        self.slots[..self.len].iter().filter_map(|s| match s {
            Short::Undone(index) => steps.get(*index as usize).map(StepInfo::name),
            Short::Failed(..) => None,
        })
    }
}

impl Short {
    /// The record this stands for.
    fn record(self, steps: &[StepInfo], text: &StepText) -> StepRecord {
        let (index, phase, outcome, error) = match self {
            Short::Undone(index) => (index, Phase::Compensation, Outcome::Succeeded, None),
            Short::Failed(index, outcome) => (
                index,
                Phase::Forward,
                outcome,
                Some(text.as_str().to_owned()),
            ),
        };
        // Kept only for a step of the table (`Run::push_short`).
        let info = steps.get(index as usize);
        let name = info.map_or("", StepInfo::name);
        let function = match phase {
            Phase::Forward => name,
            _ => info.and_then(StepInfo::compensation).unwrap_or_default(),
        };
        StepRecord {
            group: None,
            step: name,
            function,
            index,
            phase,
            outcome,
            attempts: 1,
            duration: None,
            error,
        }
    }
}

/// The error text of the step that failed, written in the failure's box: a
/// failed run whose report nobody reads then makes no allocation for it.
/// Error texts are short; a longer one goes in its record as a `String`.
pub(crate) struct StepText {
    len: usize,
    bytes: [u8; StepText::ROOM],
    /// Whether a text is kept: one per run.
    kept: bool,
}

impl StepText {
    const ROOM: usize = 120;

    pub(crate) fn new() -> Self {
        StepText {
            len: 0,
            bytes: [0; StepText::ROOM],
            kept: false,
        }
    }

    /// Writes `value`'s `Display` here; gives it back as a `String` if it
    /// does not fit (or a text is kept already).
    pub(crate) fn keep(&mut self, value: &impl core::fmt::Display) -> Option<String> {
        use core::fmt::Write as _;
        if self.kept {
            return Some(value.to_string());
        }
        self.len = 0;
        match write!(self, "{value}") {
            Ok(()) => {
                self.kept = true;
                None
            }
            // Longer than the room (or a `Display` that fails, which
            // `to_string` reports as it always did).
            Err(_) => Some(value.to_string()),
        }
    }

    /// The text kept, or `""`.
    pub(crate) fn as_str(&self) -> &str {
        // Whole `str`s only are copied in (`write_str`), so the bytes are UTF-8.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl core::fmt::Write for StepText {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        let room = self.bytes.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl core::fmt::Debug for StepText {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("StepText").field(&self.as_str()).finish()
    }
}
