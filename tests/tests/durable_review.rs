//! A review of durable execution against its contract: store failures in the
//! middle of a saga, recovery racing other work, changed step output types,
//! parked sagas handled by people, odd files and two stores on one file.
//!
//! Tests of behaviour that breaks the contract assert the correct behaviour and
//! are ignored with the reason, so that the suite stays green.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sagaflow::durable::{
    Durability, DurableError, Entry, Executor, NewSaga, RecoveredOutcome, SagaRecord, SagaStatus,
    SqliteStore, Store, StoreError, fingerprint,
};
use sagaflow::{Saga, SagaId, StepContext, saga, step};
use serde::{Deserialize, Serialize};
use tokio::sync::{Barrier, Notify, Semaphore};

// ---------------------------------------------------------------------------
// A saga and a fake shop

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Order {
    item: String,
    qty: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Reservation {
    id: u64,
}

#[derive(Debug)]
struct ShopError(String);

impl std::fmt::Display for ShopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

struct ShopState {
    calls: Mutex<Vec<String>>,
    fail_charge: AtomicBool,
    fail_release: AtomicBool,
    /// When set, the next `reserve` tells `entered` and waits for a permit of `hold`.
    hold_next_reserve: AtomicBool,
    entered: Notify,
    hold: Semaphore,
}

impl Default for ShopState {
    fn default() -> Self {
        ShopState {
            calls: Mutex::default(),
            fail_charge: AtomicBool::default(),
            fail_release: AtomicBool::default(),
            hold_next_reserve: AtomicBool::default(),
            entered: Notify::new(),
            hold: Semaphore::new(0),
        }
    }
}

/// A fake shop that records every call with the idempotency key it came with.
/// A handle: clones share one state, so two executors can share one shop.
#[derive(Clone, Default)]
struct Shop(Arc<ShopState>);

impl Shop {
    fn log(&self, what: &str) {
        let key = StepContext::current()
            .map(|c| c.idempotency_key().to_string())
            .unwrap_or_default();
        self.0.calls.lock().unwrap().push(format!("{what} [{key}]"));
    }

    fn calls(&self) -> Vec<String> {
        self.0.calls.lock().unwrap().clone()
    }

    fn names(&self) -> Vec<String> {
        self.calls()
            .iter()
            .map(|c| c.split(" [").next().unwrap().to_owned())
            .collect()
    }

    fn count(&self, prefix: &str) -> usize {
        self.names()
            .iter()
            .filter(|n| n.starts_with(prefix))
            .count()
    }
}

#[step(compensate = release)]
async fn reserve(shop: &Shop, order: &Order) -> Result<Reservation, ShopError> {
    if shop.0.hold_next_reserve.swap(false, Ordering::SeqCst) {
        shop.0.entered.notify_one();
        shop.0.hold.acquire().await.unwrap().forget();
    }
    shop.log(&format!("reserve {}", order.item));
    Ok(Reservation { id: 7 })
}

async fn release(shop: &Shop, order: &Order, r: &Reservation) -> Result<(), ShopError> {
    if shop.0.fail_release.load(Ordering::SeqCst) {
        shop.log("release failed");
        return Err(ShopError("warehouse offline".into()));
    }
    shop.log(&format!("release {} #{}", order.item, r.id));
    Ok(())
}

#[step(compensate = refund)]
async fn charge(shop: &Shop, order: &Order) -> Result<u64, ShopError> {
    shop.log("charge");
    if shop.0.fail_charge.load(Ordering::SeqCst) {
        return Err(ShopError("card declined".into()));
    }
    Ok(u64::from(order.qty) * 100)
}

async fn refund(shop: &Shop, _order: &Order, paid: &u64) -> Result<(), ShopError> {
    shop.log(&format!("refund {paid}"));
    Ok(())
}

#[step(read_only)]
async fn confirm(shop: &Shop, paid: &u64) -> Result<String, ShopError> {
    shop.log(&format!("confirm {paid}"));
    Ok(format!("paid {paid}"))
}

#[saga]
async fn buy(shop: &Shop, order: Order) -> Result<String, ShopError> {
    let _ = reserve(shop, &order).await?;
    let paid = charge(shop, &order).await?;
    let receipt = confirm(shop, &paid).await?;
    Ok(receipt)
}

fn order() -> Order {
    Order {
        item: "lamp".into(),
        qty: 2,
    }
}

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("sagas.db"), Durability::Full).unwrap()
}

fn kinds(journal: &[Entry]) -> Vec<String> {
    journal
        .iter()
        .map(|e| match e {
            Entry::StepStarted { index, attempt } => format!("start {index}#{attempt}"),
            Entry::StepSucceeded { index, .. } => format!("ok {index}"),
            Entry::StepFailed { index, .. } => format!("failed {index}"),
            Entry::CompensationStarted { index, attempt } => format!("undo {index}#{attempt}"),
            Entry::CompensationSucceeded { index } => format!("undone {index}"),
            Entry::CompensationFailed { index, .. } => format!("undo failed {index}"),
            Entry::Decided => "decided".to_owned(),
            Entry::ConfirmStarted { index, attempt } => format!("confirm {index}#{attempt}"),
            Entry::Confirmed { index } => format!("confirmed {index}"),
            Entry::Finished { status, .. } => format!("finished {status}"),
            Entry::Intervention { retry, .. } => format!("intervention retry={retry}"),
            Entry::Sent { messages } => format!("sent {}", messages.len()),
            Entry::Arm { branch, arm } => format!("arm {branch}={arm}"),
        })
        .collect()
}

