//! `sagaflow` end to end: the built binary over a store that real durable runs
//! filled.

mod common;

use common::{HOSTILE, fill, sagaflow, stderr, stdout};
use serde_json::Value;

fn json(args: &[&str]) -> Value {
    let output = sagaflow(args);
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    serde_json::from_str(&stdout(&output)).unwrap()
}

#[test]
fn list_shows_every_saga_newest_first_with_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ids) = fill(dir.path());
    let store = path.to_str().unwrap();

    let all = json(&["list", "--store", store, "--json"]);
    let rows = all.as_array().unwrap();
    let listed: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let expected: Vec<String> = [
        ids.running,
        ids.parked_again,
        ids.parked,
        ids.compensated,
        ids.committed,
    ]
    .iter()
    .map(|id| id.to_string())
    .collect();
    assert_eq!(listed, expected);
    let statuses: Vec<&str> = rows.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        ["running", "parked", "parked", "compensated", "committed"]
    );
    let running = &rows[0];
    assert_eq!(running["type"], "book_trip");
    assert_eq!(running["at_step"], "send_ticket");
    assert!(running["failed_step"].is_null());
    let parked = &rows[1];
    assert_eq!(parked["failed_step"], "charge_card");
    // Parked because the compensation failed: that error comes first.
    assert_eq!(
        parked["error"],
        "seat 42 of Linus could not be released: airline offline"
    );
    assert_eq!(rows[3]["error"], "card of Grace declined");
    assert!(rows[4]["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(rows[4]["age_seconds"].as_u64().unwrap() < 600);

    // Filters.
    let parked = json(&["list", "--store", store, "--status", "parked", "--json"]);
    assert_eq!(parked.as_array().unwrap().len(), 2);
    let newest = json(&["list", "--store", store, "--limit", "1", "--json"]);
    assert_eq!(newest[0]["id"], ids.running.to_string());
    assert_eq!(newest.as_array().unwrap().len(), 1);
    let other = json(&["list", "--store", store, "--type", "other_saga", "--json"]);
    assert!(other.as_array().unwrap().is_empty());
    let recent = json(&["list", "--store", store, "--since", "1h", "--json"]);
    assert_eq!(recent.as_array().unwrap().len(), 5);
    let future = json(&[
        "list",
        "--store",
        store,
        "--since",
        "2999-01-01T00:00:00Z",
        "--json",
    ]);
    assert!(future.as_array().unwrap().is_empty());

    // The table says the same for people.
    let table = stdout(&sagaflow(&[
        "list",
        "--store",
        store,
        "--status",
        "compensated",
    ]));
    assert!(table.contains(&ids.compensated.to_string()), "{table}");
    assert!(table.contains("card of Grace declined"), "{table}");
    assert!(!table.contains(&ids.committed.to_string()), "{table}");
}

#[test]
fn show_gives_input_journal_report_and_graph_states() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ids) = fill(dir.path());
    let store = path.to_str().unwrap();
    let id = ids.parked.to_string();

    let saga = json(&["show", &id, "--store", store, "--json"]);
    assert_eq!(saga["status"], "parked");
    assert_eq!(saga["input"]["trip"]["customer"], HOSTILE);
    let states: Vec<(&str, &str)> = saga["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("hold_seat", "compensation failed"),
            ("charge_card", "failed"),
            ("send_ticket", "not reached"),
        ]
    );
    let journal = saga["journal"].as_array().unwrap();
    let kinds: Vec<&str> = journal
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds[..4],
        [
            "step_started",
            "step_succeeded",
            "step_started",
            "step_failed"
        ]
    );
    assert_eq!(kinds.last(), Some(&"finished"));
    assert_eq!(journal.last().unwrap()["text"], "parked");
    assert_eq!(journal[0]["step"], "hold_seat");
    assert_eq!(journal[0]["attempt"], 1);
    assert!(
        journal
            .iter()
            .all(|e| e["at"].as_str().is_some_and(|t| t.ends_with('Z')))
    );
    let undo = journal
        .iter()
        .find(|e| e["kind"] == "compensation_failed")
        .unwrap();
    assert_eq!(undo["step"], "release_seat");
    assert!(undo["text"].as_str().unwrap().contains("airline offline"));

    let text = stdout(&sagaflow(&["show", &id, "--store", store]));
    for part in [
        "status: parked",
        "1. hold_seat (compensate, undone by release_seat): compensation failed",
        "2. charge_card (compensate, undone by refund_card): failed",
        "3. send_ticket (retriable): not reached",
        "compensation_failed",
        "airline offline",
        "\"seats\": 2",
    ] {
        assert!(text.contains(part), "{part:?} missing from:\n{text}");
    }

    let committed = json(&[
        "show",
        &ids.committed.to_string(),
        "--store",
        store,
        "--json",
    ]);
    assert!(
        committed["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "done")
    );
    let compensated = json(&[
        "show",
        &ids.compensated.to_string(),
        "--store",
        store,
        "--json",
    ]);
    assert_eq!(compensated["steps"][0]["state"], "compensated");
}

