//! The `travel` binary's durable mode: crash on purpose after (or during) a
//! step, run again, and the trip is recovered and finished, exactly once.

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Command, Output};

use sagaflow::durable::{Durability, SagaStatus, SqliteStore, Store};
use sagaflow_examples::ledger::{Ledger, Line};

const TRAVEL: &str = env!("CARGO_BIN_EXE_travel");

fn travel(db: &Path, args: &[&str]) -> (Output, String) {
    let output = Command::new(TRAVEL)
        .arg("--durable")
        .arg(db)
        .args(args)
        .output()
        .expect("the travel binary runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output, text)
}

/// The saga the run in `text` started, from "as saga <id>."
fn started_id(text: &str) -> String {
    let at = text.find("as saga ").expect("the run names its saga") + "as saga ".len();
    text[at..at + 32].to_owned()
}

fn ledger(db: &Path) -> Vec<Line> {
    Ledger::read(format!("{}.ledger", db.display())).unwrap()
}

/// How many times `effect` was done for `saga`.
fn done(lines: &[Line], saga: &str, effect: &str) -> usize {
    lines
        .iter()
        .filter(|l| l.saga == saga && l.what == effect)
        .count()
}

fn status(db: &Path, id: &str) -> SagaStatus {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open_existing(db, Durability::Full)
            .unwrap_or_else(|e| panic!("opening {} after the run: {e}", db.display()));
        for status in SagaStatus::ALL {
            let sagas = store
                .with_status(status)
                .await
                .unwrap_or_else(|e| panic!("reading {}: {e}", db.display()));
            if sagas.iter().any(|s| s.id.to_string() == id) {
                return status;
            }
        }
        panic!("saga {id} is not in {}", db.display());
    })
}

#[test]
fn a_crash_after_a_step_is_recovered_on_the_next_run_without_doing_the_step_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("travel.db");

    let (output, text) = travel(&db, &["--crash-after", "Airline::book_flight"]);
    assert_eq!(output.status.signal(), Some(6), "it aborts:\n{text}");
    assert!(
        text.contains("CRASH (on purpose): `Airline::book_flight` is done"),
        "{text}"
    );
    let first = started_id(&text);
    assert_eq!(status(&db, &first), SagaStatus::Running);
    let lines = ledger(&db);
    assert_eq!(done(&lines, &first, "flight"), 1);
    // The hotel is booked at the same time as the flight: it may be done too.
    assert!(done(&lines, &first, "hotel") <= 1);

    let (output, text) = travel(&db, &[]);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("Found 1 unfinished trip(s)"), "{text}");
    assert!(
        text.contains(&format!("Trip {first}: ada, 3 nights in Lisbon")),
        "{text}"
    );
    assert!(
        text.contains("`Airline::book_flight` succeeded, its result recorded"),
        "{text}"
    );
    // The hotel's result had not been recorded yet: it runs again.
    assert!(
        text.contains("goes on after `Airline::book_flight`")
            || text.contains("goes on after `Hotels::book_hotel`")
            || text.contains("`Hotels::book_hotel` had started but its result was never recorded"),
        "{text}"
    );
    assert!(
        text.contains(&format!("Trip {first}: finished it: the trip is booked.")),
        "{text}"
    );
    let second = started_id(&text);
    assert_ne!(first, second);
    assert_eq!(status(&db, &first), SagaStatus::Committed);
    assert_eq!(status(&db, &second), SagaStatus::Committed);

    // Each effect once: the flight was read back from the store, not booked
    // again; the hotel, if it was done before the crash, was asked again with
    // its key and did not book twice.
    let lines = ledger(&db);
    for saga in [&first, &second] {
        for effect in ["debit", "flight", "hotel", "email"] {
            assert_eq!(done(&lines, saga, effect), 1, "{effect} of {saga}");
        }
    }
    let again: Vec<&str> = lines
        .iter()
        .filter(|l| l.what.starts_with("again:"))
        .map(|l| l.what.as_str())
        .collect();
    assert!(again.is_empty() || again == ["again:hotel"], "{again:?}");
    assert!(
        text.contains("Ada has €200.00 left (she started with €2000.00); 2 flight(s) and 2 hotel room(s) booked"),
        "{text}"
    );

    // A third run finds nothing to recover.
    let (output, text) = travel(&db, &[]);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("None: every trip"), "{text}");
}

#[test]
fn a_step_cut_short_runs_again_with_its_key_and_the_service_does_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("travel.db");

    let (output, text) = travel(&db, &["--crash-during", "Hotels::book_hotel"]);
    assert_eq!(output.status.signal(), Some(6), "it aborts:\n{text}");
    let id = started_id(&text);
    assert_eq!(done(&ledger(&db), &id, "hotel"), 1, "the hotel was booked");

    let (output, text) = travel(&db, &[]);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "`Hotels::book_hotel` had started but its result was never recorded (the ledger shows the service did it): recovery runs it again with the same idempotency key ({id}-2)"
        )),
        "{text}"
    );
    // The flight runs in the hotel's group: whether its outcome was written
    // before the crash is a matter of timing, so it may be named here too.
    assert!(
        text.contains("did not do it twice: hotel")
            || text.contains(&format!(
                "did not do it twice: flight ({id}-1), hotel ({id}-2)"
            )),
        "{text}"
    );
    assert_eq!(status(&db, &id), SagaStatus::Committed);
    let lines = ledger(&db);
    assert_eq!(done(&lines, &id, "hotel"), 1, "booked once");
    assert_eq!(done(&lines, &id, "again:hotel"), 1, "asked twice");
    // Its sibling in the group was either recorded or run again with its
    // key: either way the airline booked one seat.
    assert_eq!(done(&lines, &id, "flight"), 1, "the flight booked once");
    assert!(
        lines
            .iter()
            .filter(|l| l.saga == id && l.effect() == "hotel")
            .all(|l| l.key == format!("{id}-2")),
        "{lines:?}"
    );
}

