//! One contract, every store: the same tests run against `SqliteStore` and,
//! with the `postgres` feature and `SAGAFLOW_PG_URL` set, against `PgStore`
//! (each test in a schema of its own). Create, append, append_all, append_if
//! races, shared claims, recovery through `Executor::recover`, parked sagas,
//! definition changes and corrupt rows.
#![cfg(feature = "sqlite")]

mod support;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use sagaflow::durable::{
    Durability, Entry, Executor, NewSaga, RecoveredOutcome, SagaStatus, SqliteStore, Store,
    fingerprint,
};
use sagaflow::{Saga, SagaId, StepContext, saga, step};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------
// The stores under test

/// A store to test, and what a test does behind its back.
trait Backend {
    type S: Store + Clone + std::fmt::Debug;

    fn store(&self) -> &Self::S;

    /// What every error of this store names (its file, its server).
    fn names(&self) -> String;

    /// Writes a journal row that no sagaflow wrote, after the last of saga `id`.
    async fn corrupt(&self, id: SagaId);
}

struct Sqlite {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: SqliteStore,
}

impl Sqlite {
    fn new() -> Sqlite {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sagas.db");
        let store = SqliteStore::open(&path, Durability::Full).expect("open");
        Sqlite {
            _dir: dir,
            path,
            store,
        }
    }
}

impl Backend for Sqlite {
    type S = SqliteStore;

    fn store(&self) -> &SqliteStore {
        &self.store
    }

    fn names(&self) -> String {
        self.path.display().to_string()
    }

    async fn corrupt(&self, id: SagaId) {
        let conn = rusqlite::Connection::open(&self.path).expect("open behind the store");
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        conn.execute(
            "INSERT INTO journal (saga_id, seq, kind, at)
             VALUES (?1, (SELECT max(seq) + 1 FROM journal WHERE saga_id = ?1), 'bogus', 0)",
            [id.to_string()],
        )
        .expect("corrupt");
    }
}

#[cfg(feature = "postgres")]
struct Postgres {
    url: String,
    schema: String,
    store: sagaflow::durable::PgStore,
}

#[cfg(feature = "postgres")]
impl Postgres {
    async fn new(test: &str) -> Option<Postgres> {
        let url = support::pg_url()?;
        let schema = support::schema_for(test);
        let config = sagaflow::durable::PgConfig::new(url.clone()).schema(schema.clone());
        let store = sagaflow::durable::PgStore::connect_with(config)
            .await
            .expect("connect to SAGAFLOW_PG_URL");
        Some(Postgres { url, schema, store })
    }
}

#[cfg(feature = "postgres")]
impl Backend for Postgres {
    type S = sagaflow::durable::PgStore;

    fn store(&self) -> &Self::S {
        &self.store
    }

    fn names(&self) -> String {
        let server = self.store.server();
        assert!(server.contains(&self.schema), "{server}");
        server
    }

    async fn corrupt(&self, id: SagaId) {
        let client = support::raw_client(&self.url).await;
        let sql = format!(
            "WITH w AS (UPDATE \"{s}\".sagas SET next_seq = next_seq + 1 WHERE id = $1
                        RETURNING next_seq - 1 AS seq)
             INSERT INTO \"{s}\".journal (saga_id, seq, kind, at)
             SELECT $1, w.seq, 'bogus', now() FROM w",
            s = self.schema
        );
        let n = client
            .execute(sql.as_str(), &[&id.to_string()])
            .await
            .expect("corrupt");
        assert_eq!(n, 1);
    }
}

/// Each test, once per store: `sqlite::name` and `postgres::name`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::Sqlite::new()).await;
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(backend) = super::Postgres::new(stringify!($name)).await else {
                        return;
                    };
                    super::$name(&backend).await;
                }
            )*
        }
    };
}

conformance!(
    every_entry_kind_reads_back_and_moves_the_status,
    a_duplicate_create_and_an_unknown_saga_are_refused_by_id,
    append_all_lands_whole_and_in_order_under_concurrency,
    of_interventions_racing_on_a_parked_saga_exactly_one_is_heard,
    executors_over_clones_share_claims_and_recover_each_saga_once,
    recovery_resumes_forward_and_compensating_sagas,
    a_saga_whose_compensation_fails_is_parked_until_a_person_acts,
    a_changed_definition_is_refused_and_the_record_left_intact,
    a_corrupt_row_is_reported_naming_the_store_and_the_saga,
    submitted_sagas_are_claimed_oldest_first,
);