#[test]
fn two_interventions_at_once_one_wins_the_other_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ids) = fill(dir.path());
    let store = path.to_str().unwrap();
    let id = ids.parked_again.to_string();

    let first = sagaflow(&[
        "retry-compensations",
        &id,
        "--store",
        store,
        "--note",
        "ada: airline back",
    ]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).contains("sent back to compensating"));
    let second = sagaflow(&[
        "resolve",
        &id,
        "--store",
        store,
        "--note",
        "bob: refunded by hand",
    ]);
    assert_eq!(second.status.code(), Some(4));
    let message = stderr(&second);
    assert_eq!(
        message,
        format!(
            "sagaflow: saga {id} is running, not parked, so nothing was done; someone sent it \
             back to compensating, with the note \"ada: airline back\"\n"
        )
    );
    let saga = json(&["show", &id, "--store", store, "--json"]);
    assert_eq!(saga["status"], "running");
    let notes: Vec<&Value> = saga["journal"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "retry_compensations" || e["kind"] == "resolved")
        .collect();
    assert_eq!(notes.len(), 1);

    let resolved = sagaflow(&[
        "resolve",
        &ids.parked.to_string(),
        "--store",
        store,
        "--note",
        "done by hand",
    ]);
    assert!(resolved.status.success(), "{}", stderr(&resolved));
    let saga = json(&["show", &ids.parked.to_string(), "--store", store, "--json"]);
    assert_eq!(saga["status"], "resolved");

    let committed = sagaflow(&[
        "resolve",
        &ids.committed.to_string(),
        "--store",
        store,
        "--note",
        "x",
    ]);
    assert_eq!(committed.status.code(), Some(4));
    assert!(stderr(&committed).contains("is committed, not parked"));
}

