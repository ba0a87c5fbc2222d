//! The test kit finds what it is for: a broken compensation, a step that is not
//! idempotent, and a step that does not survive a crash, and passes a good saga.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use sagaflow::durable::Executor;
use sagaflow::testing::{Fault, SagaTest};
use sagaflow::{StepContext, saga, step};
use serde::{Deserialize, Serialize};

/// A bank handle: clones share the accounts, as a real client's do.
#[derive(Clone, Default)]
pub struct Bank {
    state: Arc<Mutex<BankState>>,
}

#[derive(Default)]
struct BankState {
    balance: i64,
    /// Charges by idempotency key, for the careful steps.
    charges: BTreeMap<String, i64>,
    /// Seats held, by idempotency key.
    seats: BTreeMap<String, ()>,
    /// Deliberate bugs, switched on by the tests.
    refund_forgets: bool,
}

impl Bank {
    fn reset(&self) {
        let mut state = self.state.lock().unwrap();
        *state = BankState {
            refund_forgets: state.refund_forgets,
            ..BankState::default()
        };
    }
    fn balance(&self) -> i64 {
        self.state.lock().unwrap().balance
    }
    fn seats(&self) -> i64 {
        self.state.lock().unwrap().seats.len() as i64
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankError(String);

impl std::fmt::Display for BankError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn key() -> String {
    StepContext::current()
        .map(|c| c.idempotency_key().to_string())
        .unwrap_or_default()
}

/// Careful: holds one seat per idempotency key.
#[step(compensate = release_seat)]
async fn hold_seat(bank: &Bank) -> Result<u32, BankError> {
    bank.state.lock().unwrap().seats.insert(key(), ());
    Ok(1)
}

async fn release_seat(bank: &Bank, _seat: &u32) -> Result<(), BankError> {
    let key = key();
    bank.state
        .lock()
        .unwrap()
        .seats
        .remove(key.trim_end_matches("-undo"));
    Ok(())
}

/// Careful: charges once per idempotency key.
#[step(compensate = refund, retry = 1)]
async fn charge(bank: &Bank, cents: i64) -> Result<i64, BankError> {
    let mut s = bank.state.lock().unwrap();
    let key = key();
    if let std::collections::btree_map::Entry::Vacant(slot) = s.charges.entry(key) {
        slot.insert(cents);
        s.balance += cents;
    }
    Ok(cents)
}

async fn refund(bank: &Bank, _cents: i64, charged: &i64) -> Result<(), BankError> {
    let mut s = bank.state.lock().unwrap();
    if s.refund_forgets {
        return Ok(());
    }
    // Refund once, whatever the number of deliveries.
    let key = key();
    let charge_key = key.trim_end_matches("-undo").to_owned();
    if s.charges.remove(&charge_key).is_some() {
        s.balance -= charged;
    }
    Ok(())
}

/// Careless: adds every time it is delivered.
#[step(compensate = refund_careless)]
async fn charge_careless(bank: &Bank, cents: i64) -> Result<i64, BankError> {
    bank.state.lock().unwrap().balance += cents;
    Ok(cents)
}

async fn refund_careless(bank: &Bank, _cents: i64, charged: &i64) -> Result<(), BankError> {
    bank.state.lock().unwrap().balance -= charged;
    Ok(())
}

#[step(pivot, timeout = "1s")]
async fn issue_ticket(_bank: &Bank) -> Result<String, BankError> {
    Ok("T-1".to_owned())
}

#[step(retriable, retry(backoff = "1s", max_backoff = "30s"))]
async fn email(_bank: &Bank, ticket: &str) -> Result<(), BankError> {
    let _ = ticket;
    Ok(())
}

#[saga]
async fn buy_ticket(bank: &Bank, cents: i64) -> Result<String, BankError> {
    let _ = hold_seat(bank).await?;
    let _ = charge(bank, cents).await?;
    let ticket = issue_ticket(bank).await?;
    email(bank, &ticket).await?;
    Ok(ticket)
}

#[saga]
async fn buy_ticket_carelessly(bank: &Bank, cents: i64) -> Result<String, BankError> {
    let _ = hold_seat(bank).await?;
    let _ = charge_careless(bank, cents).await?;
    let ticket = issue_ticket(bank).await?;
    Ok(ticket)
}

/// Money and seats moved only if the saga committed.
fn nothing_moved_unless_committed(
    bank: &Bank,
) -> impl FnMut(&sagaflow::testing::RunSummary) -> Result<(), String> + '_ {
    move |run| {
        let (balance, seats) = (bank.balance(), bank.seats());
        let (want_balance, want_seats) = if run.committed() { (700, 1) } else { (0, 0) };
        if (balance, seats) == (want_balance, want_seats) {
            Ok(())
        } else {
            Err(format!(
                "balance {balance} and {seats} seat(s) held, expected {want_balance} and {want_seats}"
            ))
        }
    }
}

#[test]
fn a_good_saga_passes_every_sweep() {
    let bank = Bank::default();
    let mut test = SagaTest::new(|| {
        bank.reset();
        BuyTicketSaga::new(&bank, 700)
    })
    .invariant(nothing_moved_unless_committed(&bank));
    let failures = test.failure_sweep().unwrap();
    // A clean run, then 4 steps × 3 faults.
    assert_eq!(failures.runs(), 13);
    assert!(
        failures
            .cases()
            .contains(&"`issue_ticket` made to fail by a timeout".to_owned()),
        "{failures}"
    );
    assert!(
        failures
            .cases()
            .contains(&"`email` (retriable) made to fail twice by a panic".to_owned())
    );
    let repeats = test.repeat_sweep().unwrap();
    // Each of 4 steps twice, and each of 2 compensations twice.
    assert_eq!(repeats.runs(), 6, "{repeats}");
    let crashes = test
        .crash_sweep(|store| {
            Executor::new(store)
                .resource(bank.clone())
                .register::<BuyTicketSaga>()
        })
        .unwrap();
    // Killed after each commit: the input, then each step's intent (which carries
    // the previous step's outcome in the same commit): 5 runs; the 6th run's last
    // commit is the end itself, so it runs to its end.
    assert_eq!(crashes.runs(), 6, "{crashes}");
    assert_eq!(crashes.cases()[5], "ran to its end");
    assert!(
        crashes.cases()[2].contains("step 1 attempt 1 began"),
        "{crashes}"
    );
}

#[test]
fn the_failure_sweep_finds_a_compensation_that_does_not_undo() {
    let bank = Bank::default();
    bank.state.lock().unwrap().refund_forgets = true;
    let err = SagaTest::new(|| {
        bank.reset();
        BuyTicketSaga::new(&bank, 700)
    })
    .invariant(nothing_moved_unless_committed(&bank))
    .faults(&[Fault::Error])
    .failure_sweep()
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "failure sweep, run 4 (`issue_ticket` made to fail by an error): invariant broken: balance 700 and 0 seat(s) held, expected 0 and 0"
    );
}