fn finishes(record: &SagaRecord) -> usize {
    record
        .journal
        .iter()
        .filter(|e| matches!(e, Entry::Finished { .. }))
        .count()
}

/// Writes a `buy` saga as a process that died after `journal` would have left it.
async fn crashed(store: &impl Store, journal: Vec<Entry>) -> SagaId {
    let id = SagaId::random();
    store
        .create(NewSaga {
            id,
            saga_type: "buy".into(),
            fingerprint: fingerprint(BuySaga::STEPS),
            input: br#"{"order":{"item":"desk","qty":1}}"#.to_vec(),
        })
        .await
        .unwrap();
    for entry in journal {
        store.append(id, entry).await.unwrap();
    }
    id
}

fn intent(index: u32, attempt: u32) -> Entry {
    Entry::StepStarted { index, attempt }
}

fn succeeded(index: u32, output: &[u8]) -> Entry {
    Entry::StepSucceeded {
        index,
        output: output.to_vec(),
    }
}

/// Fails a test that would otherwise hang.
async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(10), future).await {
        Ok(value) => value,
        Err(_) => panic!("{what} hung"),
    }
}

// ---------------------------------------------------------------------------
// Stores wrapped to fail a write or to hold a recovery's read

/// A SQLite store that fails exactly one write (the `fail_at`-th, from 1), as a
/// disk that is full for a moment would, and can hold `claim_unfinished` after
/// its read until `release` gets a permit (telling `claimed` when it has read).
#[derive(Clone)]
struct Wrapped {
    inner: SqliteStore,
    writes: Arc<AtomicU32>,
    fail_at: Arc<AtomicU32>,
    hold_claims: Arc<AtomicBool>,
    claimed: Arc<Notify>,
    release: Arc<Semaphore>,
    /// When set, each `get` waits after its read until another `get` has read too.
    gets_in_pairs: Arc<AtomicBool>,
    pair: Arc<Barrier>,
}

impl Wrapped {
    fn new(inner: SqliteStore) -> Self {
        Wrapped {
            inner,
            writes: Arc::default(),
            fail_at: Arc::default(),
            hold_claims: Arc::default(),
            claimed: Arc::default(),
            release: Arc::new(Semaphore::new(0)),
            gets_in_pairs: Arc::default(),
            pair: Arc::new(Barrier::new(2)),
        }
    }

    fn pass(&self) -> Result<(), StoreError> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at.load(Ordering::SeqCst) {
            return Err(StoreError::new("review store: the disk is full (injected)"));
        }
        Ok(())
    }
}

impl Store for Wrapped {
    async fn create(&self, saga: NewSaga) -> Result<(), StoreError> {
        self.pass()?;
        self.inner.create(saga).await
    }

    async fn append(&self, id: SagaId, entry: Entry) -> Result<(), StoreError> {
        self.pass()?;
        self.inner.append(id, entry).await
    }

    async fn append_all(&self, id: SagaId, entries: Vec<Entry>) -> Result<(), StoreError> {
        self.pass()?;
        self.inner.append_all(id, entries).await
    }

    async fn append_if(
        &self,
        id: SagaId,
        status: SagaStatus,
        entry: Entry,
    ) -> Result<Result<(), Option<SagaStatus>>, StoreError> {
        self.pass()?;
        self.inner.append_if(id, status, entry).await
    }

    async fn claim_unfinished(&self) -> Result<Vec<SagaRecord>, StoreError> {
        let records = self.inner.claim_unfinished().await?;
        if self.hold_claims.swap(false, Ordering::SeqCst) {
            self.claimed.notify_one();
            self.release.acquire().await.unwrap().forget();
        }
        Ok(records)
    }

    fn claims(&self) -> Option<&sagaflow::durable::Claims> {
        self.inner.claims()
    }

    fn release(&self, id: SagaId) {
        self.inner.release(id)
    }

    async fn get(&self, id: SagaId) -> Result<Option<SagaRecord>, StoreError> {
        let record = self.inner.get(id).await;
        if self.gets_in_pairs.load(Ordering::SeqCst) {
            self.pair.wait().await;
        }
        record
    }

    async fn with_status(&self, status: SagaStatus) -> Result<Vec<SagaRecord>, StoreError> {
        self.inner.with_status(status).await
    }
}

// ---------------------------------------------------------------------------
// Store errors in the middle of a saga

