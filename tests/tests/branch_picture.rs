//! The README's picture of a saga with branches: the guide's `ship_order`,
//! drawn by the renderer today (`SAGAFLOW_BLESS=1` writes it again).
#![allow(dead_code, unused_variables)]
// A compensation takes `&Output`, here `&String`.
#![allow(clippy::ptr_arg)]

use sagaflow::{saga, step};
pub struct Carrier;
pub struct Tax;
#[derive(Clone, Copy, PartialEq)]
pub enum Region {
    Eu,
    Us,
    Other,
}
pub struct Order {
    pub express: bool,
    pub region: Region,
}
#[step(compensate = cancel_express)]
async fn ship_express(carrier: &Carrier, order: &Order) -> Result<String, String> {
    Ok("express".into())
}
async fn cancel_express(carrier: &Carrier, order: &Order, s: &String) -> Result<(), String> {
    Ok(())
}
#[step(read_only)]
async fn quote_ground(carrier: &Carrier, order: &Order) -> Result<u64, String> {
    Ok(7)
}
#[step(compensate = cancel_ground)]
async fn ship_ground(carrier: &Carrier, order: &Order, quote: &u64) -> Result<String, String> {
    Ok(format!("ground {quote}"))
}
async fn cancel_ground(
    carrier: &Carrier,
    order: &Order,
    quote: &u64,
    s: &String,
) -> Result<(), String> {
    Ok(())
}
#[step(compensate = refund_vat)]
async fn charge_vat(tax: &Tax, order: &Order) -> Result<u64, String> {
    Ok(20)
}
async fn refund_vat(tax: &Tax, order: &Order, v: &u64) -> Result<(), String> {
    Ok(())
}
#[step(compensate = refund_sales_tax)]
async fn charge_sales_tax(tax: &Tax, order: &Order) -> Result<u64, String> {
    Ok(8)
}
async fn refund_sales_tax(tax: &Tax, order: &Order, v: &u64) -> Result<(), String> {
    Ok(())
}
#[saga]
async fn ship_order(carrier: &Carrier, tax: &Tax, order: Order) -> Result<String, String> {
    let shipment = if order.express {
        ship_express(carrier, &order).await?
    } else {
        let quote = quote_ground(carrier, &order).await?;
        ship_ground(carrier, &order, &quote).await?
    };
    match order.region {
        Region::Eu => {
            charge_vat(tax, &order).await?;
        }
        Region::Us => {
            charge_sales_tax(tax, &order).await?;
        }
        _ => {}
    }
    Ok(shipment)
}

#[test]
fn the_readme_picture_of_branches_is_up_to_date() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/branches.svg");
    let drawn = ShipOrderSaga::graph().to_svg_standalone();
    if std::env::var_os("SAGAFLOW_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(path, &drawn).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == drawn,
        "docs/branches.svg is stale: write it with `SAGAFLOW_BLESS=1 cargo test -p sagaflow-tests --test branch_picture`"
    );
}
