//! The checkout's stock as a TCC step: shipped once the saga commits, put back
//! when a later step fails, an empty cancel when the try found no stock, and
//! the warehouse's barrier against repeated and late phases.

use sagaflow::outbox::MemorySink;
use sagaflow::{Phase, Runner, SagaError};
use sagaflow_examples::checkout::{
    Carrier, CheckoutError, CheckoutSaga, Order, Payments, Warehouse,
};

fn runner() -> Runner {
    Runner::new().with_sink(MemorySink::new())
}

fn order(quantity: u32) -> Order {
    Order::new("o-1", "lamp", quantity, 4_900)
}

/// Checks out 3 lamps, which must fail.
async fn rolled_back(
    payments: &Payments,
    warehouse: &Warehouse,
    carrier: &Carrier,
) -> SagaError<CheckoutError> {
    let saga = CheckoutSaga::new(payments, warehouse, carrier, order(3));
    match runner().run(saga).await {
        Ok(receipt) => panic!("the checkout committed: {receipt:?}"),
        Err(error) => error,
    }
}

fn held(quantity: u32, state: &str) -> Vec<(String, u32, String)> {
    vec![("lamp".to_owned(), quantity, state.to_owned())]
}

#[tokio::test]
async fn a_committed_checkout_ships_its_held_stock() {
    let (payments, carrier) = (Payments::new(), Carrier::new());
    let warehouse = Warehouse::with_stock("lamp", 10);
    let (result, report) = runner()
        .run_reported(CheckoutSaga::new(&payments, &warehouse, &carrier, order(3)))
        .await;
    result.unwrap();
    assert_eq!(warehouse.left("lamp"), 7);
    assert_eq!(warehouse.holds(), held(3, "shipped"));
    let confirm = report.find("reserve_stock", Phase::Confirm).unwrap();
    assert_eq!(confirm.function(), "ship_stock");
    assert!(report.find("reserve_stock", Phase::Cancel).is_none());
}

#[tokio::test]
async fn a_carrier_that_is_down_puts_the_stock_back_and_refunds() {
    let payments = Payments::new();
    let warehouse = Warehouse::with_stock("lamp", 10);
    let error = rolled_back(&payments, &warehouse, &Carrier::down()).await;
    assert_eq!(error.failed_step(), "book_shipment");
    // The cancel first, then the refund: the reverse of the order they ran in.
    assert_eq!(error.undone(), ["reserve_stock", "take_payment"]);
    assert_eq!(warehouse.left("lamp"), 10);
    assert_eq!(warehouse.holds(), held(3, "released"));
    assert!(payments.kept().is_empty());
    assert_eq!(payments.refunded().len(), 1);
}

#[tokio::test]
async fn a_try_that_found_no_stock_is_cancelled_empty() {
    let payments = Payments::new();
    let warehouse = Warehouse::with_stock("lamp", 2);
    let error = rolled_back(&payments, &warehouse, &Carrier::new()).await;
    assert_eq!(error.failed_step(), "reserve_stock");
    assert!(
        matches!(
            error.cause(),
            Some(CheckoutError::OutOfStock { left: 2, .. })
        ),
        "{error}"
    );
    // Its cancel ran with `None` and the barrier found no try: nothing moved.
    assert_eq!(error.undone(), ["reserve_stock", "take_payment"]);
    assert_eq!(warehouse.left("lamp"), 2);
    assert!(warehouse.holds().is_empty());
    assert!(payments.kept().is_empty());
}

#[test]
fn a_repeated_phase_does_nothing_twice() {
    let warehouse = Warehouse::with_stock("lamp", 10);
    warehouse.hold("k-1", "lamp", 3).unwrap();
    warehouse.hold("k-1", "lamp", 3).unwrap();
    assert_eq!(warehouse.left("lamp"), 7);
    warehouse.release("k-1").unwrap();
    warehouse.release("k-1").unwrap();
    assert_eq!(warehouse.left("lamp"), 10);
    assert_eq!(warehouse.holds(), held(3, "released"));
}

#[test]
fn a_try_that_lands_after_its_cancel_holds_nothing() {
    let warehouse = Warehouse::with_stock("lamp", 10);
    // The cancel came first (the try timed out on the way): an empty cancel.
    warehouse.release("k-1").unwrap();
    // The late try is refused by the barrier, so nothing hangs held.
    warehouse.hold("k-1", "lamp", 3).unwrap();
    assert_eq!(warehouse.left("lamp"), 10);
    assert!(warehouse.holds().is_empty());
}