/// For every write of a committing and of a compensating saga: that write fails
/// once. The caller gets the store error (no hang), nothing more is written by
/// that run, the saga stays `running`, and recovery over the same store finishes
/// it with every step done at least once and nothing undone twice.
#[tokio::test]
async fn a_store_error_at_any_write_stops_the_saga_for_recovery() {
    for fail_charge in [false, true] {
        // create, 3 intents (with outcomes), finished / create, 2 intents,
        // failed, undo intent, undone, finished.
        let writes = if fail_charge { 6 } else { 5 };
        for fail_at in 1..=writes {
            let dir = tempfile::tempdir().unwrap();
            let store = Wrapped::new(open(&dir));
            store.fail_at.store(fail_at, Ordering::SeqCst);
            let shop = Shop::default();
            shop.0.fail_charge.store(fail_charge, Ordering::SeqCst);
            let executor = Executor::new(store.clone())
                .resource(shop.clone())
                .register::<BuySaga>();
            let case = format!("fail_charge={fail_charge}, write {fail_at} fails");

            let id = match executor.start(BuySaga::new(&shop, order())).await {
                Err(DurableError::Store(e)) => {
                    assert_eq!(fail_at, 1, "{case}: {e}");
                    assert!(e.message().contains("disk is full"), "{case}: {e}");
                    let running = store.inner.claim_unfinished().await.unwrap();
                    assert!(running.is_empty(), "{case}: a failed start left a saga");
                    assert!(shop.calls().is_empty(), "{case}");
                    continue;
                }
                Err(other) => panic!("{case}: {other}"),
                Ok(started) => {
                    let id = started.id();
                    let outcome = within(&case, started.outcome()).await;
                    match outcome {
                        Err(e) => assert!(e.message().contains("disk is full"), "{case}: {e}"),
                        Ok(result) => panic!("{case}: the caller was not told: {result:?}"),
                    }
                    id
                }
            };
            // Nothing was written after the failed write.
            let record = store.inner.get(id).await.unwrap().unwrap();
            assert_eq!(record.status, SagaStatus::Running, "{case}");
            assert_eq!(
                store.writes.load(Ordering::SeqCst),
                fail_at,
                "{case}: the run went on writing after its store failed: {:?}",
                kinds(&record.journal)
            );

            let report = within(&case, executor.recover()).await.unwrap();
            assert_eq!(report.sagas.len(), 1, "{case}: {report}");
            let record = store.inner.get(id).await.unwrap().unwrap();
            assert_eq!(finishes(&record), 1, "{case}");
            if fail_charge {
                assert!(
                    matches!(
                        report.sagas[0].outcome,
                        RecoveredOutcome::Compensated { .. }
                    ),
                    "{case}: {report}"
                );
                assert_eq!(record.status, SagaStatus::Compensated, "{case}");
                assert!(shop.count("reserve") >= 1, "{case}: {:?}", shop.names());
                assert!(shop.count("release") >= 1, "{case}: {:?}", shop.names());
                assert_eq!(shop.count("confirm"), 0, "{case}");
            } else {
                assert_eq!(
                    report.sagas[0].outcome,
                    RecoveredOutcome::Committed,
                    "{case}"
                );
                assert_eq!(record.status, SagaStatus::Committed, "{case}");
                for step in ["reserve", "charge", "confirm"] {
                    assert!(shop.count(step) >= 1, "{case}: {:?}", shop.names());
                }
                assert_eq!(shop.count("release") + shop.count("refund"), 0, "{case}");
            }
            // Every run of a step used the same key.
            let mut keys: Vec<String> = shop
                .calls()
                .iter()
                .filter(|c| c.starts_with("reserve"))
                .map(|c| c.split(" [").nth(1).unwrap().to_owned())
                .collect();
            keys.dedup();
            assert_eq!(keys, [format!("{id}-0]")], "{case}");
        }
    }
}

/// A store error while a recovered saga runs: the report says it halted, the
/// saga stays `running`, and the next recovery finishes it.
#[tokio::test]
async fn a_store_error_during_recovery_is_reported_and_the_saga_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Wrapped::new(open(&dir));
    let id = crashed(
        &store.inner,
        vec![intent(0, 1), succeeded(0, br#"{"id":3}"#)],
    )
    .await;
    store.fail_at.store(1, Ordering::SeqCst);
    let executor = Executor::new(store.clone())
        .resource(Shop::default())
        .register::<BuySaga>();
    let report = executor.recover().await.unwrap();
    assert!(
        matches!(&report.sagas[0].outcome, RecoveredOutcome::Halted(e) if e.message().contains("disk is full")),
        "{report}"
    );
    let record = store.inner.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Running);
    assert_eq!(kinds(&record.journal), ["start 0#1", "ok 0"]);
    let report = executor.recover().await.unwrap();
    assert_eq!(report.sagas[0].outcome, RecoveredOutcome::Committed);
    let shop = executor.resources().get::<Shop>().unwrap();
    assert_eq!(shop.names(), ["charge", "confirm 100"]);
}

/// The store's file is deleted while the store is open (a clean-up job, a
/// person). The writes that follow are acknowledged as durable but go to a file
/// that no longer has a name: once the process ends, the saga is gone.
#[tokio::test]
async fn a_store_file_deleted_under_the_writer_fails_the_saga_instead_of_losing_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sagas.db");
    let shop = Shop::default();
    let id;
    {
        let store = SqliteStore::open(&path, Durability::Full).unwrap();
        let executor = Executor::new(store).register::<BuySaga>();
        let started = executor.start(BuySaga::new(&shop, order())).await.unwrap();
        id = started.id();
        std::fs::remove_file(&path).unwrap();
        let outcome = within("a saga over a deleted file", started.outcome()).await;
        match outcome {
            Err(e) => assert!(
                e.message().contains(&path.display().to_string()),
                "the error does not name the file: {e}"
            ),
            Ok(result) => panic!(
                "the saga ran on a deleted store file and reported {result:?}; \
                 its steps ran: {:?}",
                shop.names()
            ),
        }
    }
    // What the caller was told is durable can be read back.
    let store = SqliteStore::open_existing(&path, Durability::Full).unwrap();
    assert!(store.get(id).await.unwrap().is_some());
}

