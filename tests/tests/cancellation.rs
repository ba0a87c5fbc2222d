//! A durable run whose future is dropped midway (a `timeout`, a client that
//! went away) never makes anything run twice: its saga stays claimed until its
//! last write is durable, and recovery finishes it from all it wrote.
//!
//! The steps here never suspend, so every point where a run can be dropped is
//! a store write: dropping the run after its k-th suspension, for every k,
//! cancels it at every kind of transition (creation, an intent, an outcome
//! with the next intent, a failure, a compensation's intent and outcome, the
//! end).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use sagaflow::durable::{Durability, Executor, SagaStatus, SqliteStore, Store};
use sagaflow::{Phase, SagaId, StepContext, saga, step};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    qty: u32,
    /// Fail the payment: the saga compensates.
    declined: bool,
}

#[derive(Debug)]
struct ShopError(String);

impl std::fmt::Display for ShopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A step of a saga: its id, the step's name, and whether it is the compensation.
type Run = (SagaId, &'static str, bool);

/// Counts every run of every step and compensation, by saga.
#[derive(Clone, Default)]
struct Ledger(Arc<Mutex<HashMap<Run, u32>>>);

impl Ledger {
    fn ran(&self) {
        let cx = StepContext::current().expect("called inside a step");
        let key = (cx.saga_id(), cx.step(), cx.phase() == Phase::Compensation);
        *self.0.lock().unwrap().entry(key).or_default() += 1;
    }

    /// Every (saga, step, phase) run more than once, with how often.
    fn repeated(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|((id, step, comp), n)| {
                let what = if *comp { "compensation of" } else { "step" };
                format!("{what} {step} of {id}: {n} runs")
            })
            .collect();
        out.sort();
        out
    }

    fn runs(&self) -> u32 {
        self.0.lock().unwrap().values().sum()
    }
}

#[step(read_only)]
async fn look_up(ledger: &Ledger, order: &Order) -> Result<u32, ShopError> {
    ledger.ran();
    Ok(order.qty * 100)
}

#[step(compensate = release)]
async fn reserve(ledger: &Ledger, order: &Order) -> Result<u32, ShopError> {
    ledger.ran();
    Ok(order.qty)
}

async fn release(ledger: &Ledger, _order: &Order, _held: &u32) -> Result<(), ShopError> {
    ledger.ran();
    Ok(())
}

#[step(compensate = refund)]
async fn hold(ledger: &Ledger, price: u32) -> Result<u32, ShopError> {
    ledger.ran();
    Ok(price)
}

async fn refund(ledger: &Ledger, _price: u32, _held: &u32) -> Result<(), ShopError> {
    ledger.ran();
    Ok(())
}

#[step(pivot)]
async fn pay(ledger: &Ledger, order: &Order, price: u32) -> Result<u32, ShopError> {
    ledger.ran();
    if order.declined {
        return Err(ShopError("card declined".into()));
    }
    Ok(price)
}

#[step(retriable)]
async fn ship(ledger: &Ledger, order: &Order) -> Result<(), ShopError> {
    ledger.ran();
    let _ = order;
    Ok(())
}

#[saga]
async fn checkout(ledger: &Ledger, order: Order) -> Result<u32, ShopError> {
    let price = look_up(ledger, &order).await?;
    let _ = reserve(ledger, &order).await?;
    let _ = hold(ledger, price).await?;
    let paid = pay(ledger, &order, price).await?;
    ship(ledger, &order).await?;
    Ok(paid)
}

/// Polls `inner` until it has returned `Pending` `after` times, then gives up
/// on it (and drops it with itself).
struct DropAfter<F> {
    inner: Pin<Box<F>>,
    after: usize,
}

impl<F: Future> Future for DropAfter<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.inner.as_mut().poll(cx) {
            Poll::Ready(out) => Poll::Ready(Some(out)),
            Poll::Pending if self.after <= 1 => Poll::Ready(None),
            Poll::Pending => {
                self.after -= 1;
                Poll::Pending
            }
        }
    }
}

/// Two worker threads: the writes of a dropped run finish on another thread
/// while the test goes on, as in a service.
fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn executor(store: SqliteStore, ledger: &Ledger) -> Executor<SqliteStore> {
    Executor::new(store)
        .resource(ledger.clone())
        .register::<CheckoutSaga>()
}

