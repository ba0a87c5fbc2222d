//! What a person sees of a stored saga, worked out from its record once and
//! then shown as text, JSON or HTML.
//!
//! The store knows a saga's steps only by the fingerprint written at its start
//! (`name:kind` or `name:kind=compensation`, space-separated), and its progress
//! only by the journal; from those two this module tells each step's state.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use sagaflow::durable::{Entry, SagaStatus, StoredSaga};
use sagaflow::{SagaGraph, StepInfo, StepKind};
use serde_json::{Value, json};

/// Where one step stands, as its journal tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// No entry names it.
    NotReached,
    /// Started, not finished (a run in progress, or a crash).
    Running,
    /// Succeeded and not undone.
    Done,
    /// A TCC step whose try succeeded, with its confirm started and not
    /// finished (the saga is confirming).
    Confirming,
    /// A TCC step whose confirm succeeded: final.
    Confirmed,
    /// Failed for good.
    Failed,
    /// Its compensation started and has not finished.
    Compensating,
    /// Undone.
    Compensated,
    /// Its compensation failed for good.
    CompensationFailed,
}

impl StepState {
    /// The word shown and written to JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::NotReached => "not reached",
            StepState::Running => "running",
            StepState::Done => "done",
            StepState::Confirming => "confirming",
            StepState::Confirmed => "confirmed",
            StepState::Failed => "failed",
            StepState::Compensating => "compensating",
            StepState::Compensated => "compensated",
            StepState::CompensationFailed => "compensation failed",
        }
    }

    /// The colour of a step in this state on the page.
    pub fn colour(self) -> &'static str {
        match self {
            StepState::NotReached => "#8c959f",
            StepState::Running | StepState::Compensating | StepState::Confirming => "#0969da",
            StepState::Done | StepState::Confirmed => "#1a7f37",
            StepState::Failed | StepState::CompensationFailed => "#cf222e",
            StepState::Compensated => "#9a6700",
        }
    }
}

/// One step of a stored saga and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepView {
    /// From 0.
    pub index: u32,
    /// The step function's name (or `step N` when the fingerprint lacks it).
    pub name: String,
    /// Its kind's keyword (`compensate`, `read_only`, `pivot`, `retriable`).
    pub kind: String,
    /// Its compensation's name, if it has one.
    pub compensation: Option<String>,
    /// Where it stands.
    pub state: StepState,
    /// Attempts of the step so far.
    pub attempts: u32,
    /// Attempts of its compensation so far.
    pub compensation_attempts: u32,
    /// The last error of the step or its compensation.
    pub error: Option<String>,
}

/// One journal entry, for show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryView {
    /// From 0.
    pub seq: usize,
    /// When it was written, if the store records it.
    pub at: Option<SystemTime>,
    /// What it records (`step_started`, `compensation_failed`, ...).
    pub kind: &'static str,
    /// The step it is about, by name.
    pub step: Option<String>,
    /// The attempt, for a start.
    pub attempt: Option<u32>,
    /// An error text, or an intervention's note, or a final status.
    pub text: Option<String>,
}

/// A stored saga as shown to a person.
#[derive(Debug, Clone)]
pub struct SagaView {
    /// The stored saga.
    pub saga: StoredSaga,
    /// Its steps, in order.
    pub steps: Vec<StepView>,
}

impl SagaView {
    /// Works out each step's state from the saga's journal.
    pub fn new(saga: StoredSaga) -> Self {
        let mut steps: Vec<StepView> = parse_fingerprint(&saga.record.fingerprint);
        for entry in &saga.record.journal {
            let Some(index) = entry.index() else {
                continue;
            };
            // A journal naming a step beyond the fingerprint: show it anyway.
            while steps.len() <= index as usize {
                let n = steps.len() as u32;
                steps.push(StepView::unknown(n));
            }
            let step = &mut steps[index as usize];
            match entry {
                Entry::StepStarted { attempt, .. } => {
                    step.state = StepState::Running;
                    step.attempts = *attempt;
                }
                Entry::StepSucceeded { .. } => step.state = StepState::Done,
                Entry::StepFailed { error, .. } => {
                    step.state = StepState::Failed;
                    step.error = Some(error.clone());
                }
                Entry::CompensationStarted { attempt, .. } => {
                    step.state = StepState::Compensating;
                    step.compensation_attempts = *attempt;
                }
                Entry::CompensationSucceeded { .. } => step.state = StepState::Compensated,
                Entry::CompensationFailed { error, .. } => {
                    step.state = StepState::CompensationFailed;
                    step.error = Some(error.clone());
                }
                Entry::ConfirmStarted { .. } => step.state = StepState::Confirming,
                Entry::Confirmed { .. } => step.state = StepState::Confirmed,
                Entry::Decided
                | Entry::Finished { .. }
                | Entry::Intervention { .. }
                | Entry::Sent { .. }
                | Entry::Arm { .. } => {}
            }
        }
        SagaView { saga, steps }
    }

