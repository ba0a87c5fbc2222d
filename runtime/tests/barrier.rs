//! The TCC participant's barrier on real databases: a repeated phase does
//! nothing, an empty cancel records itself and refuses the late try, a phase
//! rolled back leaves nothing, and a try racing its cancel (separate
//! connections, many keys) ends either with both run or with both skipped,
//! never with a hold left behind or released twice.
//!
//! The participant holds a seat: its try inserts a row into `holds`, its
//! cancel deletes it, its confirm marks it confirmed, each in the transaction
//! of its barrier call. SQLite runs on a file in a tempdir; PostgreSQL on the
//! server at `SAGAFLOW_PG_URL`, each test with tables of its own.

mod support;

use sagaflow::barrier::{Proceed, SkipReason};

/// How many keys a race test races for.
const RACED_KEYS: usize = 200;

/// What one phase of one key did: its answer, and the holds its work
/// touched (inserted, confirmed or deleted; 0 when skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Done {
    proceed: Proceed,
    touched: u64,
}

/// A phase that ran and touched one hold.
const fn run() -> Done {
    Done {
        proceed: Proceed::Run,
        touched: 1,
    }
}

/// A phase skipped for `reason`, that touched nothing.
const fn skip(reason: SkipReason) -> Done {
    Done {
        proceed: Proceed::Skip(reason),
        touched: 0,
    }
}