// ---------------------------------------------------------------------------
// Recovery racing other work

/// `recover` reads the unfinished sagas, and by the time it looks at one, that
/// saga has finished in `start`'s hands and left the executor's running set.
#[tokio::test]
async fn recovery_does_not_run_again_a_saga_that_finished_after_its_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = Wrapped::new(open(&dir));
    let shop = Shop::default();
    let executor = Executor::new(store.clone())
        .resource(shop.clone())
        .register::<BuySaga>();
    let started = executor.start(BuySaga::new(&shop, order())).await.unwrap();
    let id = started.id();
    store.hold_claims.store(true, Ordering::SeqCst);
    let run = async {
        // Recovery has read the store: the saga is `running` there.
        store.claimed.notified().await;
        let outcome = started.outcome().await.unwrap().unwrap();
        store.release.add_permits(1);
        outcome
    };
    let (report, outcome) =
        within("recovery", async { tokio::join!(executor.recover(), run) }).await;
    assert_eq!(outcome, "paid 200");
    let report = report.unwrap();
    let record = store.inner.get(id).await.unwrap().unwrap();
    assert_eq!(
        shop.count("charge"),
        1,
        "the customer was charged twice: {:?}; report: {report}; journal: {:?}",
        shop.names(),
        kinds(&record.journal)
    );
    assert!(
        report.sagas.iter().all(|s| s.id != id),
        "recovery took up a saga that had finished: {report}"
    );
    assert_eq!(finishes(&record), 1, "{:?}", kinds(&record.journal));
}

/// Two recoveries: the first takes a saga up and finishes it; the second read the
/// store before that and looks at the saga only afterwards.
#[tokio::test]
async fn two_recoveries_run_each_saga_once_even_when_one_read_early() {
    let dir = tempfile::tempdir().unwrap();
    let store = Wrapped::new(open(&dir));
    let id = crashed(&store.inner, vec![intent(0, 1)]).await;
    let executor = Executor::new(store.clone())
        .resource(Shop::default())
        .register::<BuySaga>();
    store.hold_claims.store(true, Ordering::SeqCst);
    let first = async {
        store.claimed.notified().await;
        let report = executor.recover().await.unwrap();
        store.release.add_permits(1);
        report
    };
    let (late, first) = within("recovery", async {
        tokio::join!(executor.recover(), first)
    })
    .await;
    let late = late.unwrap();
    assert_eq!(first.sagas.len(), 1, "{first}");
    let shop = executor.resources().get::<Shop>().unwrap();
    let record = store.inner.get(id).await.unwrap().unwrap();
    assert_eq!(
        shop.count("reserve"),
        1,
        "{:?}; late report: {late}; journal: {:?}",
        shop.names(),
        kinds(&record.journal)
    );
    assert!(late.sagas.is_empty(), "{late}");
    assert_eq!(finishes(&record), 1, "{:?}", kinds(&record.journal));
}

/// A second store on the same file (a second process, or a new deployment that
/// starts before the old one has stopped) would take up, in its recovery, a saga
/// the first is in the middle of: its step would run twice at once. So the second
/// open is refused, naming the file, while the first store lives.
#[tokio::test]
async fn a_second_store_on_the_same_file_does_not_run_a_saga_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sagas.db");
    let shop = Shop::default();
    let first = Executor::new(SqliteStore::open(&path, Durability::Full).unwrap())
        .resource(shop.clone())
        .register::<BuySaga>();
    shop.0.hold_next_reserve.store(true, Ordering::SeqCst);
    let started = first.start(BuySaga::new(&shop, order())).await.unwrap();
    let id = started.id();
    let second = async {
        // The first process is inside `reserve`.
        shop.0.entered.notified().await;
        let opened = SqliteStore::open(&path, Durability::Full);
        shop.0.hold.add_permits(1);
        opened
    };
    let (first_outcome, opened) = within("two stores", async {
        tokio::join!(started.outcome(), second)
    })
    .await;
    match opened {
        Err(e) => {
            assert!(e.message().contains(&path.display().to_string()), "{e}");
            assert!(e.message().contains("another store"), "{e}");
        }
        Ok(store) => {
            let executor = Executor::new(store)
                .resource(shop.clone())
                .register::<BuySaga>();
            let report = executor.recover().await.unwrap();
            panic!("a second store opened the file of a store in use; its recovery: {report}");
        }
    }
    assert_eq!(first_outcome.unwrap().unwrap(), "paid 200");
    assert_eq!(shop.count("reserve"), 1, "{:?}", shop.names());
    // Once the first store is gone, the file opens again, with the saga finished.
    drop(first);
    let store = SqliteStore::open(&path, Durability::Full).unwrap();
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Committed);
}

