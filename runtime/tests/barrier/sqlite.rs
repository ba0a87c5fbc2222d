//! The barrier on a SQLite file, two connections to it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use sagaflow::barrier::{Proceed, SkipReason, SqliteBarrier};

use super::{Done, RACED_KEYS, check_race, run, skip};

/// A participant's database file, with its barrier and `holds` table.
struct Participant {
    _dir: tempfile::TempDir,
    path: PathBuf,
    barrier: SqliteBarrier,
}

impl Participant {
    fn new(table: &str) -> Participant {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("participant.db");
        let barrier = SqliteBarrier::with_table(table).unwrap();
        let db = open(&path);
        db.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE holds (key TEXT PRIMARY KEY, confirmed INTEGER NOT NULL DEFAULT 0)").unwrap();
        barrier.ensure_table(&db).unwrap();
        Participant {
            _dir: dir,
            path,
            barrier,
        }
    }

    /// Another connection to the file.
    fn connect(&self) -> Connection {
        open(&self.path)
    }

    /// Runs `phase`, and on `Run` the work `sql` (with the key as `?1`),
    /// in one transaction, committed.
    fn phase(
        &self,
        db: &mut Connection,
        key: &str,
        phase: fn(
            &SqliteBarrier,
            &rusqlite::Transaction<'_>,
            &str,
        ) -> Result<Proceed, sagaflow::barrier::BarrierError>,
        sql: &str,
    ) -> Done {
        let tx = db
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        let proceed = phase(&self.barrier, &tx, key).unwrap();
        let touched = match proceed {
            Proceed::Run => tx.execute(sql, [key]).unwrap() as u64,
            Proceed::Skip(_) => 0,
        };
        tx.commit().unwrap();
        Done { proceed, touched }
    }

    fn hold(&self, db: &mut Connection, key: &str) -> Done {
        self.phase(
            db,
            key,
            SqliteBarrier::try_phase,
            "INSERT INTO holds (key) VALUES (?1)",
        )
    }

    fn confirm(&self, db: &mut Connection, key: &str) -> Done {
        self.phase(
            db,
            key,
            SqliteBarrier::confirm_phase,
            "UPDATE holds SET confirmed = confirmed + 1 WHERE key = ?1",
        )
    }

    fn release(&self, db: &mut Connection, key: &str) -> Done {
        self.phase(
            db,
            key,
            SqliteBarrier::cancel_phase,
            "DELETE FROM holds WHERE key = ?1",
        )
    }

    fn holds(&self) -> Vec<(String, i64)> {
        let db = self.connect();
        let mut select = db
            .prepare("SELECT key, confirmed FROM holds ORDER BY key")
            .unwrap();
        select
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }
}

fn open(path: &Path) -> Connection {
    let db = Connection::open(path).unwrap();
    db.busy_timeout(Duration::from_secs(30)).unwrap();
    db
}

#[test]
fn a_repeated_try_and_confirm_do_nothing_on_either_connection() {
    let p = Participant::new("barrier_repeat");
    let (mut a, mut b) = (p.connect(), p.connect());
    assert_eq!(p.hold(&mut a, "k"), run());
    assert_eq!(p.hold(&mut b, "k"), skip(SkipReason::Repeated));
    assert_eq!(p.confirm(&mut b, "k"), run());
    assert_eq!(p.confirm(&mut a, "k"), skip(SkipReason::Repeated));
    assert_eq!(p.holds(), [("k".to_owned(), 1)]);
}

#[test]
fn a_cancel_releases_once() {
    let p = Participant::new("barrier_cancel");
    let (mut a, mut b) = (p.connect(), p.connect());
    assert_eq!(p.hold(&mut a, "k"), run());
    assert_eq!(p.release(&mut b, "k"), run());
    assert_eq!(p.release(&mut a, "k"), skip(SkipReason::Repeated));
    // And a try retried after it stays refused.
    assert_eq!(p.hold(&mut b, "k"), skip(SkipReason::Repeated));
    assert_eq!(p.holds(), []);
}