/// Checks the outcome of a try raced against its cancel, for one key.
fn check_race(key: &str, tried: Done, cancelled: Done) {
    match (tried.proceed, cancelled.proceed) {
        (Proceed::Run, Proceed::Run) => {
            assert_eq!(tried.touched, 1, "{key}: the try held nothing");
            assert_eq!(cancelled.touched, 1, "{key}: the cancel released no hold");
        }
        (Proceed::Skip(SkipReason::TryAfterCancel), Proceed::Skip(SkipReason::EmptyCancel)) => {}
        other => panic!("{key}: try and cancel ended as {other:?}"),
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
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
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::sync::Arc;

    use sagaflow::barrier::{BarrierError, PgBarrier, Proceed, SkipReason};
    use tokio_postgres::{Client, Transaction};

    use super::{Done, RACED_KEYS, check_race, run, skip, support};

    /// The participant's tables on the server, named after the test.
    struct Participant {
        url: String,
        barrier: PgBarrier,
        holds: String,
    }

    type PhaseFn = for<'a> fn(
        &'a PgBarrier,
        &'a Transaction<'a>,
        &'a str,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Proceed, BarrierError>> + Send + 'a>,
    >;

    impl Participant {
        async fn new(test: &str) -> Option<Participant> {
            let url = support::pg_url()?;
            let table = support::schema_for(test);
            let barrier = PgBarrier::with_table(&table).unwrap();
            let holds = format!("{table}_holds");
            let client = support::raw_client(&url).await;
            client
                .batch_execute(&format!(
                    "CREATE TABLE {holds} (key TEXT PRIMARY KEY, confirmed INT NOT NULL DEFAULT 0)"
                ))
                .await
                .unwrap();
            barrier.ensure_table(&client).await.unwrap();
            Some(Participant {
                url,
                barrier,
                holds,
            })
        }

        async fn connect(&self) -> Client {
            support::raw_client(&self.url).await
        }

        /// Runs `phase`, and on `Run` the work `sql` (`{h}` the holds table,
        /// `$1` the key), in one transaction, committed.
        async fn phase(&self, db: &mut Client, key: &str, phase: PhaseFn, sql: &str) -> Done {
            let tx = db.transaction().await.unwrap();
            let proceed = phase(&self.barrier, &tx, key).await.unwrap();
            // Hold the transaction open a moment: the racing side then
            // meets an uncommitted row.
            tokio::task::yield_now().await;
            let touched = match proceed {
                Proceed::Run => tx
                    .execute(&sql.replace("{h}", &self.holds), &[&key])
                    .await
                    .unwrap(),
                Proceed::Skip(_) => 0,
            };
            tx.commit().await.unwrap();
            Done { proceed, touched }
        }

        async fn hold(&self, db: &mut Client, key: &str) -> Done {
            self.phase(
                db,
                key,
                |b, tx, k| Box::pin(b.try_phase(tx, k)),
                "INSERT INTO {h} (key) VALUES ($1)",
            )
            .await
        }

        async fn confirm(&self, db: &mut Client, key: &str) -> Done {
            self.phase(
                db,
                key,
                |b, tx, k| Box::pin(b.confirm_phase(tx, k)),
                "UPDATE {h} SET confirmed = confirmed + 1 WHERE key = $1",
            )
            .await
        }

        async fn release(&self, db: &mut Client, key: &str) -> Done {
            self.phase(
                db,
                key,
                |b, tx, k| Box::pin(b.cancel_phase(tx, k)),
                "DELETE FROM {h} WHERE key = $1",
            )
            .await
        }

        async fn holds(&self) -> Vec<(String, i32)> {
            let rows = self
                .connect()
                .await
                .query(
                    &format!("SELECT key, confirmed FROM {} ORDER BY key", self.holds),
                    &[],
                )
                .await
                .unwrap();
            rows.iter().map(|row| (row.get(0), row.get(1))).collect()
        }

        async fn drop_tables(&self) {
            self.connect()
                .await
                .batch_execute(&format!(
                    "DROP TABLE {}; DROP TABLE {}",
                    self.holds,
                    self.barrier.table()
                ))
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn a_repeated_try_and_confirm_do_nothing_on_either_connection() {
        let Some(p) = Participant::new("barrier_repeat").await else {
            return;
        };
        let (mut a, mut b) = (p.connect().await, p.connect().await);
        assert_eq!(p.hold(&mut a, "k").await, run());
        assert_eq!(p.hold(&mut b, "k").await, skip(SkipReason::Repeated));
        assert_eq!(p.confirm(&mut b, "k").await, run());
        assert_eq!(p.confirm(&mut a, "k").await, skip(SkipReason::Repeated));
        assert_eq!(p.holds().await, [("k".to_owned(), 1)]);
        p.drop_tables().await;
    }

    #[tokio::test]
    async fn a_cancel_releases_once() {
        let Some(p) = Participant::new("barrier_cancel").await else {
            return;
        };
        let (mut a, mut b) = (p.connect().await, p.connect().await);
        assert_eq!(p.hold(&mut a, "k").await, run());
        assert_eq!(p.release(&mut b, "k").await, run());
        assert_eq!(p.release(&mut a, "k").await, skip(SkipReason::Repeated));
        assert_eq!(p.hold(&mut b, "k").await, skip(SkipReason::Repeated));
        assert_eq!(p.holds().await, []);
        p.drop_tables().await;
    }

    #[tokio::test]
    async fn an_empty_cancel_does_nothing_and_refuses_the_late_try() {
        let Some(p) = Participant::new("barrier_empty").await else {
            return;
        };
        let (mut a, mut b) = (p.connect().await, p.connect().await);
        assert_eq!(p.release(&mut a, "k").await, skip(SkipReason::EmptyCancel));
        assert_eq!(p.hold(&mut b, "k").await, skip(SkipReason::TryAfterCancel));
        assert_eq!(p.hold(&mut a, "k").await, skip(SkipReason::TryAfterCancel));
        assert_eq!(p.release(&mut b, "k").await, skip(SkipReason::Repeated));
        assert_eq!(p.holds().await, []);
        assert_eq!(p.hold(&mut a, "other").await, run());
        p.drop_tables().await;
    }

    #[tokio::test]
    async fn a_phase_rolled_back_leaves_nothing_and_runs_again() {
        let Some(p) = Participant::new("barrier_rollback").await else {
            return;
        };
        let mut db = p.connect().await;
        {
            let tx = db.transaction().await.unwrap();
            let proceed = p.barrier.cancel_phase(&tx, "k").await.unwrap();
            assert_eq!(proceed, Proceed::Skip(SkipReason::EmptyCancel));
            tx.rollback().await.unwrap();
        }
        assert_eq!(p.hold(&mut db, "k").await, run());
        assert_eq!(p.release(&mut db, "k").await, run());
        p.drop_tables().await;
    }

    /// Starts `second` on its own connection while `first`'s transaction
    /// holds its barrier row uncommitted, then ends `first` (committed or
    /// rolled back): what `first` answered, and what `second` answers once it
    /// is let through.
    async fn behind_an_open_transaction(
        p: &Arc<Participant>,
        key: &'static str,
        first: PhaseFn,
        commit: bool,
        second: PhaseFn,
    ) -> (Proceed, Proceed) {
        let mut db = p.connect().await;
        let tx = db.transaction().await.unwrap();
        let first = first(&p.barrier, &tx, key).await.unwrap();
        let waiting = {
            let p = Arc::clone(p);
            tokio::spawn(async move {
                let mut db = p.connect().await;
                let tx = db.transaction().await.unwrap();
                let proceed = second(&p.barrier, &tx, key).await.unwrap();
                tx.commit().await.unwrap();
                proceed
            })
        };
        // However long it is given, the second call waits on the row.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(
            !waiting.is_finished(),
            "{key}: not held up by the open transaction"
        );
        if commit {
            tx.commit().await.unwrap();
        } else {
            tx.rollback().await.unwrap();
        }
        (first, waiting.await.unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_racing_call_waits_for_the_other_transaction_and_reads_its_row() {
        let Some(p) = Participant::new("barrier_wait").await else {
            return;
        };
        let p = Arc::new(p);
        let try_phase: PhaseFn = |b, tx, k| Box::pin(b.try_phase(tx, k));
        let cancel_phase: PhaseFn = |b, tx, k| Box::pin(b.cancel_phase(tx, k));
        // A try in flight: its cancel, let through at its commit, runs.
        let after_try = behind_an_open_transaction(&p, "a", try_phase, true, cancel_phase);
        assert_eq!(after_try.await, (Proceed::Run, Proceed::Run));
        // A cancel in flight: the try, let through at its commit, is refused.
        let after_cancel = behind_an_open_transaction(&p, "b", cancel_phase, true, try_phase);
        assert_eq!(
            after_cancel.await,
            (
                Proceed::Skip(SkipReason::EmptyCancel),
                Proceed::Skip(SkipReason::TryAfterCancel)
            )
        );
        // A try rolled back: its cancel is empty.
        let after_rollback = behind_an_open_transaction(&p, "c", try_phase, false, cancel_phase);
        assert_eq!(
            after_rollback.await,
            (Proceed::Run, Proceed::Skip(SkipReason::EmptyCancel))
        );
        p.drop_tables().await;
    }

    #[tokio::test]
    async fn a_missing_table_is_named_with_the_key() {
        let Some(url) = support::pg_url() else {
            return;
        };
        let table = support::schema_for("barrier_missing");
        let barrier = PgBarrier::with_table(&table).unwrap();
        let mut db = support::raw_client(&url).await;
        let tx = db.transaction().await.unwrap();
        let error = barrier.cancel_phase(&tx, "trip-7").await.unwrap_err();
        assert_eq!(
            (error.table(), error.key(), error.phase()),
            (table.as_str(), Some("trip-7"), Some("cancel"))
        );
        let message = error.to_string();
        let expected = format!(
            "barrier table \"{table}\", cancel phase of key \"trip-7\": inserting the try row failed: "
        );
        assert!(
            message.starts_with(&expected) && message.contains("does not exist"),
            "{message}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_try_racing_its_cancel_never_leaves_a_hold() {
        let Some(p) = Participant::new("barrier_race").await else {
            return;
        };
        let p = Arc::new(p);
        let keys: Arc<Vec<String>> = Arc::new(
            (0..RACED_KEYS)
                .map(|i| format!("trip-{i}/hold_seat"))
                .collect(),
        );
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let (tries, cancels) = {
            let side = |cancel: bool| {
                let (p, keys, start) = (Arc::clone(&p), Arc::clone(&keys), Arc::clone(&start));
                tokio::spawn(async move {
                    let mut db = p.connect().await;
                    let mut done = Vec::new();
                    for key in keys.iter() {
                        start.wait().await;
                        done.push(if cancel {
                            p.release(&mut db, key).await
                        } else {
                            p.hold(&mut db, key).await
                        });
                    }
                    done
                })
            };
            let (tries, cancels) = tokio::join!(side(false), side(true));
            (tries.unwrap(), cancels.unwrap())
        };
        let mut both_ran = 0;
        for ((key, tried), cancelled) in keys.iter().zip(tries).zip(cancels) {
            check_race(key, tried, cancelled);
            both_ran += usize::from(tried.proceed == Proceed::Run);
        }
        assert_eq!(p.holds().await, [], "holds left behind");
        eprintln!("postgres: {both_ran} of {RACED_KEYS} tries ran before their cancel");
        p.drop_tables().await;
    }
}