/// `start` is cancelled (a timeout, a `select!`) after it sent the saga's
/// creation to the store: the saga is in the store, and this executor's next
/// recovery must take it up.
#[tokio::test]
async fn a_cancelled_start_leaves_its_saga_to_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let shop = Shop::default();
    let executor = Executor::new(store.clone())
        .resource(shop.clone())
        .register::<BuySaga>();
    {
        let start = executor.start(BuySaga::new(&shop, order()));
        let mut start = std::pin::pin!(start);
        // Polled once: the creation is on its way to the writer. Then dropped.
        std::future::poll_fn(|cx| {
            let _ = start.as_mut().poll(cx);
            std::task::Poll::Ready(())
        })
        .await;
    }
    let stored = within("the creation", async {
        loop {
            let running = store.claim_unfinished().await.unwrap();
            if !running.is_empty() {
                break running;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(stored.len(), 1);
    let report = executor.recover().await.unwrap();
    assert_eq!(
        report.sagas.len(),
        1,
        "the cancelled start's saga was not recovered: {report}"
    );
    assert_eq!(report.sagas[0].outcome, RecoveredOutcome::Committed);
    assert_eq!(shop.names(), ["reserve lamp", "charge", "confirm 200"]);
}

/// `recover` is cancelled while a saga it took up is in a step (a shutdown
/// `select!`, a timeout): the next recovery of the same executor must take that
/// saga up again.
#[tokio::test]
async fn a_cancelled_recovery_leaves_its_sagas_to_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let id = crashed(&store, vec![]).await;
    let shop = Shop::default();
    let executor = Executor::new(store.clone())
        .resource(shop.clone())
        .register::<BuySaga>();
    shop.0.hold_next_reserve.store(true, Ordering::SeqCst);
    tokio::select! {
        report = executor.recover() => panic!("recovery ended inside a held step: {report:?}"),
        () = shop.0.entered.notified() => {}
    }
    // The held attempt was dropped with the recovery; its intent is durable.
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(kinds(&record.journal), ["start 0#1"]);
    let report = executor.recover().await.unwrap();
    assert_eq!(
        report.sagas.len(),
        1,
        "the saga of the cancelled recovery was skipped: {report}"
    );
    assert_eq!(report.sagas[0].outcome, RecoveredOutcome::Committed);
    assert_eq!(shop.count("reserve"), 1, "{:?}", shop.names());
}

/// Two executors over clones of one store in one process (say, one built per
/// request handler, or one per group of saga types): the second one's recovery
/// takes up a saga the first is running. Nothing conflicts, since both write
/// through the same writer: the step runs twice at once and both runs go on.
#[tokio::test]
async fn a_second_executor_on_the_same_store_does_not_run_a_saga_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let shop = Shop::default();
    let first = Executor::new(store.clone())
        .resource(shop.clone())
        .register::<BuySaga>();
    let second = Executor::new(store.clone())
        .resource(shop.clone())
        .register::<BuySaga>();
    shop.0.hold_next_reserve.store(true, Ordering::SeqCst);
    let started = first.start(BuySaga::new(&shop, order())).await.unwrap();
    let id = started.id();
    let recovering = async {
        shop.0.entered.notified().await;
        let report = second.recover().await.unwrap();
        shop.0.hold.add_permits(1);
        report
    };
    let (outcome, report) = within("two executors", async {
        tokio::join!(started.outcome(), recovering)
    })
    .await;
    let record = store.get(id).await.unwrap().unwrap();
    assert!(
        report.sagas.iter().all(|s| s.id != id),
        "the second executor took up the first one's saga: {report}; calls {:?}; journal {:?}",
        shop.names(),
        kinds(&record.journal)
    );
    assert_eq!(outcome.unwrap().unwrap(), "paid 200");
    assert_eq!(shop.count("charge"), 1, "{:?}", shop.names());
    assert_eq!(finishes(&record), 1, "{:?}", kinds(&record.journal));
}

// ---------------------------------------------------------------------------
// Changed step output types

/// The code's `Reservation` changed shape since the saga ran `reserve`: the
/// stored output no longer deserializes. The step did happen, so the saga must
/// not be driven as if it had failed (that would never undo it); it is a changed
/// definition, refused with its record left as it is.
#[tokio::test]
async fn a_stored_output_that_no_longer_deserializes_is_refused_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let journal = vec![
        intent(0, 1),
        succeeded(0, br#"{"reservation_id":"R-7"}"#),
        intent(1, 1),
    ];
    let id = crashed(&store, journal).await;
    let executor = Executor::new(store.clone())
        .resource(Shop::default())
        .register::<BuySaga>();
    let report = executor.recover().await.unwrap();
    let record = store.get(id).await.unwrap().unwrap();
    let shop = executor.resources().get::<Shop>().unwrap();
    assert!(
        matches!(&report.sagas[0].outcome, RecoveredOutcome::Refused(r) if r.contains(&id.to_string()) && r.contains("reserve")),
        "{report}; journal now {:?}; calls {:?}",
        kinds(&record.journal),
        shop.names()
    );
    assert_eq!(record.status, SagaStatus::Running);
    assert_eq!(kinds(&record.journal), ["start 0#1", "ok 0", "start 1#1"]);
    assert!(shop.calls().is_empty(), "{:?}", shop.names());
}

/// The same while compensating: `charge` had failed and `reserve` was to be
/// undone, but its stored output no longer reads.
#[tokio::test]
async fn a_compensating_saga_with_an_unreadable_output_is_not_called_compensated() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let journal = vec![
        intent(0, 1),
        succeeded(0, br#"{"reservation_id":"R-7"}"#),
        intent(1, 1),
        Entry::StepFailed {
            index: 1,
            error: "card declined".into(),
        },
    ];
    let id = crashed(&store, journal).await;
    let executor = Executor::new(store.clone())
        .resource(Shop::default())
        .register::<BuySaga>();
    let report = executor.recover().await.unwrap();
    let record = store.get(id).await.unwrap().unwrap();
    assert_ne!(
        record.status,
        SagaStatus::Compensated,
        "`reserve` was never undone, yet the saga is compensated: {report}; journal {:?}",
        kinds(&record.journal)
    );
    assert!(
        matches!(&report.sagas[0].outcome, RecoveredOutcome::Refused(_)),
        "{report}"
    );
    assert_eq!(record.journal.len(), 4, "{:?}", kinds(&record.journal));
}

#[step(read_only)]
async fn ratio(shop: &Shop) -> Result<f64, ShopError> {
    shop.log("ratio");
    Ok(f64::NAN)
}

#[step(read_only)]
async fn show(shop: &Shop, r: &f64) -> Result<String, ShopError> {
    shop.log("show");
    Ok(format!("{r}"))
}

#[saga]
async fn analyse(shop: &Shop) -> Result<String, ShopError> {
    let _ = label(shop).await?;
    let r = ratio(shop).await?;
    let text = show(shop, &r).await?;
    Ok(text)
}

#[step(compensate = unlabel)]
async fn label(shop: &Shop) -> Result<u32, ShopError> {
    shop.log("label");
    Ok(1)
}

async fn unlabel(shop: &Shop, _: &u32) -> Result<(), ShopError> {
    shop.log("unlabel");
    Ok(())
}

/// A step returns `f64::NAN`: serde_json writes it as `null` without an error,
/// and `null` does not read back as an `f64`. What the store holds for a step
/// must read back, or the step must fail when it is written; otherwise a crash
/// after the step turns its success into a failure on recovery.
#[tokio::test]
async fn a_step_output_is_stored_so_that_it_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let shop = Shop::default();
    let executor = Executor::new(store.clone())
        .resource(shop.clone())
        .register::<AnalyseSaga>();
    let started = executor.start(AnalyseSaga::new(&shop)).await.unwrap();
    let id = started.id();
    let result = started.outcome().await.unwrap();
    let record = store.get(id).await.unwrap().unwrap();
    let stored = record.journal.iter().find_map(|e| match e {
        Entry::StepSucceeded { index: 1, output } => Some(output.clone()),
        _ => None,
    });
    let Some(stored) = stored else {
        // Refusing the output when it is written is fine too.
        assert!(result.is_err(), "{result:?}");
        return;
    };
    // A crash right after `ratio`, then recovery.
    let crashed_id = SagaId::random();
    store
        .create(NewSaga {
            id: crashed_id,
            saga_type: "analyse".into(),
            fingerprint: fingerprint(AnalyseSaga::STEPS),
            input: b"{}".to_vec(),
        })
        .await
        .unwrap();
    let journal = vec![
        intent(0, 1),
        succeeded(0, b"1"),
        intent(1, 1),
        succeeded(1, &stored),
        intent(2, 1),
    ];
    store.append_all(crashed_id, journal).await.unwrap();
    let report = executor.recover().await.unwrap();
    let crashed = store.get(crashed_id).await.unwrap().unwrap();
    assert_eq!(
        report.sagas[0].outcome,
        RecoveredOutcome::Committed,
        "stored {:?}; journal {:?}",
        String::from_utf8_lossy(&stored),
        kinds(&crashed.journal)
    );
}

