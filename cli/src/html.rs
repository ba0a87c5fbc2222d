//! The pages of `sagaflow serve`, as strings. Every text that comes from the
//! store goes through [`esc`]; only the graph's SVG is inserted as it is, and
//! the graph crate escapes every name in it for XML.

use std::time::SystemTime;

use sagaflow::durable::{SagaFilter, SagaStatus};

use crate::text::age;
use crate::view::{SagaView, StepState, rfc3339};

/// `text` escaped for HTML text and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1f2328}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #d0d7de;padding:3px 8px;\
text-align:left;vertical-align:top}th{background:#f6f8fa}pre{background:#f6f8fa;padding:8px;\
overflow:auto}.error{color:#cf222e}.flash{background:#dafbe1;padding:6px}\
.swatch{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 .8em;vertical-align:middle}\
form.act{display:inline-block;border:1px solid #d0d7de;padding:8px;margin-right:1em}";

/// A whole page around `body`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{} · sagaflow</title><style>{STYLE}</style></head><body>\
         <p><a href=\"/\">sagaflow</a></p>{body}</body></html>\n",
        esc(title)
    )
}

/// The list with its filter form.
pub fn list_page(sagas: &[SagaView], filter: &SagaFilter, now: SystemTime) -> String {
    let mut body = String::from(
        "<h1>Sagas</h1><form method=\"get\" action=\"/\">status <select name=\"status\"><option value=\"\">any</option>",
    );
    for status in [
        SagaStatus::Parked,
        SagaStatus::Running,
        SagaStatus::Confirming,
        SagaStatus::Committed,
        SagaStatus::Compensated,
        SagaStatus::Resolved,
    ] {
        let selected = if filter.status == Some(status) {
            " selected"
        } else {
            ""
        };
        body.push_str(&format!("<option{selected}>{status}</option>"));
    }
    body.push_str(&format!(
        "</select> type <input name=\"type\" value=\"{}\"> since <input name=\"since\" \
         placeholder=\"2h\" size=\"6\"> limit <input name=\"limit\" value=\"{}\" size=\"4\"> \
         <button>Filter</button></form>",
        esc(filter.saga_type.as_deref().unwrap_or("")),
        filter.limit.map(|l| l.to_string()).unwrap_or_default(),
    ));
    if sagas.is_empty() {
        body.push_str("<p>No sagas match.</p>");
        return page("sagas", &body);
    }
    body.push_str("<table><tr><th>id</th><th>type</th><th>status</th><th>age</th><th>at step</th><th>failed step</th><th>error</th></tr>");
    for saga in sagas {
        let record = &saga.saga.record;
        body.push_str(&format!(
            "<tr><td><a href=\"/saga/{id}\"><code>{id}</code></a></td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td class=\"error\">{}</td></tr>",
            esc(&record.saga_type),
            record.status,
            saga.age(now).map(age).unwrap_or_default(),
            esc(saga.at_step().map_or("", |s| s.name.as_str())),
            esc(saga.failed_step().map_or("", |s| s.name.as_str())),
            esc(saga.error().unwrap_or("")),
            id = record.id,
        ));
    }
    body.push_str("</table>");
    page("sagas", &body)
}