// ---------------------------------------------------------------------------
// A saga to recover

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Order {
    item: String,
    qty: u32,
}

#[derive(Debug)]
struct ShopError(String);

impl std::fmt::Display for ShopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Records each call with its idempotency key.
#[derive(Default)]
struct Shop {
    calls: Mutex<Vec<(String, String)>>,
    fail_charge: AtomicBool,
    fail_release: AtomicBool,
}

impl Shop {
    fn log(&self, what: &str) {
        let key = StepContext::current()
            .map(|c| c.idempotency_key().to_string())
            .unwrap_or_default();
        self.calls.lock().unwrap().push((what.to_owned(), key));
    }

    /// How many times each (call, key) was made.
    fn counts(&self) -> HashMap<(String, String), usize> {
        let mut counts = HashMap::new();
        for call in self.calls.lock().unwrap().iter() {
            *counts.entry(call.clone()).or_default() += 1;
        }
        counts
    }

    fn names(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(w, _)| w.clone())
            .collect()
    }
}

#[step(compensate = release, compensate_retry(max = 1, backoff = "1ms"))]
async fn reserve(shop: &Shop, order: &Order) -> Result<u32, ShopError> {
    shop.log(&format!("reserve {}", order.item));
    Ok(3)
}

async fn release(shop: &Shop, order: &Order, n: &u32) -> Result<(), ShopError> {
    if shop.fail_release.load(Ordering::SeqCst) {
        shop.log("release failed");
        return Err(ShopError("warehouse offline".into()));
    }
    shop.log(&format!("release {} #{n}", order.item));
    Ok(())
}

#[step(compensate = refund)]
async fn charge(shop: &Shop, order: &Order) -> Result<u64, ShopError> {
    shop.log("charge");
    if shop.fail_charge.load(Ordering::SeqCst) {
        return Err(ShopError("card declined".into()));
    }
    Ok(u64::from(order.qty) * 100)
}

async fn refund(shop: &Shop, _order: &Order, paid: &u64) -> Result<(), ShopError> {
    shop.log(&format!("refund {paid}"));
    Ok(())
}

#[saga]
async fn buy(shop: &Shop, order: Order) -> Result<u64, ShopError> {
    let _ = reserve(shop, &order).await?;
    let paid = charge(shop, &order).await?;
    Ok(paid)
}

fn executor<S: Store + Clone>(store: &S) -> Executor<S> {
    Executor::new(store.clone())
        .resource(Shop::default())
        .register::<BuySaga>()
}

fn new_saga(id: SagaId) -> NewSaga {
    NewSaga {
        id,
        saga_type: "buy".into(),
        fingerprint: fingerprint(BuySaga::STEPS),
        input: br#"{"order":{"item":"desk","qty":1}}"#.to_vec(),
    }
}

/// A saga as a process that died after writing `journal` would have left it.
async fn crashed<S: Store>(store: &S, journal: Vec<Entry>) -> SagaId {
    let id = SagaId::time_ordered();
    store.create(new_saga(id)).await.expect("create");
    if !journal.is_empty() {
        store.append_all(id, journal).await.expect("append");
    }
    id
}

fn started(index: u32, attempt: u32) -> Entry {
    Entry::StepStarted { index, attempt }
}

fn succeeded(index: u32, output: &str) -> Entry {
    Entry::StepSucceeded {
        index,
        output: output.as_bytes().to_vec(),
    }
}

fn finished(status: SagaStatus) -> Entry {
    Entry::Finished {
        status,
        output: None,
    }
}

fn intervention(retry: bool, note: &str) -> Entry {
    Entry::Intervention {
        retry,
        note: note.to_owned(),
    }
}

// ---------------------------------------------------------------------------
// The contract

