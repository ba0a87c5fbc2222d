//! The crash test: a child process (`travel_crash_child`) runs many durable
//! `travel` sagas at once and is killed, again and again; after each death the
//! test restarts it, and checks from the store and from the services' ledger
//! that recovery lost nothing and did nothing twice.
//!
//! Two phases:
//!
//! - deterministic: for each kind of transition the store writes, the child
//!   aborts right after (and, in a second run, right before) its n-th write of
//!   that kind; a restart recovers to the end; everything must have ended;
//! - random: the child is SIGKILLed at a random moment 5–60 ms after it starts,
//!   [`RANDOM_KILLS`] times in a row, each time restarted (and so recovering what
//!   the last one left) at once; a last run only recovers, to the end.
//!
//! The deterministic phase uses `Durability::Full` and a ledger synced on each
//! effect; the random phase `Durability::Normal` and an unsynced ledger (a
//! killed process loses neither; only a power loss would).
//!
//! What is checked, after every restart and at the end (see [`check`]):
//!
//! - no saga lost: every saga the child reported started is in the store;
//! - write-ahead: every service call has a durable intent (a `StepStarted` or
//!   `CompensationStarted` of that step) in the saga's journal, and the calls of
//!   a step are no more than its intents;
//! - compensations ran only for steps that had begun and succeeded, and only in
//!   sagas with a failed step;
//! - every call of a step, first attempt or re-run after a crash, carried the
//!   same idempotency key, `<saga id>-<index>` (`-undo` for its compensation);
//! - no effect twice: at most one debit, flight, hotel, e-mail, refund or
//!   cancellation per saga; every step recorded as succeeded (or undone) has its
//!   effect in the ledger;
//! - at the end: no saga running; each committed (one of each effect, nothing
//!   undone), compensated (every succeeded compensatable step undone exactly
//!   once, no e-mail) or parked (with its reason: the refund the bank
//!   refuses); the flights that stand are exactly those of committed trips.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sagaflow::durable::{Durability, Entry, SagaRecord, SagaStatus, SqliteStore, Store};
use sagaflow_examples::ledger::{Ledger, Line};
use sagaflow_examples::travel::Trip;

const CHILD: &str = env!("CARGO_BIN_EXE_travel_crash_child");

/// How many times the random phase kills the child.
const RANDOM_KILLS: usize = 210;

/// `SIGABRT`, what `std::process::abort` dies of.
const SIGABRT: i32 = 6;

/// The step index of each effect the services write, and whether it is a
/// compensation.
fn step_of(effect: &str) -> Option<(u32, bool)> {
    Some(match effect {
        "debit" => (0, false),
        "flight" => (1, false),
        "hotel" => (2, false),
        "email" => (3, false),
        "refund" => (0, true),
        "cancel-flight" => (1, true),
        "cancel-hotel" => (2, true),
        _ => return None,
    })
}

/// The effect of step `index` (forward or its compensation).
fn effect_of(index: u32, undo: bool) -> Option<&'static str> {
    Some(match (index, undo) {
        (0, false) => "debit",
        (1, false) => "flight",
        (2, false) => "hotel",
        (3, false) => "email",
        (0, true) => "refund",
        (1, true) => "cancel-flight",
        (2, true) => "cancel-hotel",
        _ => return None,
    })
}

fn log_tail(dir: &Path) -> String {
    let log = fs::read_to_string(dir.join("child.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Starts the child in `dir`, its output appended to `dir/child.log`.
fn spawn(dir: &Path, args: &[&str], crash: Option<&str>) -> Child {
    let log = OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join("child.log"))
        .unwrap();
    let mut command = Command::new(CHILD);
    command
        .arg(dir)
        .args(args)
        .env_remove("SAGAFLOW_CRASH")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    if let Some(plan) = crash {
        command.env("SAGAFLOW_CRASH", plan);
    }
    command.spawn().expect("the crash child starts")
}

/// Runs the child in `dir` to its end; its status and what it printed.
fn run(dir: &Path, args: &[&str], crash: Option<&str>) -> (ExitStatus, String) {
    let before = fs::read_to_string(dir.join("child.log"))
        .unwrap_or_default()
        .len();
    let status = spawn(dir, args, crash).wait().unwrap();
    let log = fs::read_to_string(dir.join("child.log")).unwrap();
    (status, log[before..].to_owned())
}

/// Every saga in the store at `dir/sagas.db`, by id.
fn read_store(dir: &Path) -> BTreeMap<String, SagaRecord> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let path = dir.join("sagas.db");
    // A child killed while it made the store leaves no file or an empty one:
    // no saga can have started in it (`open` makes it a store next time).
    if std::fs::metadata(&path).map_or(true, |m| m.len() == 0) {
        return BTreeMap::new();
    }
    runtime.block_on(async {
        let store = SqliteStore::open_existing(&path, Durability::Full).unwrap();
        let mut all = BTreeMap::new();
        for status in [
            SagaStatus::Running,
            SagaStatus::Committed,
            SagaStatus::Compensated,
            SagaStatus::Parked,
            SagaStatus::Resolved,
        ] {
            for record in store.with_status(status).await.unwrap() {
                all.insert(record.id.to_string(), record);
            }
        }
        all
    })
}

/// What [`check`] counted.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    sagas: usize,
    running: usize,
    committed: usize,
    compensated: usize,
    parked: usize,
    /// Calls that found their key already done (a step re-run after a crash).
    again: usize,
    /// Steps (or compensations) whose service was called more than once.
    repeated_calls: usize,
}