/// Recovers until no saga is left claimed by a dropped run whose last write
/// was still on its way: each is taken up by the first recovery after it.
async fn recover_until_done(executor: &Executor<SqliteStore>) {
    for _ in 0..1000 {
        if executor.recover().await.unwrap().already_running == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("sagas stayed claimed after every write was answered");
}

/// Checks the end state: every saga finished, and nothing ran twice.
async fn assert_all_finished_once(store: &SqliteStore, ids: &[SagaId], ledger: &Ledger) {
    for id in ids {
        let record = store.get(*id).await.unwrap().expect("saga is stored");
        assert!(
            matches!(
                record.status,
                SagaStatus::Committed | SagaStatus::Compensated
            ),
            "saga {id} ended {:?}: {:?}",
            record.status,
            record.journal
        );
    }
    let repeated = ledger.repeated();
    assert!(
        repeated.is_empty(),
        "{} runs repeated after a dropped outcome: {repeated:#?}",
        repeated.len()
    );
}

#[test]
fn a_run_dropped_at_any_transition_runs_nothing_again() {
    multi_thread().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("sagas.db"), Durability::Normal).unwrap();
        let ledger = Ledger::default();
        let executor = executor(store.clone(), &ledger);
        // A committed run suspends 7 times (6 commits and the end), a
        // compensated one 8; go a little past both, many times over.
        let mut ids = Vec::new();
        let mut cut_short = 0;
        for round in 0..150 {
            for after in 1..=10 {
                let order = Order {
                    qty: after as u32,
                    declined: (round + after) % 2 == 0,
                };
                let started = executor.start(CheckoutSaga::new(&ledger, order)).await;
                let started = started.unwrap();
                ids.push(started.id());
                let run = DropAfter {
                    inner: Box::pin(started.outcome()),
                    after,
                };
                if run.await.is_none() {
                    cut_short += 1;
                    // Recovery at once, while the dropped run's last write may
                    // still be on its way to the disk, on a task of its own.
                    tokio::spawn(executor.recover()).await.unwrap().unwrap();
                }
            }
        }
        assert!(cut_short > 1000, "only {cut_short} runs were cut short");
        recover_until_done(&executor).await;
        assert_all_finished_once(&store, &ids, &ledger).await;
    });
}

#[test]
fn outcomes_dropped_by_timeouts_run_nothing_again() {
    multi_thread().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("sagas.db"), Durability::Full).unwrap();
        let ledger = Ledger::default();
        let executor = executor(store.clone(), &ledger);
        let mut ids = Vec::new();
        let mut timed_out = 0;
        for i in 0..1000u32 {
            let order = Order {
                qty: i,
                declined: i % 3 == 0,
            };
            let started = executor
                .start(CheckoutSaga::new(&ledger, order))
                .await
                .unwrap();
            ids.push(started.id());
            // 0 to 3 ms: a committed run takes about 1 ms on this store.
            let limit = Duration::from_micros(u64::from(i % 31) * 100);
            let outcome = tokio::time::timeout(limit, started.outcome()).await;
            if outcome.is_err() {
                timed_out += 1;
                executor.recover().await.unwrap();
            }
        }
        recover_until_done(&executor).await;
        assert!(timed_out > 100, "only {timed_out} outcomes were cut short");
        assert_all_finished_once(&store, &ids, &ledger).await;
    });
}

/// A saga that borrows nothing: its handle is `'static`.
#[step(read_only)]
async fn count(n: u32) -> Result<u32, ShopError> {
    Ok(n + 1)
}

#[saga]
async fn counting(n: u32) -> Result<u32, ShopError> {
    let m = count(n).await?;
    Ok(m)
}

fn assert_send_static<T: Send + 'static>(_: &T) {}

#[test]
fn the_executor_its_handles_and_recovery_can_be_spawned() {
    multi_thread().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("sagas.db"), Durability::Normal).unwrap();
        let ledger = Ledger::default();
        let executor = executor(store.clone(), &ledger).register::<CountingSaga>();
        assert_send_static(&executor);

        // Recovery on a task of its own, over a saga whose handle was dropped.
        let left = executor.start(CountingSaga::new(1)).await.unwrap();
        let left_id = left.id();
        drop(left);
        let recovered = tokio::spawn(executor.recover()).await.unwrap().unwrap();
        assert_eq!(recovered.sagas.len(), 1);
        assert_eq!(recovered.sagas[0].id, left_id);

        // A handle whose saga borrows nothing is `'static + Send`.
        let started = executor.start(CountingSaga::new(41)).await.unwrap();
        assert_send_static(&started);
        let answer = tokio::spawn(started.outcome()).await.unwrap().unwrap();
        assert_eq!(answer.unwrap(), 42);

        // One that borrows spawns with `spawn`, rebuilt from the registered
        // resources: the borrowed ledger may go at once.
        let local = Ledger::default();
        let order = Order {
            qty: 2,
            declined: false,
        };
        let started = executor
            .start(CheckoutSaga::new(&local, order))
            .await
            .unwrap();
        let id = started.id();
        let handle = started.spawn();
        drop(local);
        assert_eq!(handle.await.unwrap().unwrap().unwrap(), 200);
        let record = store.get(id).await.unwrap().unwrap();
        assert_eq!(record.status, SagaStatus::Committed);
        // The steps ran with the executor's ledger, not the dropped one.
        assert_eq!(ledger.runs(), 5);

        // The executor itself moves into tasks.
        let clone = executor.clone();
        let report = tokio::spawn(async move { clone.recover().await })
            .await
            .unwrap()
            .unwrap();
        assert!(report.sagas.is_empty());
    });
}