async fn every_entry_kind_reads_back_and_moves_the_status<B: Backend>(b: &B) {
    let store = b.store();
    let id = SagaId::time_ordered();
    store.create(new_saga(id)).await.unwrap();
    let record = store.get(id).await.unwrap().expect("created");
    assert_eq!(record.status, SagaStatus::Running);
    assert_eq!(record.input, new_saga(id).input);
    assert!(record.journal.is_empty());

    let mut journal = vec![
        started(0, 1),
        Entry::StepSucceeded {
            index: 0,
            output: vec![0, 159, 146, 150, 0, 255],
        },
        Entry::Arm {
            branch: 0,
            arm: u32::MAX,
        },
        started(1, u32::MAX),
        succeeded(1, ""),
        Entry::Arm { branch: 3, arm: 0 },
        Entry::StepFailed {
            index: 2,
            error: "hotel full: ünïcödé\nsecond line".into(),
        },
        Entry::CompensationStarted {
            index: 1,
            attempt: 1,
        },
        Entry::CompensationSucceeded { index: 1 },
        Entry::CompensationStarted {
            index: 0,
            attempt: 3,
        },
        Entry::CompensationFailed {
            index: 0,
            error: String::new(),
        },
    ];
    store.append_all(id, journal.clone()).await.unwrap();
    store
        .append(id, finished(SagaStatus::Parked))
        .await
        .unwrap();
    journal.push(finished(SagaStatus::Parked));
    assert_eq!(
        store.get(id).await.unwrap().unwrap().status,
        SagaStatus::Parked
    );

    // A person retries: the saga runs again, and whoever runs it claims it.
    let retry = intervention(true, "ops: refund service is back");
    assert_eq!(
        store
            .append_if(id, SagaStatus::Parked, retry.clone())
            .await
            .unwrap(),
        Ok(())
    );
    journal.push(retry);
    let claimed = store.claim_unfinished().await.unwrap();
    assert_eq!(claimed.iter().map(|r| r.id).collect::<Vec<_>>(), [id]);
    assert_eq!(claimed[0].journal, journal);
    let parked_again = Entry::Finished {
        status: SagaStatus::Parked,
        output: Some(Vec::new()),
    };
    store.append(id, parked_again.clone()).await.unwrap();
    journal.push(parked_again);
    let resolve = intervention(false, "ops: refunded by hand");
    assert_eq!(
        store
            .append_if(id, SagaStatus::Parked, resolve.clone())
            .await
            .unwrap(),
        Ok(())
    );
    journal.push(resolve);

    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Resolved);
    assert_eq!(record.journal, journal);
    assert_eq!(
        store.with_status(SagaStatus::Resolved).await.unwrap(),
        [record]
    );
    assert!(
        store
            .with_status(SagaStatus::Running)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.claim_unfinished().await.unwrap().is_empty());
}

async fn a_duplicate_create_and_an_unknown_saga_are_refused_by_id<B: Backend>(b: &B) {
    let store = b.store();
    let id = SagaId::time_ordered();
    store.create(new_saga(id)).await.unwrap();
    store.append(id, started(0, 1)).await.unwrap();
    let error = store.create(new_saga(id)).await.unwrap_err();
    assert!(error.message().contains(&id.to_string()), "{error}");
    assert!(error.message().contains("already exists"), "{error}");
    assert!(error.message().contains(&b.names()), "{error}");
    // The first creation and its journal are untouched.
    assert_eq!(
        store.get(id).await.unwrap().unwrap().journal,
        [started(0, 1)]
    );

    let unknown = SagaId::time_ordered();
    let error = store.append(unknown, started(0, 1)).await.unwrap_err();
    assert!(error.message().contains(&unknown.to_string()), "{error}");
    assert_eq!(store.get(unknown).await.unwrap(), None);
    assert_eq!(
        store
            .append_if(unknown, SagaStatus::Parked, intervention(false, "x"))
            .await
            .unwrap(),
        Err(None)
    );
}

async fn append_all_lands_whole_and_in_order_under_concurrency<B: Backend>(b: &B) {
    let store = b.store();
    let ids: Vec<SagaId> = (0..48).map(|_| SagaId::time_ordered()).collect();
    let creates = ids.iter().map(|&id| store.create(new_saga(id)));
    for result in futures_util::future::join_all(creates).await {
        result.unwrap();
    }
    // Three rounds of four entries per saga, all sagas at once.
    for round in 0..3u32 {
        let writes = ids.iter().enumerate().map(|(i, &id)| {
            let entries = (0..4)
                .map(|k| started(round * 4 + k, i as u32 + 1))
                .collect::<Vec<_>>();
            store.append_all(id, entries)
        });
        for result in futures_util::future::join_all(writes).await {
            result.unwrap();
        }
    }
    store.append_all(ids[0], Vec::new()).await.unwrap();
    for (i, &id) in ids.iter().enumerate() {
        let journal = store.get(id).await.unwrap().unwrap().journal;
        let expected: Vec<Entry> = (0..12).map(|k| started(k, i as u32 + 1)).collect();
        assert_eq!(journal, expected, "saga {i}");
    }
    // A saga that does not exist gets none of an append_all.
    let unknown = SagaId::time_ordered();
    assert!(
        store
            .append_all(unknown, vec![started(0, 1), started(1, 1)])
            .await
            .is_err()
    );
    assert_eq!(store.get(unknown).await.unwrap(), None);
}