    /// Its status.
    pub fn status(&self) -> SagaStatus {
        self.saga.record.status
    }

    /// The step the saga is at: the last one its journal names.
    pub fn at_step(&self) -> Option<&StepView> {
        let index = self
            .saga
            .record
            .journal
            .iter()
            .rev()
            .find_map(Entry::index)?;
        self.steps.get(index as usize)
    }

    /// The step that failed, if one did.
    pub fn failed_step(&self) -> Option<&StepView> {
        self.steps.iter().find(|s| s.state == StepState::Failed)
    }

    /// The error to show in one line: a failed compensation's (why it is
    /// parked) before the failed step's (why it compensated).
    pub fn error(&self) -> Option<&str> {
        self.steps
            .iter()
            .find(|s| s.state == StepState::CompensationFailed)
            .or_else(|| self.failed_step())
            .and_then(|s| s.error.as_deref())
    }

    /// How long ago it started, if the store records it.
    pub fn age(&self, now: SystemTime) -> Option<Duration> {
        let created = self.saga.created_at?;
        Some(now.duration_since(created).unwrap_or_default())
    }

    /// The last intervention's note and whether it was a retry, if any.
    pub fn last_intervention(&self) -> Option<(bool, &str)> {
        self.saga.record.journal.iter().rev().find_map(|e| match e {
            Entry::Intervention { retry, note } => Some((*retry, note.as_str())),
            _ => None,
        })
    }

    /// The saga's input: JSON as JSON, anything else as text.
    pub fn input(&self) -> Value {
        let bytes = &self.saga.record.input;
        serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
    }

    /// The journal, entry by entry.
    pub fn journal(&self) -> Vec<EntryView> {
        let record = &self.saga.record;
        record
            .journal
            .iter()
            .enumerate()
            .map(|(seq, entry)| {
                let step = entry.index().map(|i| {
                    let step = self.steps.get(i as usize);
                    let compensating = matches!(
                        entry,
                        Entry::CompensationStarted { .. }
                            | Entry::CompensationSucceeded { .. }
                            | Entry::CompensationFailed { .. }
                    );
                    match step {
                        Some(s) if compensating => s.compensation.clone().unwrap_or(s.name.clone()),
                        Some(s) => s.name.clone(),
                        None => format!("step {}", i + 1),
                    }
                });
                let (kind, attempt, text) = describe(entry);
                EntryView {
                    seq,
                    at: self.saga.entry_times.get(seq).copied(),
                    kind,
                    step,
                    attempt,
                    text,
                }
            })
            .collect()
    }

    /// The saga's graph as an SVG whose step and compensation boxes are filled
    /// with the colour of their state (see [`colour_svg`]).
    pub fn svg(&self) -> String {
        let svg = graph_of(&self.saga.record.saga_type, &self.steps).to_svg_standalone();
        // A step's box shows how the step went forward; its compensation's
        // box shows the undo.
        let mut fills: Vec<&str> = self
            .steps
            .iter()
            .map(|s| match s.state {
                StepState::Compensating
                | StepState::Compensated
                | StepState::CompensationFailed => StepState::Done.colour(),
                state => state.colour(),
            })
            .collect();
        fills.extend(self.steps.iter().filter(|s| s.compensation.is_some()).map(
            |s| match s.state {
                StepState::Compensated => StepState::Compensated.colour(),
                StepState::CompensationFailed => StepState::CompensationFailed.colour(),
                StepState::Compensating => StepState::Compensating.colour(),
                _ => StepState::NotReached.colour(),
            },
        ));
        colour_svg(&svg, &fills)
    }