#[test]
fn an_empty_cancel_does_nothing_and_refuses_the_late_try() {
    let p = Participant::new("barrier_empty");
    let (mut a, mut b) = (p.connect(), p.connect());
    assert_eq!(p.release(&mut a, "k"), skip(SkipReason::EmptyCancel));
    assert_eq!(p.hold(&mut b, "k"), skip(SkipReason::TryAfterCancel));
    assert_eq!(p.hold(&mut a, "k"), skip(SkipReason::TryAfterCancel));
    assert_eq!(p.release(&mut b, "k"), skip(SkipReason::Repeated));
    assert_eq!(p.holds(), []);
    // Other keys are untouched.
    assert_eq!(p.hold(&mut a, "other"), run());
}

#[test]
fn a_phase_rolled_back_leaves_nothing_and_runs_again() {
    let p = Participant::new("barrier_rollback");
    let mut db = p.connect();
    {
        let tx = db.transaction().unwrap();
        assert_eq!(
            p.barrier.cancel_phase(&tx, "k").unwrap(),
            Proceed::Skip(SkipReason::EmptyCancel)
        );
        tx.rollback().unwrap();
    }
    assert_eq!(p.hold(&mut db, "k"), run());
    assert_eq!(p.release(&mut db, "k"), run());
}

#[test]
fn tables_are_named_and_refused_with_the_name() {
    let p = Participant::new("barrier_one");
    let other = SqliteBarrier::with_table("barrier_two").unwrap();
    let mut db = p.connect();
    assert!(other.create_table_sql().contains("\"barrier_two\""));
    assert_eq!(SqliteBarrier::new().table(), "sagaflow_barrier");

    // Not created yet: the error names the table, the phase and the key.
    let tx = db.transaction().unwrap();
    let error = other.try_phase(&tx, "trip-7").unwrap_err();
    assert_eq!(
        (error.table(), error.key(), error.phase()),
        ("barrier_two", Some("trip-7"), Some("try"))
    );
    let message = error.to_string();
    assert!(message.starts_with("barrier table \"barrier_two\", try phase of key \"trip-7\": inserting the try row failed: no such table"), "{message}");
    drop(tx);

    other.ensure_table(&db).unwrap();
    other.ensure_table(&db).unwrap();
    let tx = db.transaction().unwrap();
    assert_eq!(other.try_phase(&tx, "k").unwrap(), Proceed::Run);
    // Another table knows nothing of it.
    assert_eq!(p.barrier.try_phase(&tx, "k").unwrap(), Proceed::Run);
    let empty = p.barrier.confirm_phase(&tx, "").unwrap_err();
    assert!(empty.to_string().contains("the key is empty"), "{empty}");

    let bad = SqliteBarrier::with_table("holds; DROP TABLE holds").unwrap_err();
    assert!(bad.to_string().contains("not a table name"), "{bad}");
}

#[test]
fn a_try_racing_its_cancel_never_leaves_a_hold() {
    let p = Arc::new(Participant::new("barrier_race"));
    let keys: Arc<Vec<String>> = Arc::new(
        (0..RACED_KEYS)
            .map(|i| format!("trip-{i}/hold_seat"))
            .collect(),
    );
    // Both sides start each key together.
    let start = Arc::new(std::sync::Barrier::new(2));
    let side = |phase: fn(&Participant, &mut Connection, &str) -> Done| {
        let (p, keys, start) = (Arc::clone(&p), Arc::clone(&keys), Arc::clone(&start));
        std::thread::spawn(move || {
            let mut db = p.connect();
            keys.iter()
                .map(|key| {
                    start.wait();
                    phase(&p, &mut db, key)
                })
                .collect::<Vec<_>>()
        })
    };
    let tries = side(Participant::hold);
    let cancels = side(Participant::release);
    let (tries, cancels) = (tries.join().unwrap(), cancels.join().unwrap());
    let mut both_ran = 0;
    for ((key, tried), cancelled) in keys.iter().zip(tries).zip(cancels) {
        check_race(key, tried, cancelled);
        both_ran += usize::from(tried.proceed == Proceed::Run);
    }
    assert_eq!(p.holds(), [], "holds left behind");
    eprintln!("sqlite: {both_ran} of {RACED_KEYS} tries ran before their cancel");
}