async fn of_interventions_racing_on_a_parked_saga_exactly_one_is_heard<B: Backend>(b: &B) {
    let store = b.store();
    let id = crashed(
        store,
        vec![Entry::StepFailed {
            index: 0,
            error: "e".into(),
        }],
    )
    .await;
    store
        .append(id, finished(SagaStatus::Parked))
        .await
        .unwrap();
    let attempts = (0..8usize).map(|i| {
        store.append_if(
            id,
            SagaStatus::Parked,
            intervention(i.is_multiple_of(2), &format!("person {i}")),
        )
    });
    let answers: Vec<_> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let heard: Vec<usize> = (0..8).filter(|&i| answers[i].is_ok()).collect();
    assert_eq!(heard.len(), 1, "{answers:?}");
    let winner = heard[0];
    let left = if winner.is_multiple_of(2) {
        SagaStatus::Running
    } else {
        SagaStatus::Resolved
    };
    for (i, answer) in answers.iter().enumerate() {
        if i != winner {
            assert_eq!(*answer, Err(Some(left)), "person {i}");
        }
    }
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, left);
    let notes: Vec<_> = record
        .journal
        .iter()
        .filter(|e| matches!(e, Entry::Intervention { .. }))
        .collect();
    assert_eq!(
        notes,
        [&intervention(
            winner.is_multiple_of(2),
            &format!("person {winner}")
        )]
    );
}

async fn executors_over_clones_share_claims_and_recover_each_saga_once<B: Backend>(b: &B) {
    let store = b.store();
    let clone = store.clone();
    let claims = store.claims().expect("a shared store keeps its claims");
    assert!(
        std::ptr::eq(claims, clone.claims().unwrap()),
        "clones share one set"
    );
    let mut ids = Vec::new();
    for _ in 0..16 {
        ids.push(crashed(store, vec![started(0, 1)]).await);
    }
    let one = executor(store);
    let two = executor(&clone);
    let (a, b2) = futures_util::future::join(one.recover(), two.recover()).await;
    let (a, b2) = (a.unwrap(), b2.unwrap());
    assert_eq!(a.sagas.len() + b2.sagas.len(), 16, "{a:?}\n{b2:?}");
    for report in [&a, &b2] {
        assert_eq!(
            report.count(|o| *o == RecoveredOutcome::Committed),
            report.sagas.len(),
            "{report:?}"
        );
    }
    // Each saga's steps ran once, whichever executor took it.
    let mut counts = one.resources().get::<Shop>().unwrap().counts();
    for (call, n) in two.resources().get::<Shop>().unwrap().counts() {
        *counts.entry(call).or_default() += n;
    }
    for ((what, key), n) in &counts {
        assert_eq!(*n, 1, "{what} [{key}] ran {n} times");
    }
    assert_eq!(counts.len(), 32, "reserve and charge of each saga");
    for id in ids {
        assert_eq!(
            store.get(id).await.unwrap().unwrap().status,
            SagaStatus::Committed
        );
    }
}

async fn recovery_resumes_forward_and_compensating_sagas<B: Backend>(b: &B) {
    let store = b.store();
    let forward = crashed(store, vec![started(0, 1), succeeded(0, "3"), started(1, 1)]).await;
    let back = crashed(
        store,
        vec![
            started(0, 1),
            succeeded(0, "5"),
            started(1, 1),
            Entry::StepFailed {
                index: 1,
                error: "card declined".into(),
            },
        ],
    )
    .await;
    let executor = executor(store);
    let report = executor.recover().await.unwrap();
    assert_eq!(report.sagas.len(), 2, "{report}");
    let outcome = |id| {
        report
            .sagas
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.outcome.clone())
            .unwrap()
    };
    assert_eq!(outcome(forward), RecoveredOutcome::Committed);
    assert_eq!(
        outcome(back),
        RecoveredOutcome::Compensated {
            failed_step: "charge".into(),
            undone: vec!["reserve".into()]
        }
    );
    let shop = executor.resources().get::<Shop>().unwrap();
    let counts = shop.counts();
    // The step with an intent and no outcome ran again, with its stable key.
    assert_eq!(
        counts.get(&("charge".into(), format!("{forward}-1"))),
        Some(&1)
    );
    assert_eq!(
        counts.get(&("release desk #5".into(), format!("{back}-0-undo"))),
        Some(&1)
    );
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert_eq!(
        store.get(forward).await.unwrap().unwrap().status,
        SagaStatus::Committed
    );
    assert_eq!(
        store.get(back).await.unwrap().unwrap().status,
        SagaStatus::Compensated
    );
    assert!(executor.recover().await.unwrap().sagas.is_empty());
}