    /// The saga as the JSON that `show --json` prints (documented in
    /// docs/operating.md; fields are added, never renamed or removed).
    pub fn to_json(&self, now: SystemTime) -> Value {
        let mut summary = self.summary_json(now);
        let journal: Vec<Value> = self
            .journal()
            .iter()
            .map(|e| {
                json!({
                    "seq": e.seq,
                    "at": e.at.map(rfc3339),
                    "kind": e.kind,
                    "step": e.step,
                    "attempt": e.attempt,
                    "text": e.text,
                })
            })
            .collect();
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|s| {
                json!({
                    "index": s.index,
                    "name": s.name,
                    "kind": s.kind,
                    "compensation": s.compensation,
                    "state": s.state.as_str(),
                    "attempts": s.attempts,
                    "compensation_attempts": s.compensation_attempts,
                    "error": s.error,
                })
            })
            .collect();
        if let Value::Object(map) = &mut summary {
            map.insert("input".into(), self.input());
            map.insert("journal".into(), Value::Array(journal));
            map.insert("steps".into(), Value::Array(steps));
        }
        summary
    }

    /// One saga as a line of `list --json`.
    pub fn summary_json(&self, now: SystemTime) -> Value {
        let record = &self.saga.record;
        json!({
            "id": record.id.to_string(),
            "type": record.saga_type,
            "status": record.status.as_str(),
            "created_at": self.saga.created_at.map(rfc3339),
            "updated_at": self.saga.updated_at.map(rfc3339),
            "age_seconds": self.age(now).map(|d| d.as_secs()),
            "at_step": self.at_step().map(|s| s.name.clone()),
            "failed_step": self.failed_step().map(|s| s.name.clone()),
            "error": self.error(),
        })
    }
}

impl StepView {
    fn unknown(index: u32) -> Self {
        StepView {
            index,
            name: format!("step {}", index + 1),
            kind: "compensate".to_owned(),
            compensation: None,
            state: StepState::NotReached,
            attempts: 0,
            compensation_attempts: 0,
            error: None,
        }
    }
}

/// The graph of a saga type with these steps (policies are not stored, so the
/// defaults).
///
/// `SagaGraph` borrows `'static` names, as the macro writes them; here they
/// come from the store, so each distinct definition is leaked once and kept:
/// a server showing many sagas of few definitions does not grow per page.
fn graph_of(saga_type: &str, steps: &[StepView]) -> SagaGraph {
    type Key = (String, Vec<(String, String, Option<String>)>);
    static GRAPHS: OnceLock<Mutex<HashMap<Key, SagaGraph>>> = OnceLock::new();
    let key: Key = (
        saga_type.to_owned(),
        steps
            .iter()
            .map(|s| (s.name.clone(), s.kind.clone(), s.compensation.clone()))
            .collect(),
    );
    let graphs = GRAPHS.get_or_init(Mutex::default);
    // A poisoned lock only means another thread panicked while inserting; the
    // map is still usable.
    let mut graphs = graphs.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(graph) = graphs.get(&key) {
        return *graph;
    }
    let leak = |text: &str| -> &'static str { Box::leak(text.to_owned().into_boxed_str()) };
    let infos: Vec<StepInfo> = steps
        .iter()
        .map(|s| {
            let kind = match s.kind.as_str() {
                "read_only" => StepKind::ReadOnly,
                "pivot" => StepKind::Pivot,
                "retriable" => StepKind::Retriable,
                _ => StepKind::Compensatable,
            };
            let info = StepInfo::new(leak(&s.name), kind);
            match &s.compensation {
                Some(c) => info.with_compensation(leak(c)),
                None => info,
            }
        })
        .collect();
    let graph = SagaGraph::new(leak(saga_type), Box::leak(infos.into_boxed_slice()));
    graphs.insert(key, graph);
    graph
}

