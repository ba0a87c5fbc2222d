//! The stock reservation as a TCC step: shipped once the card is charged, put
//! back when it is declined, and an empty cancel when the try found no stock.

use sagaflow::{Phase, Runner};
use sagaflow_examples::stock::{Card, Order, ReserveAndChargeSaga, Warehouse, reserve_and_charge};

fn order(quantity: u32) -> Order {
    Order {
        id: "o-1".into(),
        sku: "lamp".into(),
        quantity,
    }
}

#[tokio::test]
async fn a_paid_order_ships_its_held_stock() {
    let warehouse = Warehouse::with_stock("lamp", 10);
    let (result, report) = Runner::new()
        .run_reported(ReserveAndChargeSaga::new(
            &warehouse,
            &Card::new(),
            order(3),
        ))
        .await;
    result.unwrap();
    assert_eq!(warehouse.left("lamp"), 7);
    assert_eq!(
        warehouse.holds(),
        [("lamp".to_owned(), 3, "shipped".to_owned())]
    );
    let confirm = report
        .find("Warehouse::reserve_stock", Phase::Confirm)
        .unwrap();
    assert_eq!(confirm.function(), "ship_stock");
}

#[tokio::test]
async fn a_declined_card_puts_the_stock_back() {
    let warehouse = Warehouse::with_stock("lamp", 10);
    let error = reserve_and_charge(&warehouse, &Card::declining(), order(3))
        .await
        .unwrap_err();
    assert_eq!(error.failed_step(), "Card::charge");
    assert_eq!(error.undone(), ["Warehouse::reserve_stock"]);
    assert_eq!(warehouse.left("lamp"), 10);
    assert_eq!(
        warehouse.holds(),
        [("lamp".to_owned(), 3, "released".to_owned())]
    );
}

#[tokio::test]
async fn a_try_that_found_no_stock_is_cancelled_empty() {
    let warehouse = Warehouse::with_stock("lamp", 2);
    let error = reserve_and_charge(&warehouse, &Card::new(), order(3))
        .await
        .unwrap_err();
    assert_eq!(error.failed_step(), "Warehouse::reserve_stock");
    assert!(error.to_string().contains("only 2 lamp left"), "{error}");
    // Its cancel ran with `None`, and the barrier found no try: nothing moved.
    assert_eq!(error.undone(), ["Warehouse::reserve_stock"]);
    assert_eq!(warehouse.left("lamp"), 2);
    assert!(warehouse.holds().is_empty());
}
