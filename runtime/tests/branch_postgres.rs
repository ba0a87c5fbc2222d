//! Branches on PostgreSQL: the arm taken is committed with the next intent,
//! and recovery on another executor follows it, whatever the condition says.
#![cfg(feature = "postgres")]

mod support;

use std::sync::Mutex;

use sagaflow::durable::{Entry, Executor, PgConfig, PgStore, RecoveredOutcome, SagaStatus, Store};
use sagaflow::{saga, step};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    express: bool,
}

#[derive(Default)]
struct Shop {
    calls: Mutex<Vec<&'static str>>,
}

impl Shop {
    fn log(&self, what: &'static str) {
        self.calls.lock().unwrap().push(what);
    }
}

#[step(compensate = release)]
async fn reserve(shop: &Shop, _order: &Order) -> Result<u32, String> {
    shop.log("reserve");
    Ok(1)
}
async fn release(shop: &Shop, _order: &Order, _r: &u32) -> Result<(), String> {
    shop.log("release");
    Ok(())
}

#[step(compensate = cancel_express)]
async fn ship_express(shop: &Shop, _order: &Order) -> Result<u32, String> {
    shop.log("ship_express");
    Ok(2)
}
async fn cancel_express(shop: &Shop, _order: &Order, _s: &u32) -> Result<(), String> {
    shop.log("cancel_express");
    Ok(())
}

#[step(compensate = cancel_ground)]
async fn ship_ground(shop: &Shop, _order: &Order) -> Result<u32, String> {
    shop.log("ship_ground");
    Ok(3)
}
async fn cancel_ground(shop: &Shop, _order: &Order, _s: &u32) -> Result<(), String> {
    shop.log("cancel_ground");
    Ok(())
}

#[saga]
async fn ship(shop: &Shop, order: Order) -> Result<u32, String> {
    let _ = reserve(shop, &order).await?;
    let shipment = if order.express {
        ship_express(shop, &order).await?
    } else {
        ship_ground(shop, &order).await?
    };
    Ok(shipment)
}

async fn store(test: &str) -> Option<PgStore> {
    let url = support::pg_url()?;
    let config = PgConfig::new(url).schema(support::schema_for(test));
    Some(
        PgStore::connect_with(config)
            .await
            .expect("connect to SAGAFLOW_PG_URL"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_arm_is_committed_with_its_first_intent_and_followed_on_recovery() {
    let Some(store) = store("branch_arm_followed").await else {
        return;
    };
    let executor = Executor::new(store.clone())
        .resource(Shop::default())
        .register::<ShipSaga>();
    let shop = Shop::default();
    let started = executor
        .start(ShipSaga::new(&shop, Order { express: false }))
        .await
        .unwrap();
    let id = started.id();
    assert_eq!(started.outcome().await.unwrap().unwrap(), 3);
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.journal[2], Entry::Arm { branch: 0, arm: 1 });
    assert_eq!(
        record.journal[3],
        Entry::StepStarted {
            index: 2,
            attempt: 1
        }
    );

    // A saga whose journal says "express" while its input says ground, cut
    // short in the express arm: recovery goes on there.
    let fingerprint = record.fingerprint.clone();
    let crashed = sagaflow::SagaId::time_ordered();
    store
        .create(sagaflow::durable::NewSaga {
            id: crashed,
            saga_type: "ship".into(),
            fingerprint,
            input: br#"{"order":{"express":false}}"#.to_vec(),
        })
        .await
        .unwrap();
    store
        .append_all(
            crashed,
            vec![
                Entry::StepStarted {
                    index: 0,
                    attempt: 1,
                },
                Entry::StepSucceeded {
                    index: 0,
                    output: b"1".to_vec(),
                },
                Entry::Arm { branch: 0, arm: 0 },
                Entry::StepStarted {
                    index: 1,
                    attempt: 1,
                },
            ],
        )
        .await
        .unwrap();
    let report = executor.recover().await.unwrap();
    let recovered = report.sagas.iter().find(|s| s.id == crashed).unwrap();
    assert_eq!(recovered.outcome, RecoveredOutcome::Committed);
    let used = executor.resources().get::<Shop>().unwrap();
    assert_eq!(*used.calls.lock().unwrap(), ["ship_express"]);
    let record = store.get(crashed).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Committed);
}