#[test]
fn the_repeat_sweep_finds_a_step_that_is_not_idempotent() {
    let bank = Bank::default();
    let err = SagaTest::new(|| {
        bank.reset();
        BuyTicketCarelesslySaga::new(&bank, 700)
    })
    .invariant(nothing_moved_unless_committed(&bank))
    .repeat_sweep()
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "repeat sweep, run 2 (`charge_careless` delivered twice): invariant broken: balance 1400 and 1 seat(s) held, expected 700 and 1"
    );
}

#[test]
fn the_crash_sweep_finds_a_step_that_runs_twice_after_a_crash() {
    let bank = Bank::default();
    let err = SagaTest::new(|| {
        bank.reset();
        BuyTicketCarelesslySaga::new(&bank, 700)
    })
    .invariant(|run| {
        // Only the money: the seat step is careless too, but let the charge be caught.
        let want = if run.committed() { 700 } else { 0 };
        match bank.balance() {
            b if b == want => Ok(()),
            b => Err(format!("balance {b}, expected {want}")),
        }
    })
    .crash_sweep(|store| {
        Executor::new(store)
            .resource(bank.clone())
            .register::<BuyTicketCarelesslySaga>()
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "crash sweep, run 3 (killed after transition 3 (step 1 attempt 1 began)): invariant broken: balance 1400, expected 700"
    );
}