/// The stored input no longer deserializes: refused, record intact.
#[tokio::test]
async fn a_stored_input_that_no_longer_deserializes_is_refused_with_its_record_intact() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let id = SagaId::random();
    store
        .create(NewSaga {
            id,
            saga_type: "buy".into(),
            fingerprint: fingerprint(BuySaga::STEPS),
            input: br#"{"order":{"sku":9}}"#.to_vec(),
        })
        .await
        .unwrap();
    store.append(id, intent(0, 1)).await.unwrap();
    let executor = Executor::new(store.clone())
        .resource(Shop::default())
        .register::<BuySaga>();
    let report = executor.recover().await.unwrap();
    assert!(
        matches!(&report.sagas[0].outcome, RecoveredOutcome::Refused(r) if r.contains(&id.to_string()) && r.contains("order")),
        "{report}"
    );
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Running);
    assert_eq!(kinds(&record.journal), ["start 0#1"]);
    assert!(
        executor
            .resources()
            .get::<Shop>()
            .unwrap()
            .calls()
            .is_empty()
    );
}

// ---------------------------------------------------------------------------
// Parked sagas and the people who handle them

/// Parked, retried, failing again: parked again with its whole history; then
/// resolved by hand. Interventions on unknown or unparked sagas are refused.
#[tokio::test]
async fn a_retried_parked_saga_that_fails_again_is_parked_again_then_resolved() {
    tokio::time::pause();
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let executor = Executor::new(store.clone())
        .resource(Shop::default())
        .register::<BuySaga>();
    let shop = executor.resources().get::<Shop>().unwrap();
    shop.0.fail_charge.store(true, Ordering::SeqCst);
    shop.0.fail_release.store(true, Ordering::SeqCst);
    let started = executor.start(BuySaga::new(shop, order())).await.unwrap();
    let id = started.id();
    assert!(
        !started
            .outcome()
            .await
            .unwrap()
            .unwrap_err()
            .is_compensated()
    );

    executor.retry_compensations(id, "try again").await.unwrap();
    assert_eq!(
        store.get(id).await.unwrap().unwrap().status,
        SagaStatus::Running
    );
    // A second intervention while it waits for recovery is refused.
    assert!(matches!(
        executor.resolve(id, "no, by hand").await,
        Err(DurableError::NotParked {
            status: SagaStatus::Running,
            ..
        })
    ));
    let report = executor.recover().await.unwrap();
    assert!(
        matches!(&report.sagas[0].outcome, RecoveredOutcome::Parked { failed_step, failed } if failed_step == "charge" && failed.len() == 1),
        "{report}"
    );
    let parked = executor.parked().await.unwrap();
    assert_eq!(parked.iter().map(|r| r.id).collect::<Vec<_>>(), [id]);
    let history = kinds(&parked[0].journal);
    assert_eq!(
        history.iter().filter(|k| *k == "finished parked").count(),
        2,
        "{history:?}"
    );
    assert_eq!(history.last().unwrap(), "finished parked");
    // Each compensation attempt ran with the same key.
    assert!(
        shop.calls()
            .iter()
            .filter(|c| c.starts_with("release"))
            .all(|c| c.ends_with(&format!("[{id}-0-undo]"))),
        "{:?}",
        shop.calls()
    );

    executor.resolve(id, "refunded by hand").await.unwrap();
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Resolved);
    assert!(executor.parked().await.unwrap().is_empty());
    assert!(executor.recover().await.unwrap().sagas.is_empty());
    assert!(matches!(
        executor.resolve(id, "again").await,
        Err(DurableError::NotParked {
            status: SagaStatus::Resolved,
            ..
        })
    ));
    let unknown = SagaId::random();
    assert_eq!(
        executor.resolve(unknown, "?").await,
        Err(DurableError::UnknownSaga { id: unknown })
    );
    assert_eq!(
        executor.retry_compensations(unknown, "?").await,
        Err(DurableError::UnknownSaga { id: unknown })
    );
    // Nothing was appended to the unknown id or the resolved saga.
    assert!(store.get(unknown).await.unwrap().is_none());
    assert_eq!(
        store.get(id).await.unwrap().unwrap().journal.len(),
        record.journal.len()
    );
}