#[test]
fn purge_deletes_old_finished_sagas_only() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ids) = fill(dir.path());
    let store = path.to_str().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));

    // Nothing finished 30 days ago.
    let none = json(&[
        "purge",
        "--store",
        store,
        "--finished-before",
        "30d",
        "--json",
    ]);
    assert_eq!(none["purged"].as_array().unwrap().len(), 0);

    let dry = json(&[
        "purge",
        "--store",
        store,
        "--finished-before",
        "1ms",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(dry["dry_run"], true);
    let mut would: Vec<&str> = dry["purged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    would.sort();
    let mut finished = vec![ids.committed.to_string(), ids.compensated.to_string()];
    finished.sort();
    assert_eq!(would, finished);
    assert_eq!(
        json(&["list", "--store", store, "--json"])
            .as_array()
            .unwrap()
            .len(),
        5
    );

    let text = stdout(&sagaflow(&[
        "purge",
        "--store",
        store,
        "--finished-before",
        "1ms",
    ]));
    assert!(text.starts_with("purged 2 finished saga(s)\n"), "{text}");
    let left = json(&["list", "--store", store, "--json"]);
    let statuses: Vec<&str> = left
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["running", "parked", "parked"]);
    let gone = sagaflow(&["show", &ids.committed.to_string(), "--store", store]);
    assert_eq!(gone.status.code(), Some(3));
}

#[test]
fn errors_are_one_line_on_stderr_with_an_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ids) = fill(dir.path());
    let store = path.to_str().unwrap();
    let one_line = |args: &[&str], code: i32, needle: &str| {
        let output = sagaflow(args);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("sagaflow: "), "{err}");
        assert!(err.contains(needle), "{args:?}: {needle:?} not in {err}");
        assert!(stdout(&output).is_empty());
    };
    let missing = dir.path().join("nope.db");
    one_line(
        &["list", "--store", missing.to_str().unwrap()],
        1,
        "nope.db",
    );
    assert!(!missing.exists(), "a missing store was created");

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just some notes, not a database at all........................................................................").unwrap();
    one_line(&["list", "--store", text.to_str().unwrap()], 1, "notes.txt");

    let other = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&other).unwrap();
    conn.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total INTEGER);")
        .unwrap();
    drop(conn);
    one_line(&["list", "--store", other.to_str().unwrap()], 1, "other.db");

    // Written by a newer sagaflow: refused, not modified.
    let newer = dir.path().join("newer.db");
    std::fs::copy(&path, &newer).unwrap();
    let conn = rusqlite::Connection::open(&newer).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    one_line(&["list", "--store", newer.to_str().unwrap()], 1, "newer");

    one_line(
        &["show", "not-an-id", "--store", store],
        2,
        "is not a saga id",
    );
    let unknown = "0123456789abcdef0123456789abcdef";
    one_line(
        &["show", unknown, "--store", store],
        3,
        &format!("no saga {unknown}"),
    );
    one_line(
        &["resolve", unknown, "--store", store, "--note", "x"],
        3,
        "no saga",
    );
    one_line(
        &["list", "--store", store, "--status", "stuck"],
        2,
        "not a status",
    );
    one_line(
        &["list", "--store", store, "--since", "yesterday"],
        2,
        "neither a duration",
    );
    one_line(&["list"], 2, "no store given");
    one_line(
        &["resolve", &ids.parked.to_string(), "--store", store],
        2,
        "--note",
    );
}

/// The store takes an exclusive lock: while the application has it open, the
/// command says so instead of writing beside it.
#[test]
fn a_store_in_use_by_a_running_application_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = fill(dir.path());
    let app = {
        let _held = common::SPAWN.lock().unwrap_or_else(|p| p.into_inner());
        sagaflow::durable::SqliteStore::open(&path, sagaflow::durable::Durability::Full).unwrap()
    };
    let output = sagaflow(&["list", "--store", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("another store has this file open"), "{err}");
    {
        // Closed while no child is being started (see `common::SPAWN`).
        let _held = common::SPAWN.lock().unwrap_or_else(|p| p.into_inner());
        drop(app);
    }
    assert!(
        sagaflow(&["list", "--store", path.to_str().unwrap()])
            .status
            .success()
    );
}

/// A store whose outbox holds a delivered, a dead and a pending message of
/// one saga; answers the saga's id.
fn outbox_store(path: &std::path::Path) -> sagaflow::SagaId {
    use sagaflow::durable::{Durability, Entry, NewSaga, SqliteStore, Store};
    use sagaflow::outbox::{Message, Outbox, Settlement};

    // Opened and closed while no child is being started (see `common::SPAWN`).
    let _held = common::SPAWN.lock().unwrap_or_else(|p| p.into_inner());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(path, Durability::Full).unwrap();
        let id = sagaflow::SagaId::random();
        let saga = NewSaga {
            id,
            saga_type: "checkout".into(),
            fingerprint: "f".into(),
            input: b"{}".to_vec(),
        };
        store.create(saga).await.unwrap();
        let message = |n: u32, destination: &str| Message {
            id: format!("{id}-s0-{n}"),
            destination: destination.into(),
            key: (n == 1).then(|| "order-7".to_owned()),
            payload: format!("{{\"n\":{n}}}").into_bytes(),
            created_ms: 1_764_633_600_000,
        };
        let entries = vec![
            Entry::StepSucceeded {
                index: 0,
                output: b"null".to_vec(),
            },
            Entry::Sent {
                messages: vec![
                    message(0, "audit"),
                    message(1, "notifications"),
                    message(2, "inventory"),
                ],
            },
        ];
        store.append_all(id, entries).await.unwrap();
        let claim = store
            .claim_messages(10, std::time::Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(claim.messages.len(), 3);
        let settlements = vec![
            Settlement::Delivered {
                id: format!("{id}-s0-0"),
            },
            Settlement::Dead {
                id: format!("{id}-s0-1"),
                error: "stream notifications: NOPERM".into(),
            },
            Settlement::Released {
                id: format!("{id}-s0-2"),
            },
        ];
        store
            .settle_messages(claim.token, settlements)
            .await
            .unwrap();
        drop(store);
        id
    })
}

