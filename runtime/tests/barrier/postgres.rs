//! The barrier on the PostgreSQL server at `SAGAFLOW_PG_URL`, tables named
//! after each test.

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