async fn a_saga_whose_compensation_fails_is_parked_until_a_person_acts<B: Backend>(b: &B) {
    let store = b.store();
    let executor = executor(store);
    let shop = executor.resources().get::<Shop>().unwrap();
    shop.fail_charge.store(true, Ordering::SeqCst);
    shop.fail_release.store(true, Ordering::SeqCst);
    let started = executor
        .start(BuySaga::new(
            shop,
            Order {
                item: "lamp".into(),
                qty: 2,
            },
        ))
        .await
        .unwrap();
    let id = started.id();
    let error = started.outcome().await.unwrap().unwrap_err();
    assert!(!error.is_compensated(), "{error}");
    let parked = executor.parked().await.unwrap();
    assert_eq!(parked.iter().map(|r| r.id).collect::<Vec<_>>(), [id]);
    assert!(executor.recover().await.unwrap().sagas.is_empty());

    shop.fail_release.store(false, Ordering::SeqCst);
    executor
        .retry_compensations(id, "warehouse back")
        .await
        .unwrap();
    let report = executor.recover().await.unwrap();
    assert_eq!(
        report
            .sagas
            .iter()
            .map(|s| s.outcome.clone())
            .collect::<Vec<_>>(),
        [RecoveredOutcome::Compensated {
            failed_step: "charge".into(),
            undone: vec!["reserve".into()]
        }]
    );
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Compensated);
    assert!(executor.resolve(id, "too late").await.is_err());
}

async fn a_changed_definition_is_refused_and_the_record_left_intact<B: Backend>(b: &B) {
    let store = b.store();
    let id = SagaId::time_ordered();
    store
        .create(NewSaga {
            fingerprint: "reserve:compensate=release charge:pivot".into(),
            ..new_saga(id)
        })
        .await
        .unwrap();
    store.append(id, started(0, 1)).await.unwrap();
    let executor = executor(store);
    let report = executor.recover().await.unwrap();
    match &report.sagas[..] {
        [one] => match &one.outcome {
            RecoveredOutcome::Refused(reason) => {
                assert!(reason.contains(&id.to_string()), "{reason}");
                assert!(
                    reason.contains(
                        "step 2 was `charge:pivot` and is now `charge:compensate=refund`"
                    ),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Running);
    assert_eq!(record.journal, [started(0, 1)]);
    assert!(
        executor
            .resources()
            .get::<Shop>()
            .unwrap()
            .names()
            .is_empty()
    );
}

async fn a_corrupt_row_is_reported_naming_the_store_and_the_saga<B: Backend>(b: &B) {
    let store = b.store();
    let id = crashed(store, vec![started(0, 1)]).await;
    let fine = crashed(store, vec![started(0, 1)]).await;
    b.corrupt(id).await;
    for error in [
        store.get(id).await.unwrap_err(),
        store.with_status(SagaStatus::Running).await.unwrap_err(),
    ] {
        let message = error.message();
        assert!(message.contains(&b.names()), "{message}");
        assert!(
            message.contains(&format!("saga {id}, journal entry 1")),
            "{message}"
        );
        assert!(
            message.contains("unknown entry kind \"bogus\""),
            "{message}"
        );
    }
    // The other saga still reads.
    assert_eq!(
        store.get(fine).await.unwrap().unwrap().journal,
        [started(0, 1)]
    );
}

async fn submitted_sagas_are_claimed_oldest_first<B: Backend>(b: &B) {
    let store = b.store();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let id = SagaId::time_ordered();
        store.submit(new_saga(id)).await.unwrap();
        ids.push(id);
    }
    let first = store.claim_runnable(2).await.unwrap();
    assert_eq!(first.iter().map(|r| r.id).collect::<Vec<_>>(), ids[..2]);
    // Whoever submits holds nothing: every one can be claimed (again, by a
    // store that leases to itself).
    let all = store.claim_unfinished().await.unwrap();
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    // And run by an executor's recovery.
    let report = executor(store).recover().await.unwrap();
    assert_eq!(
        report.count(|o| *o == RecoveredOutcome::Committed),
        5,
        "{report}"
    );
}