/// A person resolves a parked saga (repaired by hand) while another retries its
/// compensations: both are accepted, and the saga ends `running` again, so the
/// next recovery undoes by machine what was already repaired by hand.
#[tokio::test]
async fn two_interventions_at_once_on_one_parked_saga_are_not_both_accepted() {
    tokio::time::pause();
    let dir = tempfile::tempdir().unwrap();
    let store = Wrapped::new(open(&dir));
    let executor = Executor::new(store.clone())
        .resource(Shop::default())
        .register::<BuySaga>();
    let shop = executor.resources().get::<Shop>().unwrap();
    shop.0.fail_charge.store(true, Ordering::SeqCst);
    shop.0.fail_release.store(true, Ordering::SeqCst);
    let started = executor.start(BuySaga::new(shop, order())).await.unwrap();
    let id = started.id();
    let _ = started.outcome().await.unwrap();
    // Both look the saga up before either writes (two people, two tools).
    store.gets_in_pairs.store(true, Ordering::SeqCst);
    let (resolved, retried) = tokio::join!(
        executor.resolve(id, "refunded by hand"),
        executor.retry_compensations(id, "warehouse is back")
    );
    store.gets_in_pairs.store(false, Ordering::SeqCst);
    let record = store.inner.get(id).await.unwrap().unwrap();
    assert!(
        resolved.is_err() || retried.is_err(),
        "both accepted; status now {}, history {:?}",
        record.status,
        kinds(&record.journal)
    );
}

/// Killed after a compensation failed for good but before the saga was marked
/// parked: recovery does not try that compensation again on its own; it parks.
#[tokio::test]
async fn a_saga_killed_between_a_failed_compensation_and_parking_is_parked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let id = crashed(
        &store,
        vec![
            intent(0, 1),
            succeeded(0, br#"{"id":3}"#),
            intent(1, 1),
            Entry::StepFailed {
                index: 1,
                error: "card declined".into(),
            },
            Entry::CompensationStarted {
                index: 0,
                attempt: 1,
            },
            Entry::CompensationFailed {
                index: 0,
                error: "warehouse offline".into(),
            },
        ],
    )
    .await;
    let executor = Executor::new(store.clone())
        .resource(Shop::default())
        .register::<BuySaga>();
    let report = executor.recover().await.unwrap();
    assert!(
        matches!(&report.sagas[0].outcome, RecoveredOutcome::Parked { failed_step, failed } if failed_step == "charge" && failed[0].error() == "warehouse offline"),
        "{report}"
    );
    assert!(
        executor
            .resources()
            .get::<Shop>()
            .unwrap()
            .calls()
            .is_empty()
    );
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Parked);
    assert_eq!(record.journal.len(), 7);
}