#[test]
fn messages_lists_the_outbox_and_resend_sends_a_dead_one_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let id = outbox_store(&path);
    let store = path.to_str().unwrap();

    let all = json(&["messages", "--store", store, "--json"]);
    let rows = all.as_array().unwrap();
    let states: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["destination"].as_str().unwrap(),
                r["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("audit", "delivered"),
            ("notifications", "dead"),
            ("inventory", "pending")
        ]
    );
    let dead = &rows[1];
    assert_eq!(dead["id"], format!("{id}-s0-1"));
    assert_eq!(dead["saga_id"], id.to_string());
    assert_eq!(dead["key"], "order-7");
    assert_eq!(dead["payload"]["n"], 1);
    assert_eq!(dead["attempts"], 1);
    assert_eq!(dead["last_error"], "stream notifications: NOPERM");
    assert_eq!(dead["created_at"], "2025-12-02T00:00:00.000Z");
    assert!(dead["delivered_at"].is_null());
    assert!(rows[0]["delivered_at"].as_str().unwrap().ends_with('Z'));

    let only_dead = json(&["messages", "--store", store, "--state", "dead", "--json"]);
    assert_eq!(only_dead.as_array().unwrap().len(), 1);
    let other = "0123456789abcdef0123456789abcdef";
    let none = json(&["messages", "--store", store, "--saga", other, "--json"]);
    assert!(none.as_array().unwrap().is_empty());
    let ours = json(&[
        "messages",
        "--store",
        store,
        "--saga",
        &id.to_string(),
        "--json",
    ]);
    assert_eq!(ours.as_array().unwrap().len(), 3);
    let first = json(&["messages", "--store", store, "--limit", "1", "--json"]);
    assert_eq!(first[0]["destination"], "audit");

    let table = stdout(&sagaflow(&[
        "messages", "--store", store, "--state", "dead",
    ]));
    assert!(table.contains(&format!("{id}-s0-1")), "{table}");
    assert!(table.contains("NOPERM"), "{table}");
    assert!(!table.contains("inventory"), "{table}");

    let resent = sagaflow(&["resend", &format!("{id}-s0-1"), "--store", store]);
    assert!(resent.status.success(), "{}", stderr(&resent));
    assert!(stdout(&resent).contains("pending again"));
    let after = json(&["messages", "--store", store, "--state", "dead", "--json"]);
    assert!(after.as_array().unwrap().is_empty());
    let pending = json(&["messages", "--store", store, "--state", "pending", "--json"]);
    assert_eq!(pending[0]["id"], format!("{id}-s0-1"));
    assert_eq!(pending[0]["attempts"], 0);

    // Not dead any more, or never there: exit code 5, one line.
    for missing in [format!("{id}-s0-1"), "no-such-message".to_owned()] {
        let again = sagaflow(&["resend", &missing, "--store", store]);
        assert_eq!(again.status.code(), Some(5), "{}", stderr(&again));
        let err = stderr(&again);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("no dead message"), "{err}");
        assert!(stdout(&again).is_empty());
    }
    let bad = sagaflow(&["messages", "--store", store, "--state", "lost"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("not a message state"));
}