/// A saga's page: what it is, its graph, the interventions, report, input
/// and journal.
pub fn saga_page(saga: &SagaView, now: SystemTime, writable: bool, flash: Option<&str>) -> String {
    let record = &saga.saga.record;
    let mut body = String::new();
    if let Some(flash) = flash {
        body.push_str(&format!(
            "<p class=\"flash\" id=\"flash\">{}</p>",
            esc(flash)
        ));
    }
    body.push_str(&format!(
        "<h1>{} <code>{}</code></h1><p>status: <strong id=\"status\">{}</strong>",
        esc(&record.saga_type),
        record.id,
        record.status
    ));
    if let (Some(created), Some(ago)) = (saga.saga.created_at, saga.age(now)) {
        body.push_str(&format!(
            " · started {} ({} ago)",
            rfc3339(created),
            age(ago)
        ));
    }
    if let Some(error) = saga.error() {
        body.push_str(&format!("</p><p class=\"error\">{}", esc(error)));
    }
    body.push_str("</p><h2>Graph</h2>");
    body.push_str(&saga.svg());
    body.push_str("<p>");
    for state in [
        StepState::Done,
        StepState::Failed,
        StepState::Compensated,
        StepState::CompensationFailed,
        StepState::Running,
        StepState::NotReached,
    ] {
        body.push_str(&format!(
            "<span class=\"swatch\" style=\"background:{}\"></span>{}",
            state.colour(),
            state.as_str()
        ));
    }
    body.push_str("</p>");
    if record.status == SagaStatus::Parked {
        body.push_str(&interventions(saga, writable));
    }
    body.push_str(&report(saga));
    let input = serde_json::to_string_pretty(&saga.input()).unwrap_or_default();
    body.push_str(&format!(
        "<h2>Input</h2><pre id=\"input\">{}</pre>",
        esc(&input)
    ));
    body.push_str(&journal(saga));
    page(&format!("{} {}", record.saga_type, record.id), &body)
}

fn interventions(saga: &SagaView, writable: bool) -> String {
    let id = saga.saga.record.id;
    let mut out = String::from("<h2>Interventions</h2>");
    if !writable {
        out.push_str("<p>This page was started without a token: it cannot write. Start it with <code>--token</code> or <code>SAGAFLOW_TOKEN</code>.</p>");
    }
    for (action, label, what) in [
        (
            "retry-compensations",
            "Retry compensations",
            "Send it back to compensating: the failed compensations run again at the application's next recovery.",
        ),
        (
            "resolve",
            "Resolve",
            "Mark it resolved: you repaired it by hand.",
        ),
    ] {
        out.push_str(&format!(
            "<form class=\"act\" method=\"post\" action=\"/saga/{id}/{action}\" id=\"{action}\">\
             <p>{what}</p><label>note <input name=\"note\" required size=\"30\"></label> \
             <label>token <input name=\"token\" type=\"password\" size=\"12\"></label> \
             <button type=\"submit\">{label}</button></form>"
        ));
    }
    out
}

fn report(saga: &SagaView) -> String {
    let mut out = String::from(
        "<h2>Report</h2><table id=\"report\"><tr><th>#</th><th>step</th><th>kind</th><th>compensation</th><th>state</th><th>attempts</th><th>undo attempts</th><th>error</th></tr>",
    );
    for step in &saga.steps {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td><span class=\"swatch\" style=\"background:{}\"></span>{}</td>\
             <td>{}</td><td>{}</td><td class=\"error\">{}</td></tr>",
            step.index + 1,
            esc(&step.name),
            esc(&step.kind),
            esc(step.compensation.as_deref().unwrap_or("")),
            step.state.colour(),
            step.state.as_str(),
            step.attempts,
            step.compensation_attempts,
            esc(step.error.as_deref().unwrap_or("")),
        ));
    }
    out.push_str("</table>");
    out
}

fn journal(saga: &SagaView) -> String {
    let mut out = String::from(
        "<h2>Journal</h2><table id=\"journal\"><tr><th>seq</th><th>time</th><th>entry</th><th>step</th><th>attempt</th><th>text</th></tr>",
    );
    for entry in saga.journal() {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            entry.seq,
            entry.at.map(rfc3339).unwrap_or_default(),
            entry.kind,
            esc(entry.step.as_deref().unwrap_or("")),
            entry.attempt.map(|a| a.to_string()).unwrap_or_default(),
            esc(entry.text.as_deref().unwrap_or("")),
        ));
    }
    out.push_str("</table>");
    out
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn escapes_what_could_open_markup_or_end_an_attribute() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}