// ---------------------------------------------------------------------------
// Retries across a restart, large outputs

/// The step had used up three attempts under an older policy when the process
/// died: recovery runs it again (attempt 4) with the same key, and its failure
/// is recorded and compensated.
#[tokio::test]
async fn a_step_retried_before_the_crash_runs_again_numbered_on_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let id = crashed(
        &store,
        vec![
            intent(0, 1),
            succeeded(0, br#"{"id":3}"#),
            intent(1, 1),
            intent(1, 2),
            intent(1, 3),
        ],
    )
    .await;
    let executor = Executor::new(store.clone())
        .resource(Shop::default())
        .register::<BuySaga>();
    let shop = executor.resources().get::<Shop>().unwrap();
    shop.0.fail_charge.store(true, Ordering::SeqCst);
    let report = executor.recover().await.unwrap();
    assert!(
        matches!(&report.sagas[0].outcome, RecoveredOutcome::Compensated { failed_step, undone } if failed_step == "charge" && undone == &["reserve"]),
        "{report}"
    );
    assert_eq!(shop.names(), ["charge", "release desk #3"]);
    assert!(shop.calls()[0].ends_with(&format!("[{id}-1]")));
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        kinds(&record.journal)[5..],
        [
            "start 1#4",
            "failed 1",
            "undo 0#1",
            "undone 0",
            "finished compensated"
        ]
    );
}

#[step(read_only)]
async fn scan(size: &usize) -> Result<String, ShopError> {
    Ok("x".repeat(*size))
}

#[step(read_only)]
async fn measure(text: &str) -> Result<usize, ShopError> {
    Ok(text.len())
}

#[saga]
async fn big(size: usize) -> Result<usize, ShopError> {
    let text = scan(&size).await?;
    let len = measure(&text).await?;
    Ok(len)
}

/// A step output of 8 MiB is stored, read back on recovery and handed to the
/// next step.
#[tokio::test]
async fn a_large_output_is_stored_and_read_back_on_recovery() {
    const SIZE: usize = 8 << 20;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let executor = Executor::new(store.clone()).register::<BigSaga>();
    let started = executor.start(BigSaga::new(SIZE)).await.unwrap();
    let id = started.id();
    assert_eq!(started.outcome().await.unwrap().unwrap(), SIZE);
    let record = store.get(id).await.unwrap().unwrap();
    match &record.journal[1] {
        Entry::StepSucceeded { output, .. } => assert_eq!(output.len(), SIZE + 2),
        other => panic!("{other:?}"),
    }

    // A crash right after `scan`: recovery reads its output back.
    let crashed_id = SagaId::random();
    store
        .create(NewSaga {
            id: crashed_id,
            saga_type: "big".into(),
            fingerprint: fingerprint(BigSaga::STEPS),
            input: format!(r#"{{"size":{SIZE}}}"#).into_bytes(),
        })
        .await
        .unwrap();
    let output = serde_json::to_vec(&"y".repeat(SIZE)).unwrap();
    store
        .append_all(crashed_id, vec![intent(0, 1), succeeded(0, &output)])
        .await
        .unwrap();
    let report = executor.recover().await.unwrap();
    assert_eq!(report.sagas[0].outcome, RecoveredOutcome::Committed);
    let record = store.get(crashed_id).await.unwrap().unwrap();
    match record.journal.last().unwrap() {
        Entry::Finished { output, .. } => {
            assert_eq!(output.as_deref(), Some(SIZE.to_string().as_bytes()))
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Odd files

/// An empty file is no existing store to `open_existing` (a wrong path, or a
/// file cut short) but a new one to `open` (SQLite's reading of it); a path
/// under a regular file and a directory are refused with the path named;
/// nothing panics.
#[test]
fn odd_paths_are_refused_with_the_path_named_or_opened_as_new() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let refused = SqliteStore::open_existing(&empty, Durability::Full).unwrap_err();
    assert!(refused.message().contains("file is empty"), "{refused}");
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
    let store = SqliteStore::open(&empty, Durability::Full).unwrap();
    drop(store);
    assert!(std::fs::metadata(&empty).unwrap().len() > 0);

    let file = dir.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    let under = file.join("sagas.db");
    for existing in [false, true] {
        let result = if existing {
            SqliteStore::open_existing(&under, Durability::Full)
        } else {
            SqliteStore::open(&under, Durability::Full)
        };
        let err = result.unwrap_err();
        assert!(
            err.message().contains(&under.display().to_string()),
            "{err}"
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"x");

    let err = SqliteStore::open_existing(dir.path(), Durability::Normal).unwrap_err();
    assert!(err.message().contains("is a directory"), "{err}");
}
