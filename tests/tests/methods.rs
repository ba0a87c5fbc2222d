//! Steps as methods (`#[sagaflow::steps]`): they run, retry, compensate with the
//! same receiver, name themselves `Type::method`, and recover durably.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use sagaflow::durable::Executor;
use sagaflow::testing::SagaTest;
use sagaflow::{Saga, SagaError, StepContext, StepKind, saga};
use serde::{Deserialize, Serialize};

use sagaflow_tests::Refused as ServiceError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Order {
    account: String,
    total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Debit {
    id: u32,
    amount: u64,
}

/// The calls every service saw, in order, shared by the services of one test.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, entry: String) {
        self.0.lock().unwrap().push(entry);
    }
    fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

#[derive(Clone)]
struct Bank {
    name: &'static str,
    log: Log,
    balance: Arc<Mutex<i64>>,
    flaky: Arc<Mutex<u32>>,
    /// The idempotency keys of the debits and refunds done: a step runs at
    /// least once, and its key makes it exactly once.
    done: Arc<Mutex<HashSet<String>>>,
}

impl Bank {
    fn new(name: &'static str, log: &Log) -> Self {
        Bank {
            name,
            log: log.clone(),
            balance: Arc::default(),
            flaky: Arc::default(),
            done: Arc::default(),
        }
    }
}

#[sagaflow::steps]
impl Bank {
    /// Takes the order's total from its account.
    #[step(compensate = Self::refund, retry = 2)]
    async fn debit(&self, account: &str, amount: u64) -> Result<Debit, ServiceError> {
        {
            let mut flaky = self.flaky.lock().unwrap();
            if *flaky > 0 {
                *flaky -= 1;
                self.log
                    .push(format!("{}: debit {account} flaked", self.name));
                return Err(ServiceError("bank busy".into()));
            }
        }
        if self.first_time() {
            *self.balance.lock().unwrap() -= amount as i64;
        }
        self.log
            .push(format!("{}: debit {account} {amount}", self.name));
        Ok(Debit { id: 1, amount })
    }

    async fn refund(&self, account: &str, amount: u64, debit: &Debit) -> Result<(), ServiceError> {
        assert_eq!(amount, debit.amount);
        if self.first_time() {
            *self.balance.lock().unwrap() += debit.amount as i64;
        }
        self.log.push(format!(
            "{}: refund {account} #{} {amount}",
            self.name, debit.id
        ));
        Ok(())
    }

    /// Not a step: stays an ordinary method.
    fn balance(&self) -> i64 {
        *self.balance.lock().unwrap()
    }

    /// Whether the current step's effect is new (its key not seen yet).
    fn first_time(&self) -> bool {
        let key = StepContext::current()
            .map(|c| c.idempotency_key().to_string())
            .unwrap_or_default();
        self.done.lock().unwrap().insert(key)
    }
}

#[derive(Clone)]
struct Airline {
    log: Log,
    full: Arc<Mutex<bool>>,
}

#[sagaflow::steps]
impl Airline {
    #[step(read_only)]
    async fn quote(&self, order: &Order) -> Result<u64, ServiceError> {
        self.log.push(format!("airline: quote {}", order.total));
        Ok(order.total / 10)
    }

    #[step(compensate = cancel, timeout = "5s")]
    async fn book(&self, order: &Order, fee: u64) -> Result<String, ServiceError> {
        if *self.full.lock().unwrap() {
            self.log.push("airline: full".into());
            return Err(ServiceError("no seat left".into()));
        }
        self.log
            .push(format!("airline: book {} +{fee}", order.account));
        Ok(format!("seat for {}", order.account))
    }

    async fn cancel(&self, _order: &Order, _fee: u64, seat: &String) -> Result<(), ServiceError> {
        self.log.push(format!("airline: cancel {seat}"));
        Ok(())
    }

    #[step(retriable)]
    async fn confirm(&self, seat: &str) -> Result<(), ServiceError> {
        self.log.push(format!("airline: confirm {seat}"));
        Ok(())
    }
}

/// A generic service: its steps are declared once for every transport.
trait Transport: Send + Sync {
    fn deliver(&self, text: &str);
}

#[derive(Clone)]
struct LogTransport(Log);

impl Transport for LogTransport {
    fn deliver(&self, text: &str) {
        self.0.push(format!("mail: {text}"));
    }
}

struct Mailer<T> {
    transport: T,
}

#[sagaflow::steps]
impl<T: Transport> Mailer<T> {
    #[step(pivot)]
    async fn send(&self, to: &str) -> Result<(), ServiceError> {
        self.transport.deliver(to);
        Ok(())
    }
}

#[saga]
async fn trip(
    bank: &Bank,
    airline: &Airline,
    mailer: &Mailer<LogTransport>,
    order: Order,
) -> Result<String, ServiceError> {
    let fee = airline.quote(&order).await?;
    let debit = bank.debit(&order.account, order.total).await?;
    let seat = airline.book(&order, fee).await?;
    mailer.send(&order.account).await?;
    airline.confirm(&seat).await?;
    Ok(format!("{seat}, debit #{}", debit.id))
}

struct World {
    log: Log,
    bank: Bank,
    airline: Airline,
    mailer: Mailer<LogTransport>,
}