#[test]
fn a_crash_while_undoing_goes_on_undoing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("travel.db");

    let (output, text) = travel(&db, &["--to", "Venice", "--crash-after", "cancel_flight"]);
    assert_eq!(output.status.signal(), Some(6), "it aborts:\n{text}");
    let id = started_id(&text);
    let lines = ledger(&db);
    assert_eq!(done(&lines, &id, "cancel-flight"), 1);
    assert_eq!(done(&lines, &id, "refund"), 0);

    let (output, text) = travel(&db, &[]);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("`Hotels::book_hotel` failed: no hotel rooms left in Venice"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Trip {id}: `Hotels::book_hotel` had failed, so it undid `Airline::book_flight`, then `Bank::debit_customer`"
        )),
        "{text}"
    );
    assert_eq!(status(&db, &id), SagaStatus::Compensated);
    let lines = ledger(&db);
    assert_eq!(done(&lines, &id, "cancel-flight"), 1);
    assert_eq!(done(&lines, &id, "refund"), 1);
}

#[test]
fn a_crash_needs_a_store_and_a_known_step() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("travel.db");
    let (output, text) = travel(&db, &["--crash-after", "book_taxi"]);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("`book_taxi` is neither a step nor a compensation of `book_trip`; choose one of: Bank::debit_customer, Airline::book_flight, Hotels::book_hotel, email_itinerary, refund_customer, cancel_flight, cancel_hotel"),
        "{text}"
    );

    let output = Command::new(TRAVEL)
        .args(["--crash-after", "Airline::book_flight"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("need `--durable FILE`"));
}

/// The grammar of a ledger line, as `sagaflow_examples::ledger`, the binary's
/// documentation and the README state it.
const LEDGER_LINE: &str = "`<what> <saga id> <idempotency key> [<JSON details>]`";

/// Why `line` is not `<what> <saga id> <idempotency key> [<JSON details>]`, where
/// `<what>` is an effect, `call:<effect>` or `again:<effect>`, and only an effect
/// line has details.
fn ledger_line_error(line: &str) -> Option<String> {
    const EFFECTS: &[&str] = &[
        "debit",
        "refund",
        "flight",
        "cancel-flight",
        "hotel",
        "cancel-hotel",
        "email",
    ];
    let mut fields = line.splitn(4, ' ');
    let (what, saga, key) = match (fields.next(), fields.next(), fields.next()) {
        (Some(what), Some(saga), Some(key)) => (what, saga, key),
        _ => return Some("fewer than three fields".to_owned()),
    };
    let details = fields.next();
    let (prefix, effect) = match what.split_once(':') {
        Some((prefix @ ("call" | "again"), effect)) => (Some(prefix), effect),
        Some(_) => return Some(format!("`{what}` is not `call:` or `again:`")),
        None => (None, what),
    };
    if !EFFECTS.contains(&effect) {
        return Some(format!("`{effect}` is not an effect"));
    }
    if saga.len() != 32 || !saga.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some(format!("`{saga}` is not a saga id"));
    }
    let step = key
        .strip_prefix(saga)
        .and_then(|rest| rest.strip_prefix('-'))
        .map(|rest| rest.strip_suffix("-undo").unwrap_or(rest));
    if step.is_none_or(|n| n.parse::<u32>().is_err()) {
        return Some(format!("`{key}` is not `<saga id>-<step>[-undo]`"));
    }
    match (prefix, details) {
        (None, Some(json)) if serde_json::from_str::<serde_json::Value>(json).is_ok() => None,
        (None, _) => Some("an effect line without JSON details".to_owned()),
        (Some(_), None) => None,
        (Some(_), Some(_)) => Some(format!("a `{what}` line with details")),
    }
}

#[test]
fn the_ledger_lines_are_in_the_documented_format() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("travel.db");
    // A repeat (`again:`), then a trip that is undone (`-undo` keys).
    let _ = travel(&db, &["--crash-during", "Hotels::book_hotel"]);
    let (output, text) = travel(&db, &["--to", "Venice"]);
    assert!(output.status.success(), "{text}");

    let file = std::fs::read_to_string(format!("{}.ledger", db.display())).unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for line in file.lines() {
        if let Some(why) = ledger_line_error(line) {
            panic!("ledger line `{line}` is not {LEDGER_LINE}: {why}");
        }
        kinds.insert(line.split([':', ' ']).next().unwrap().to_owned());
    }
    for kind in ["call", "again", "debit", "refund", "cancel-flight"] {
        assert!(kinds.contains(kind), "no `{kind}` line in\n{file}");
    }
    // The checker itself refuses what the grammar does not allow.
    let id = "0123456789abcdef0123456789abcdef";
    for bad in [
        format!("call:debit {id} {id}-0 {{}}"),
        format!("debit {id} {id}-0"),
        format!("call:nothing {id} {id}-0"),
        format!("call:debit {id} other-key"),
    ] {
        assert!(ledger_line_error(&bad).is_some(), "`{bad}` passed");
    }

    // Where the format is written down, it is written the same way.
    for (doc, text) in [
        ("README.md", include_str!("../../README.md")),
        ("the travel binary", include_str!("../src/bin/travel.rs")),
        ("the ledger module", include_str!("../src/ledger.rs")),
    ] {
        for needle in [LEDGER_LINE, "`call:<effect>`", "`again:<effect>`"] {
            assert!(text.contains(needle), "{doc} does not say {needle}");
        }
    }
}