fn count<F: Fn(&Entry) -> bool>(journal: &[Entry], f: F) -> usize {
    journal.iter().filter(|e| f(e)).count()
}

/// Checks the store and the ledger in `dir` against each other; with `end`, also
/// that every saga has ended. Panics, saying what is wrong, if anything is.
fn check(dir: &Path, end: bool) -> Counts {
    let sagas = read_store(dir);
    let ledger = Ledger::read(dir.join("ledger")).unwrap();
    let started = fs::read_to_string(dir.join("started")).unwrap_or_default();
    let whole = started.rfind('\n').map_or(0, |i| i + 1);
    let context = || {
        format!(
            "in {}; the child's last words:\n{}",
            dir.display(),
            log_tail(dir)
        )
    };

    // No saga lost.
    for id in started[..whole].lines() {
        assert!(
            sagas.contains_key(id),
            "saga {id} was reported started but is not in the store: lost, {}",
            context()
        );
    }

    // The ledger, by saga and effect.
    let mut by_saga: HashMap<&str, HashMap<&str, Vec<&Line>>> = HashMap::new();
    for line in &ledger {
        assert!(
            line.saga != "-",
            "a service was called outside a saga: {line:?}"
        );
        by_saga
            .entry(&line.saga)
            .or_default()
            .entry(line.effect())
            .or_default()
            .push(line);
    }
    let mut counts = Counts {
        sagas: sagas.len(),
        again: ledger
            .iter()
            .filter(|l| l.what.starts_with("again:"))
            .count(),
        ..Counts::default()
    };
    for (saga, effects) in &by_saga {
        let record = sagas.get(*saga).unwrap_or_else(|| {
            panic!(
                "the ledger has calls from saga {saga}, which is not in the store, {}",
                context()
            )
        });
        let journal = &record.journal;
        let failed = journal
            .iter()
            .any(|e| matches!(e, Entry::StepFailed { .. }));
        for (effect, lines) in effects {
            let (index, undo) = step_of(effect)
                .unwrap_or_else(|| panic!("unknown effect `{effect}` in the ledger"));
            // Every call, first or re-run, with the step's one stable key.
            let key = if undo {
                format!("{saga}-{index}-undo")
            } else {
                format!("{saga}-{index}")
            };
            for line in lines {
                assert_eq!(
                    line.key,
                    key,
                    "a call of `{effect}` in saga {saga} came with another key than the step's: {line:?}, {}",
                    context()
                );
            }
            // Write-ahead: no more calls than durable intents.
            let calls = lines.iter().filter(|l| l.what.starts_with("call:")).count();
            let intents = if undo {
                count(
                    journal,
                    |e| matches!(e, Entry::CompensationStarted { index: i, .. } if *i == index),
                )
            } else {
                count(
                    journal,
                    |e| matches!(e, Entry::StepStarted { index: i, .. } if *i == index),
                )
            };
            assert!(
                calls <= intents,
                "saga {saga}: `{effect}` was called {calls} time(s) but only {intents} attempt(s) were recorded before: a call without its intent, {}",
                context()
            );
            if calls > 1 {
                counts.repeated_calls += 1;
            }
            // Exactly once.
            let done = lines.iter().filter(|l| l.is_effect()).count();
            assert!(
                done <= 1,
                "saga {saga}: `{effect}` was done {done} times: {lines:?}, {}",
                context()
            );
            // Compensations only for steps that had begun, and succeeded, in a
            // saga that failed.
            if undo && calls > 0 {
                let begun = count(
                    journal,
                    |e| matches!(e, Entry::StepStarted { index: i, .. } if *i == index),
                );
                let succeeded = count(
                    journal,
                    |e| matches!(e, Entry::StepSucceeded { index: i, .. } if *i == index),
                );
                assert!(
                    begun > 0 && succeeded > 0 && failed,
                    "saga {saga}: `{effect}` ran but step {index} had not begun and succeeded in a failed saga: {journal:?}, {}",
                    context()
                );
            }
        }
        // What the journal says succeeded, the service did.
        for entry in journal {
            let (index, undo) = match entry {
                Entry::StepSucceeded { index, .. } => (*index, false),
                Entry::CompensationSucceeded { index } => (*index, true),
                _ => continue,
            };
            let effect = effect_of(index, undo).unwrap();
            let done = effects
                .get(effect)
                .is_some_and(|lines| lines.iter().any(|l| l.is_effect()));
            assert!(
                done,
                "saga {saga}: the journal says step {index} (undo: {undo}) succeeded but the ledger has no `{effect}`, {}",
                context()
            );
        }
    }

    // Where each saga stands.
    let mut standing_flights = 0i64;
    for line in &ledger {
        match line.what.as_str() {
            "flight" => standing_flights += 1,
            "cancel-flight" => standing_flights -= 1,
            _ => {}
        }
    }
    let empty = HashMap::new();
    for (id, record) in &sagas {
        let effects = by_saga.get(id.as_str()).unwrap_or(&empty);
        let done = |effect: &str| {
            effects
                .get(effect)
                .map_or(0, |lines| lines.iter().filter(|l| l.is_effect()).count())
        };
        let last = record.journal.last();
        match record.status {
            SagaStatus::Running => {
                counts.running += 1;
                assert!(
                    !end,
                    "saga {id} is still running after the last recovery: {:?}, {}",
                    record.journal,
                    context()
                );
                continue;
            }
            SagaStatus::Confirming => panic!(
                "saga {id} is confirming, but travel has no TCC step to confirm: {:?}, {}",
                record.journal,
                context()
            ),
            SagaStatus::Committed => {
                counts.committed += 1;
                for effect in ["debit", "flight", "hotel", "email"] {
                    assert_eq!(done(effect), 1, "committed saga {id}: `{effect}`");
                }
                for effect in ["refund", "cancel-flight", "cancel-hotel"] {
                    assert_eq!(done(effect), 0, "committed saga {id}: `{effect}`");
                }
            }
            SagaStatus::Compensated => {
                counts.compensated += 1;
                for index in [0, 1, 2] {
                    let succeeded = count(
                        &record.journal,
                        |e| matches!(e, Entry::StepSucceeded { index: i, .. } if *i == index),
                    );
                    let undo = effect_of(index, true).unwrap();
                    assert_eq!(
                        done(undo),
                        usize::from(succeeded > 0),
                        "compensated saga {id}: step {index} succeeded {succeeded} time(s), `{undo}` done {} time(s): {:?}",
                        done(undo),
                        record.journal
                    );
                }
                assert_eq!(done("email"), 0, "compensated saga {id}");
            }
            SagaStatus::Parked => {
                counts.parked += 1;
                let reason = record.journal.iter().find_map(|e| match e {
                    Entry::CompensationFailed { error, .. } => Some(error.as_str()),
                    _ => None,
                });
                assert_eq!(
                    reason,
                    Some("the bank's refund service is down"),
                    "parked saga {id} without its reason: {:?}",
                    record.journal
                );
                let input: serde_json::Value = serde_json::from_slice(&record.input).unwrap();
                let trip: Trip = serde_json::from_value(input["trip"].clone()).unwrap();
                assert_eq!(trip.customer, "mallory", "parked saga {id}");
                assert_eq!(done("cancel-flight"), 1, "parked saga {id}");
                assert_eq!(done("refund"), 0, "parked saga {id}");
            }
            SagaStatus::Resolved => panic!("saga {id} is resolved; nobody resolves sagas here"),
        }
        assert!(
            matches!(last, Some(Entry::Finished { status, .. }) if *status == record.status),
            "saga {id} is {} but its journal does not end so: {:?}",
            record.status,
            record.journal
        );
    }
    if end {
        assert_eq!(
            standing_flights,
            counts.committed as i64,
            "the flights that stand are not those of the committed trips, {}",
            context()
        );
    }
    counts
}

