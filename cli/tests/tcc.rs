//! A saga with a TCC step that decided to commit and crashed while
//! confirming, as `sagaflow` shows it: status `confirming`, the step
//! `confirming`, then `confirmed`.

mod common;

use common::{sagaflow, stderr, stdout};
use sagaflow::SagaId;
use sagaflow::durable::{Durability, Entry, NewSaga, SqliteStore, Store};
use serde_json::Value;

fn json(args: &[&str]) -> Value {
    let output = sagaflow(args);
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    serde_json::from_str(&stdout(&output)).unwrap()
}

/// A store with one `fly` saga whose journal is `journal`.
fn store_with(path: &std::path::Path, journal: Vec<Entry>) -> SagaId {
    // Opened and closed while no child is being started (see `common::SPAWN`).
    let _held = common::SPAWN.lock().unwrap_or_else(|p| p.into_inner());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(path, Durability::Full).unwrap();
        let id = SagaId::random();
        let saga = NewSaga {
            id,
            saga_type: "fly".into(),
            fingerprint: "hold_seat:tcc=release_seat+confirm_seat ticket:pivot".into(),
            input: b"{}".to_vec(),
        };
        store.create(saga).await.unwrap();
        store.append_all(id, journal).await.unwrap();
        id
    })
}

fn decided_and_confirming() -> Vec<Entry> {
    vec![
        Entry::StepStarted {
            index: 0,
            attempt: 1,
        },
        Entry::StepSucceeded {
            index: 0,
            output: b"40".to_vec(),
        },
        Entry::StepStarted {
            index: 1,
            attempt: 1,
        },
        Entry::StepSucceeded {
            index: 1,
            output: b"null".to_vec(),
        },
        Entry::Decided,
        Entry::ConfirmStarted {
            index: 0,
            attempt: 1,
        },
    ]
}

fn states(saga: &Value) -> Vec<(String, String)> {
    saga["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_saga_that_decided_shows_confirming_and_its_step_confirming() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sagas.db");
    let id = store_with(&path, decided_and_confirming());
    let store = path.to_str().unwrap();

    let listed = json(&["list", "--store", store, "--status", "confirming", "--json"]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], id.to_string());
    assert_eq!(listed[0]["status"], "confirming");
    let running = json(&["list", "--store", store, "--status", "running", "--json"]);
    assert_eq!(running.as_array().unwrap().len(), 0, "{running:?}");

    let saga = json(&["show", &id.to_string(), "--store", store, "--json"]);
    assert_eq!(saga["status"], "confirming");
    assert_eq!(
        states(&saga),
        [
            ("hold_seat".to_owned(), "confirming".to_owned()),
            ("ticket".to_owned(), "done".to_owned()),
        ]
    );
    let text = stdout(&sagaflow(&["show", &id.to_string(), "--store", store]));
    assert!(text.contains("confirming"), "{text}");
}

#[test]
fn a_confirmed_step_shows_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sagas.db");
    let mut journal = decided_and_confirming();
    journal.push(Entry::Confirmed { index: 0 });
    let id = store_with(&path, journal);
    let store = path.to_str().unwrap();
    let saga = json(&["show", &id.to_string(), "--store", store, "--json"]);
    assert_eq!(saga["status"], "confirming", "no `finished` yet");
    assert_eq!(states(&saga)[0].1, "confirmed");
}

#[test]
fn a_status_that_is_not_one_names_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sagas.db");
    store_with(&path, Vec::new());
    let output = sagaflow(&[
        "list",
        "--store",
        path.to_str().unwrap(),
        "--status",
        "confirmd",
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output)
            .contains("use running, confirming, parked, committed, compensated or resolved"),
        "{}",
        stderr(&output)
    );
}