/// The steps named in a fingerprint, all not reached.
fn parse_fingerprint(fingerprint: &str) -> Vec<StepView> {
    fingerprint
        .split(' ')
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, part)| {
            let mut step = StepView::unknown(i as u32);
            // `@N`: a member of the saga's group N, which the view does not show.
            let part = part.split_once('@').map_or(part, |(step, _)| step);
            let (name, rest) = part.split_once(':').unwrap_or((part, "compensate"));
            let (kind, compensation) = match rest.split_once('=') {
                // `release+confirm`: a TCC step's cancel, then its confirm.
                Some((kind, c)) => (
                    kind,
                    Some(c.split_once('+').map_or(c, |(cancel, _)| cancel).to_owned()),
                ),
                None => (rest, None),
            };
            step.name = name.to_owned();
            step.kind = kind.to_owned();
            step.compensation = compensation;
            step
        })
        .collect()
}

/// An entry's kind, attempt and text.
fn describe(entry: &Entry) -> (&'static str, Option<u32>, Option<String>) {
    match entry {
        Entry::StepStarted { attempt, .. } => ("step_started", Some(*attempt), None),
        Entry::StepSucceeded { .. } => ("step_succeeded", None, None),
        Entry::StepFailed { error, .. } => ("step_failed", None, Some(error.clone())),
        Entry::CompensationStarted { attempt, .. } => {
            ("compensation_started", Some(*attempt), None)
        }
        Entry::CompensationSucceeded { .. } => ("compensation_succeeded", None, None),
        Entry::CompensationFailed { error, .. } => {
            ("compensation_failed", None, Some(error.clone()))
        }
        Entry::Decided => ("decided", None, None),
        Entry::ConfirmStarted { attempt, .. } => ("confirm_started", Some(*attempt), None),
        Entry::Confirmed { .. } => ("confirmed", None, None),
        Entry::Finished { status, .. } => ("finished", None, Some(status.as_str().to_owned())),
        Entry::Intervention { retry: true, note } => {
            ("retry_compensations", None, Some(note.clone()))
        }
        Entry::Intervention { retry: false, note } => ("resolved", None, Some(note.clone())),
        Entry::Sent { messages } => {
            let list: Vec<_> = messages
                .iter()
                .map(|m| format!("{} to {}", m.id, m.destination))
                .collect();
            ("sent", None, Some(list.join(", ")))
        }
        Entry::Arm { branch, arm } => {
            ("arm", None, Some(format!("branch {branch} took arm {arm}")))
        }
    }
}

/// A time as RFC 3339 in UTC, to the millisecond.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// The marker of a step or compensation box in the graph crate's SVG.
const BOX_FILL: &str = "fill=\"currentColor\" fill-opacity=\"0.06\"";

/// Fills the graph's boxes with `fills`, in the order the graph crate draws
/// them: every step in source order, then every compensation in source order.
/// A box without a fill (the graph changed its drawing) keeps its own.
pub fn colour_svg(svg: &str, fills: &[&str]) -> String {
    let mut out = String::with_capacity(svg.len() + fills.len() * 16);
    let mut rest = svg;
    let mut fills = fills.iter();
    while let Some(at) = rest.find(BOX_FILL) {
        out.push_str(&rest[..at]);
        match fills.next() {
            Some(colour) => {
                out.push_str(&format!("fill=\"{colour}\" fill-opacity=\"0.35\""));
            }
            None => out.push_str(BOX_FILL),
        }
        rest = &rest[at + BOX_FILL.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_names_kinds_and_compensations() {
        let steps = parse_fingerprint("debit:compensate=refund@1 check:read_only@1 ship:pivot");
        let names: Vec<_> = steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["debit", "check", "ship"]);
        assert_eq!(steps[0].compensation.as_deref(), Some("refund"));
        assert_eq!(steps[1].kind, "read_only");
        assert_eq!(steps[2].compensation, None);
    }

    #[test]
    fn every_box_of_the_graph_gets_a_fill() {
        const STEPS: &[StepInfo] = &[
            StepInfo::new("a", StepKind::Compensatable).with_compensation("undo_a"),
            StepInfo::new("b", StepKind::ReadOnly),
        ];
        let svg = SagaGraph::new("t", STEPS).to_svg();
        let coloured = colour_svg(&svg, &["#000001", "#000002", "#000003"]);
        assert!(!coloured.contains(BOX_FILL), "{coloured}");
        for colour in ["#000001", "#000002", "#000003"] {
            assert!(coloured.contains(colour), "{colour} missing: {coloured}");
        }
    }
}