fn world() -> World {
    let log = Log::default();
    World {
        bank: Bank::new("bank", &log),
        airline: Airline {
            log: log.clone(),
            full: Arc::default(),
        },
        mailer: Mailer {
            transport: LogTransport(log.clone()),
        },
        log,
    }
}

fn order() -> Order {
    Order {
        account: "ada".into(),
        total: 500,
    }
}

#[tokio::test]
async fn a_saga_of_methods_runs_them_in_order_with_their_retries() {
    let w = world();
    *w.bank.flaky.lock().unwrap() = 2;
    let out = trip(&w.bank, &w.airline, &w.mailer, order()).await.unwrap();
    assert_eq!(out, "seat for ada, debit #1");
    assert_eq!(
        w.log.entries(),
        [
            "airline: quote 500",
            "bank: debit ada flaked",
            "bank: debit ada flaked",
            "bank: debit ada 500",
            "airline: book ada +50",
            "mail: ada",
            "airline: confirm seat for ada",
        ]
    );
    assert_eq!(w.bank.balance(), -500);
}

#[tokio::test]
async fn a_failing_method_step_undoes_the_earlier_ones_on_their_receivers() {
    let w = world();
    *w.airline.full.lock().unwrap() = true;
    let err = trip(&w.bank, &w.airline, &w.mailer, order())
        .await
        .unwrap_err();
    assert!(matches!(err, SagaError::Compensated { .. }), "{err}");
    assert_eq!(err.failed_step(), "Airline::book");
    assert_eq!(err.cause().unwrap().0, "no seat left");
    assert_eq!(
        w.log.entries(),
        [
            "airline: quote 500",
            "bank: debit ada 500",
            "airline: full",
            "bank: refund ada #1 500",
        ]
    );
    assert_eq!(w.bank.balance(), 0);
}

#[test]
fn method_steps_are_named_by_their_type_in_the_graph() {
    let steps = <TripSaga as Saga>::STEPS;
    let names: Vec<&str> = steps.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "Airline::quote",
            "Bank::debit",
            "Airline::book",
            "Mailer::send",
            "Airline::confirm"
        ]
    );
    assert_eq!(steps[1].kind(), StepKind::Compensatable);
    assert_eq!(steps[1].compensation(), Some("refund"));
    assert_eq!(steps[1].retry().max_retries(), Some(2));
    assert_eq!(steps[2].timeout(), Some(std::time::Duration::from_secs(5)));
    assert_eq!(steps[3].kind(), StepKind::Pivot);
    let mermaid = TripSaga::graph().to_mermaid();
    assert!(mermaid.contains("Bank#58;#58;debit"), "{mermaid}");
    assert!(TripSaga::graph().to_dot().contains("Bank::debit"));
    assert!(TripSaga::graph().to_svg().contains("Bank::debit"));
}

#[test]
fn a_saga_of_methods_survives_every_crash_and_fault() {
    let w = world();
    let (bank, airline) = (w.bank.clone(), w.airline.clone());
    let mut test = SagaTest::new(|| {
        w.log.clear();
        *w.bank.balance.lock().unwrap() = 0;
        w.bank.done.lock().unwrap().clear();
        TripSaga::new(&w.bank, &w.airline, &w.mailer, order())
    })
    .invariant(|run| {
        let want = if run.committed() { -500 } else { 0 };
        match w.bank.balance() {
            b if b == want => Ok(()),
            b => Err(format!("balance {b}, expected {want}")),
        }
    });
    let failures = test.failure_sweep().unwrap();
    assert!(failures.runs() > 1, "{failures}");
    let crashes = test
        .crash_sweep(|store| {
            Executor::new(store)
                .resource(bank.clone())
                .resource(airline.clone())
                .resource(Mailer {
                    transport: LogTransport(Log::default()),
                })
                .register::<TripSaga>()
        })
        .unwrap();
    assert!(crashes.runs() >= 5, "{crashes}");
}

/// The debit and the booking at once: two compensatable methods in a group.
#[saga]
async fn grouped_trip(
    bank: &Bank,
    airline: &Airline,
    order: Order,
) -> Result<String, ServiceError> {
    let fee = airline.quote(&order).await?;
    let (debit, seat) = sagaflow::join!(
        bank.debit(&order.account, order.total),
        airline.book(&order, fee)
    )?;
    Ok(format!("{seat}, debit #{}", debit.id))
}

#[tokio::test]
async fn a_failing_method_member_undoes_its_sibling_method_on_its_receiver() {
    let w = world();
    *w.airline.full.lock().unwrap() = true;
    let err = grouped_trip(&w.bank, &w.airline, order())
        .await
        .unwrap_err();
    assert_eq!(err.failed_step(), "Airline::book");
    assert_eq!(err.undone(), ["Bank::debit"]);
    assert_eq!(
        w.log.entries(),
        [
            "airline: quote 500",
            "bank: debit ada 500",
            "airline: full",
            "bank: refund ada #1 500",
        ]
    );
    assert_eq!(w.bank.balance(), 0);

    // And the other way round: the bank fails, the seat is cancelled.
    let w = world();
    *w.bank.flaky.lock().unwrap() = 3;
    let err = grouped_trip(&w.bank, &w.airline, order())
        .await
        .unwrap_err();
    assert_eq!(err.failed_step(), "Bank::debit");
    assert_eq!(err.undone(), ["Airline::book"]);
    assert_eq!(
        w.log.entries().last().unwrap(),
        "airline: cancel seat for ada"
    );
}