/// Runs the child until it aborts as `plan` says, restarts it to recover to the
/// end, and checks.
fn deterministic(plan: &str, park_every: &str) -> Counts {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let args = [
        "--sagas",
        "40",
        "--concurrency",
        "20",
        "--park-every",
        park_every,
    ];
    let (status, out) = run(dir, &args, Some(plan));
    assert_eq!(
        status.signal(),
        Some(SIGABRT),
        "with SAGAFLOW_CRASH={plan} the child should have aborted, but {status}:\n{out}"
    );
    assert!(out.contains("crashing: "), "{out}");
    check(dir, false);

    let (status, out) = run(dir, &["--recover-only"], None);
    assert!(
        status.success(),
        "recovery after {plan} failed: {status}\n{out}"
    );
    let unfinished: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("recovery: "))
        .and_then(|l| l.strip_suffix(" unfinished"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no recovery summary after {plan}:\n{out}"));
    assert!(
        unfinished >= 1,
        "after {plan}, recovery found nothing:\n{out}"
    );
    assert!(
        !out.contains(" refused ") && !out.contains(" halted "),
        "after {plan}:\n{out}"
    );
    let counts = check(dir, true);
    if plan.starts_with("before:StepSucceeded") || plan.starts_with("before:CompensationSucceeded")
    {
        assert!(
            counts.again >= 1,
            "after {plan}, the step that had done its work should have been re-run and recognised by its key: {counts:?}"
        );
    }
    counts
}

#[test]
fn crash_at_each_kind_of_transition_then_at_random_and_recover_every_time() {
    let began = Instant::now();

    // Deterministic: each kind of write, after it and before it.
    let mut cases = vec![("after:Created:5".to_owned(), "0")];
    for (kind, nth) in [
        ("StepStarted", 10),
        ("StepSucceeded", 10),
        ("StepFailed", 2),
        ("CompensationStarted", 2),
        ("CompensationSucceeded", 2),
        ("CompensationFailed", 1),
        ("Finished", 5),
    ] {
        let park_every = if kind == "CompensationFailed" {
            "5"
        } else {
            "0"
        };
        for moment in ["after", "before"] {
            cases.push((format!("{moment}:{kind}:{nth}"), park_every));
        }
    }
    let mut deterministic_sagas = 0;
    for (plan, park_every) in &cases {
        let counts = deterministic(plan, park_every);
        deterministic_sagas += counts.sagas;
    }
    let deterministic_time = began.elapsed();

    // Random: SIGKILL at a random moment, restart at once, again and again.
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let args = ["--normal", "--park-every", "50"];
    let mut left_running = 0;
    for kill in 0..RANDOM_KILLS {
        let mut child = spawn(dir, &args, None);
        std::thread::sleep(Duration::from_millis(fastrand::u64(5..=60)));
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the child ended on its own before kill {kill}: {status}\n{}",
                log_tail(dir)
            );
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "kill {kill}: {status}");
        left_running += check(dir, false).running;
    }
    let (status, out) = run(dir, &["--normal", "--recover-only"], None);
    assert!(
        status.success(),
        "the last recovery failed: {status}\n{out}"
    );
    assert!(
        !out.contains(" refused ") && !out.contains(" halted "),
        "{out}"
    );
    let last = check(dir, true);
    let log = fs::read_to_string(dir.join("child.log")).unwrap();
    let recovered: usize = log
        .lines()
        .filter_map(|l| l.strip_prefix("recovering "))
        .filter_map(|l| l.strip_suffix(" unfinished")?.parse::<usize>().ok())
        .sum();
    assert!(
        last.sagas > 100,
        "too few sagas ran to prove much: {last:?}"
    );
    assert!(recovered > 0, "nothing was ever recovered");
    assert!(left_running > 0, "no kill ever left a saga unfinished");

    println!(
        "crash test: {} deterministic crashes ({} sagas) in {:.1?}; {RANDOM_KILLS} random kills, \
         {} sagas ({} committed, {} compensated, {} parked), {left_running} sagas left unfinished by the kills, {recovered} sagas taken up by recovery, \
         {} re-run calls recognised by key, {} steps called more than once; {:.1?} in all",
        cases.len(),
        deterministic_sagas,
        deterministic_time,
        last.sagas,
        last.committed,
        last.compensated,
        last.parked,
        last.again,
        last.repeated_calls,
        began.elapsed()
    );
}
