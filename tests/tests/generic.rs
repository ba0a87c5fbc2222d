//! Generic sagas: a saga over trait-bounded services, run with two
//! implementations (a test double that fails, one that works), in memory and
//! durably as a registered concrete instance.

use std::sync::{Arc, Mutex};

use sagaflow::durable::Executor;
use sagaflow::testing::SagaTest;
use sagaflow::{Saga, saga, step};
use serde::{Deserialize, Serialize};

use sagaflow_tests::Refused as ShopError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Order {
    item: String,
    cents: u64,
}

/// The payment service, injected so that tests can swap it.
trait Payments: Send + Sync + 'static {
    fn charge(&self, cents: u64) -> Result<u32, String>;
    fn refund(&self, receipt: u32);
}

/// The stock service, reached through `&dyn Stock` by a free step.
trait Stock: Send + Sync {
    fn reserve(&self, item: &str) -> Result<(), String>;
}

#[derive(Clone, Default)]
struct Ledger(Arc<Mutex<Vec<String>>>);

impl Ledger {
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
    fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

#[derive(Clone)]
struct Card(Ledger);

impl Payments for Card {
    fn charge(&self, cents: u64) -> Result<u32, String> {
        self.0.push(format!("card: charge {cents}"));
        Ok(42)
    }
    fn refund(&self, receipt: u32) {
        self.0.push(format!("card: refund #{receipt}"));
    }
}

/// A test double that records and never charges anything.
#[derive(Clone)]
struct FakePayments(Ledger);

impl Payments for FakePayments {
    fn charge(&self, cents: u64) -> Result<u32, String> {
        self.0.push(format!("fake: charge {cents}"));
        Ok(1)
    }
    fn refund(&self, receipt: u32) {
        self.0.push(format!("fake: refund #{receipt}"));
    }
}

#[derive(Clone)]
struct Shelf {
    ledger: Ledger,
    empty: bool,
}

impl Stock for Shelf {
    fn reserve(&self, item: &str) -> Result<(), String> {
        if self.empty {
            return Err(format!("no {item} left"));
        }
        self.ledger.push(format!("stock: reserve {item}"));
        Ok(())
    }
}

/// The saga's view of any `Payments`: its steps, declared once.
struct Payer<P> {
    payments: P,
}

#[sagaflow::steps]
impl<P: Payments> Payer<P> {
    #[step(compensate = Self::refund)]
    async fn charge(&self, cents: u64) -> Result<u32, ShopError> {
        self.payments.charge(cents).map_err(ShopError)
    }

    async fn refund(&self, _cents: u64, receipt: &u32) -> Result<(), ShopError> {
        self.payments.refund(*receipt);
        Ok(())
    }
}

#[step(read_only)]
async fn reserve(stock: &dyn Stock, order: &Order) -> Result<(), ShopError> {
    stock.reserve(&order.item).map_err(ShopError)
}

#[step(read_only)]
async fn price(order: &Order) -> Result<u64, ShopError> {
    Ok(order.cents)
}

#[saga]
async fn checkout<P: Payments, S: Stock + 'static>(
    payer: &Payer<P>,
    stock: &S,
    order: Order,
) -> Result<u32, ShopError> {
    let cents = price(&order).await?;
    let receipt = payer.charge(cents).await?;
    // A generic resource meets a `&dyn` parameter through an explicit cast.
    reserve(stock as &dyn Stock, &order).await?;
    Ok(receipt)
}

fn order() -> Order {
    Order {
        item: "kettle".into(),
        cents: 2_500,
    }
}

#[tokio::test]
async fn one_generic_saga_runs_over_either_implementation() {
    let ledger = Ledger::default();
    let shelf = Shelf {
        ledger: ledger.clone(),
        empty: false,
    };
    let card = Payer {
        payments: Card(ledger.clone()),
    };
    assert_eq!(checkout(&card, &shelf, order()).await.unwrap(), 42);
    let fake = Payer {
        payments: FakePayments(ledger.clone()),
    };
    assert_eq!(checkout(&fake, &shelf, order()).await.unwrap(), 1);
    assert_eq!(
        ledger.entries(),
        [
            "card: charge 2500",
            "stock: reserve kettle",
            "fake: charge 2500",
            "stock: reserve kettle"
        ]
    );
    let names: Vec<&str> = <CheckoutSaga<FakePayments, Shelf> as Saga>::STEPS
        .iter()
        .map(|s| s.name())
        .collect();
    assert_eq!(names, ["price", "Payer::charge", "reserve"]);
}

#[tokio::test]
async fn a_generic_saga_compensates_through_the_double() {
    let ledger = Ledger::default();
    let shelf = Shelf {
        ledger: ledger.clone(),
        empty: true,
    };
    let fake = Payer {
        payments: FakePayments(ledger.clone()),
    };
    let err = checkout(&fake, &shelf, order()).await.unwrap_err();
    assert_eq!(err.failed_step(), "reserve");
    assert_eq!(err.cause().unwrap().0, "no kettle left");
    assert_eq!(ledger.entries(), ["fake: charge 2500", "fake: refund #1"]);
}

#[test]
fn a_registered_instance_of_a_generic_saga_survives_every_crash() {
    let ledger = Ledger::default();
    let shelf = Shelf {
        ledger: ledger.clone(),
        empty: false,
    };
    let fake = Payer {
        payments: FakePayments(ledger.clone()),
    };
    let mut test = SagaTest::new(|| {
        ledger.clear();
        CheckoutSaga::new(&fake, &shelf, order())
    });
    let crashes = test
        .crash_sweep(|store| {
            Executor::new(store)
                .resource(Payer {
                    payments: FakePayments(Ledger::default()),
                })
                .resource(shelf.clone())
                .register::<CheckoutSaga<FakePayments, Shelf>>()
        })
        .unwrap();
    assert!(crashes.runs() >= 4, "{crashes}");
}

// A generic saga with a branch: the arms value's enum takes the saga's
// type parameters too.
#[saga]
async fn checkout_maybe<P: Payments, S: Stock + 'static>(
    payer: &Payer<P>,
    stock: &S,
    order: Order,
) -> Result<u32, ShopError> {
    let cents = price(&order).await?;
    let receipt: u32 = if order.cents > 1_000 {
        payer.charge(cents).await?
    } else {
        0
    };
    reserve(stock as &dyn Stock, &order).await?;
    Ok(receipt)
}

#[tokio::test]
async fn a_generic_saga_with_a_branch_takes_and_undoes_its_arm() {
    let ledger = Ledger::default();
    let card = Payer {
        payments: Card(ledger.clone()),
    };
    let shelf = Shelf {
        ledger: ledger.clone(),
        empty: true,
    };
    checkout_maybe(&card, &shelf, order()).await.unwrap_err();
    assert_eq!(
        ledger.entries(),
        ["card: charge 2500", "card: refund #42"],
        "the charge's arm, undone"
    );
    ledger.clear();
    let cheap = Order {
        item: "cup".into(),
        cents: 300,
    };
    checkout_maybe(&card, &shelf, cheap).await.unwrap_err();
    assert!(ledger.entries().is_empty(), "{:?}", ledger.entries());
}
