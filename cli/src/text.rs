//! The terminal's view: tables for `list` and `show`.

use std::time::{Duration, SystemTime};

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};

use crate::view::{SagaView, rfc3339};

/// A new table in the style every command uses.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    table
}

/// A duration as a person reads an age: the largest unit or two.
pub fn age(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h{}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{}h", secs / 86400, secs % 86400 / 3600),
    }
}

/// `list`: one line a saga.
pub fn list(sagas: &[SagaView], now: SystemTime) -> String {
    if sagas.is_empty() {
        return "no sagas match\n".to_owned();
    }
    let mut t = table(&[
        "id",
        "type",
        "status",
        "age",
        "at step",
        "failed step",
        "error",
    ]);
    for saga in sagas {
        let record = &saga.saga.record;
        t.add_row(vec![
            record.id.to_string(),
            record.saga_type.clone(),
            record.status.to_string(),
            saga.age(now).map(age).unwrap_or_default(),
            saga.at_step().map(|s| s.name.clone()).unwrap_or_default(),
            saga.failed_step()
                .map(|s| s.name.clone())
                .unwrap_or_default(),
            saga.error().unwrap_or_default().to_owned(),
        ]);
    }
    format!("{t}\n")
}

/// `show`: the saga's input, its graph with each step's state, the report and
/// the journal.
pub fn show(saga: &SagaView, now: SystemTime) -> String {
    let record = &saga.saga.record;
    let mut out = format!(
        "saga {} ({})\nstatus: {}\n",
        record.id, record.saga_type, record.status
    );
    if let Some(created) = saga.saga.created_at {
        let ago = saga.age(now).map(age).unwrap_or_default();
        out.push_str(&format!("started: {} ({ago} ago)\n", rfc3339(created)));
    }
    if let Some(updated) = saga.saga.updated_at {
        out.push_str(&format!("status since: {}\n", rfc3339(updated)));
    }
    let input = serde_json::to_string_pretty(&saga.input()).unwrap_or_default();
    out.push_str(&format!("\ninput:\n{input}\n"));

    out.push_str("\ngraph:\n  start\n");
    for step in &saga.steps {
        let comp = step
            .compensation
            .as_deref()
            .map(|c| format!(", undone by {c}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  → {}. {} ({}{comp}): {}\n",
            step.index + 1,
            step.name,
            step.kind,
            step.state.as_str()
        ));
    }
    out.push_str(&format!("  → {}\n", record.status));

    let mut report = table(&["#", "step", "state", "attempts", "undo attempts", "error"]);
    for step in &saga.steps {
        report.add_row(vec![
            (step.index + 1).to_string(),
            step.name.clone(),
            step.state.as_str().to_owned(),
            step.attempts.to_string(),
            step.compensation_attempts.to_string(),
            step.error.clone().unwrap_or_default(),
        ]);
    }
    out.push_str(&format!("\nreport:\n{report}\n"));

    let mut journal = table(&["seq", "time", "entry", "step", "attempt", "text"]);
    for entry in saga.journal() {
        journal.add_row(vec![
            entry.seq.to_string(),
            entry.at.map(rfc3339).unwrap_or_default(),
            entry.kind.to_owned(),
            entry.step.unwrap_or_default(),
            entry.attempt.map(|a| a.to_string()).unwrap_or_default(),
            entry.text.unwrap_or_default(),
        ]);
    }
    out.push_str(&format!("\njournal:\n{journal}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_the_largest_units() {
        assert_eq!(age(Duration::from_secs(5)), "5s");
        assert_eq!(age(Duration::from_secs(125)), "2m5s");
        assert_eq!(age(Duration::from_secs(7260)), "2h1m");
        assert_eq!(age(Duration::from_secs(90000)), "1d1h");
    }
}
