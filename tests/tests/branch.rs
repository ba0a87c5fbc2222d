//! Branches in a saga body: `if` and `match` over saga data, whose arms are
//! bodies of their own; compensation undoes the path actually taken.

use std::fmt;
use std::sync::Mutex;

use sagaflow::{saga, step};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Oops(String);

impl fmt::Display for Oops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the services saw, in order, and the steps that fail.
#[derive(Default)]
struct World {
    log: Mutex<Vec<String>>,
    failing: Vec<&'static str>,
}

impl World {
    fn failing(steps: &[&'static str]) -> Self {
        World {
            failing: steps.to_vec(),
            ..World::default()
        }
    }
    fn log(&self, entry: impl Into<String>) {
        self.log.lock().unwrap().push(entry.into());
    }
    fn entries(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
    fn run(&self, step: &'static str) -> Result<(), Oops> {
        if self.failing.contains(&step) {
            self.log(format!("{step} failed"));
            return Err(Oops(format!("{step} refused")));
        }
        self.log(step);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    Eu,
    Us,
    Other,
}

#[derive(Debug, Clone)]
pub struct Order {
    pub express: bool,
    pub region: Region,
    pub amount: u64,
}

#[step(compensate = release)]
async fn reserve(world: &World, order: &Order) -> Result<u64, Oops> {
    world.run("reserve")?;
    Ok(order.amount)
}
async fn release(world: &World, _order: &Order, _r: &u64) -> Result<(), Oops> {
    world.log("undo reserve");
    Ok(())
}

#[step(compensate = cancel_express)]
async fn ship_express(world: &World, order: &Order) -> Result<String, Oops> {
    world.run("ship_express")?;
    Ok(format!("express {}", order.amount))
}
async fn cancel_express(world: &World, _order: &Order, s: &String) -> Result<(), Oops> {
    world.log(format!("undo ship_express ({s})"));
    Ok(())
}

#[step(read_only)]
async fn quote_ground(world: &World, order: &Order) -> Result<u64, Oops> {
    world.run("quote_ground")?;
    Ok(order.amount / 10)
}

#[step(compensate = cancel_ground)]
async fn ship_ground(world: &World, _order: &Order, quote: &u64) -> Result<String, Oops> {
    world.run("ship_ground")?;
    Ok(format!("ground {quote}"))
}
async fn cancel_ground(world: &World, _order: &Order, quote: &u64, s: &String) -> Result<(), Oops> {
    world.log(format!("undo ship_ground ({s}, quote {quote})"));
    Ok(())
}

#[step(compensate = refund_vat)]
async fn charge_vat(world: &World, order: &Order) -> Result<u64, Oops> {
    world.run("charge_vat")?;
    Ok(order.amount / 5)
}
async fn refund_vat(world: &World, _order: &Order, _v: &u64) -> Result<(), Oops> {
    world.log("undo charge_vat");
    Ok(())
}

#[step(compensate = refund_sales_tax)]
async fn charge_sales_tax(world: &World, order: &Order) -> Result<u64, Oops> {
    world.run("charge_sales_tax")?;
    Ok(order.amount / 20)
}
async fn refund_sales_tax(world: &World, _order: &Order, _v: &u64) -> Result<(), Oops> {
    world.log("undo charge_sales_tax");
    Ok(())
}

#[step(compensate = uncharge)]
async fn charge(world: &World, amount: u64) -> Result<u64, Oops> {
    world.run("charge")?;
    Ok(amount)
}
async fn uncharge(world: &World, _amount: u64, _c: &u64) -> Result<(), Oops> {
    world.log("undo charge");
    Ok(())
}

#[saga]
async fn ship_order(world: &World, order: Order) -> Result<String, Oops> {
    let reserved = reserve(world, &order).await?;
    let shipment = if order.express {
        ship_express(world, &order).await?
    } else {
        let quote = quote_ground(world, &order).await?;
        ship_ground(world, &order, &quote).await?
    };
    match order.region {
        Region::Eu => {
            charge_vat(world, &order).await?;
        }
        Region::Us => {
            charge_sales_tax(world, &order).await?;
        }
        _ => {}
    }
    let total: u64 = reserved + 1;
    charge(world, total).await?;
    Ok(shipment)
}

fn order(express: bool, region: Region) -> Order {
    Order {
        express,
        region,
        amount: 100,
    }
}

#[tokio::test]
async fn each_arm_runs_its_own_steps() {
    let world = World::default();
    let out = ship_order(&world, order(true, Region::Eu)).await.unwrap();
    assert_eq!(out, "express 100");
    assert_eq!(
        world.entries(),
        ["reserve", "ship_express", "charge_vat", "charge"]
    );

    let world = World::default();
    let out = ship_order(&world, order(false, Region::Us)).await.unwrap();
    assert_eq!(out, "ground 10");
    assert_eq!(
        world.entries(),
        [
            "reserve",
            "quote_ground",
            "ship_ground",
            "charge_sales_tax",
            "charge"
        ]
    );

    let world = World::default();
    ship_order(&world, order(false, Region::Other))
        .await
        .unwrap();
    assert_eq!(
        world.entries(),
        ["reserve", "quote_ground", "ship_ground", "charge"]
    );
}

#[tokio::test]
async fn a_failure_after_the_branches_undoes_the_arms_taken() {
    let world = World::failing(&["charge"]);
    let err = ship_order(&world, order(false, Region::Eu))
        .await
        .unwrap_err();
    assert_eq!(err.failed_step(), "charge");
    assert_eq!(
        world.entries(),
        [
            "reserve",
            "quote_ground",
            "ship_ground",
            "charge_vat",
            "charge failed",
            "undo charge_vat",
            "undo ship_ground (ground 10, quote 10)",
            "undo reserve",
        ]
    );
    assert_eq!(err.undone(), ["charge_vat", "ship_ground", "reserve"]);
    // The report's rows follow the path taken, by each step's own index.
    let ran: Vec<(u32, &str)> = err
        .report()
        .steps()
        .map(|r| (r.index(), r.step()))
        .collect();
    assert_eq!(
        ran,
        [
            (0, "reserve"),
            (2, "quote_ground"),
            (3, "ship_ground"),
            (4, "charge_vat"),
            (6, "charge")
        ]
    );

    let world = World::failing(&["charge"]);
    ship_order(&world, order(true, Region::Other))
        .await
        .unwrap_err();
    assert_eq!(
        world.entries(),
        [
            "reserve",
            "ship_express",
            "charge failed",
            "undo ship_express (express 100)",
            "undo reserve",
        ]
    );
}

#[tokio::test]
async fn a_failure_inside_an_arm_undoes_what_came_before_the_branch() {
    // The first step of the second arm turns back to the step before the
    // branch, not to the first arm's last step.
    let world = World::failing(&["ship_ground"]);
    let err = ship_order(&world, order(false, Region::Eu))
        .await
        .unwrap_err();
    assert_eq!(err.failed_step(), "ship_ground");
    assert_eq!(
        world.entries(),
        [
            "reserve",
            "quote_ground",
            "ship_ground failed",
            "undo reserve"
        ]
    );

    let world = World::failing(&["charge_sales_tax"]);
    ship_order(&world, order(true, Region::Us))
        .await
        .unwrap_err();
    assert_eq!(
        world.entries(),
        [
            "reserve",
            "ship_express",
            "charge_sales_tax failed",
            "undo ship_express (express 100)",
            "undo reserve",
        ]
    );
}

// Nested branches, an arm whose value is a plain expression, an `if` without
// `else`, and a branch first in the body.
#[saga]
async fn nested(world: &World, order: Order, level: u32) -> Result<u64, Oops> {
    let fee: u64 = if level > 1 {
        if order.express {
            let _ = ship_express(world, &order).await?;
            charge(world, 5).await?
        } else {
            7
        }
    } else {
        let c = charge_vat(world, &order).await?;
        c + 1
    };
    if level == 0 {
        charge_sales_tax(world, &order).await?;
    }
    reserve(world, &order).await?;
    Ok(fee)
}

#[tokio::test]
async fn nested_branches_and_plain_values() {
    let world = World::default();
    assert_eq!(nested(&world, order(true, Region::Eu), 2).await.unwrap(), 5);
    assert_eq!(world.entries(), ["ship_express", "charge", "reserve"]);

    let world = World::default();
    assert_eq!(
        nested(&world, order(false, Region::Eu), 2).await.unwrap(),
        7
    );
    assert_eq!(world.entries(), ["reserve"]);

    let world = World::default();
    assert_eq!(
        nested(&world, order(false, Region::Eu), 0).await.unwrap(),
        21
    );
    assert_eq!(
        world.entries(),
        ["charge_vat", "charge_sales_tax", "reserve"]
    );

    let world = World::failing(&["reserve"]);
    nested(&world, order(true, Region::Eu), 3)
        .await
        .unwrap_err();
    assert_eq!(
        world.entries(),
        [
            "ship_express",
            "charge",
            "reserve failed",
            "undo charge",
            "undo ship_express (express 100)",
        ]
    );

    // No step ran before: nothing to undo.
    let world = World::failing(&["reserve"]);
    let err = nested(&world, order(false, Region::Eu), 2)
        .await
        .unwrap_err();
    assert_eq!(err.failed_step(), "reserve");
    assert_eq!(world.entries(), ["reserve failed"]);

    let world = World::failing(&["reserve"]);
    nested(&world, order(false, Region::Eu), 0)
        .await
        .unwrap_err();
    assert_eq!(
        world.entries(),
        [
            "charge_vat",
            "charge_sales_tax",
            "reserve failed",
            "undo charge_sales_tax",
            "undo charge_vat",
        ]
    );
}

#[test]
fn the_graph_draws_a_diamond_per_branch_with_the_arms_side_by_side() {
    let graph = ShipOrderSaga::graph();
    assert_eq!(graph.branches().len(), 2);
    let mermaid = graph.to_mermaid();
    for line in [
        "b0{\"order.express\"}",
        "b1{\"match order.region\"}",
        "s0 --> b0",
        "b0 -->|\"true\"| s1",
        "b0 -->|\"false\"| s2",
        "s2 --> s3",
        "s1 --> b1",
        "s3 --> b1",
        "b1 -->|\"Region#58;#58;Eu\"| s4",
        "b1 -->|\"Region#58;#58;Us\"| s5",
        // The arm without steps goes straight on.
        "b1 -->|\"_\"| s6",
        "s4 --> s6",
        // A failure after the branches undoes the arm that ran, whichever it was.
        "s6 -.->|fails| c4",
        "s6 -.->|fails| c5",
        "s6 -.->|fails| c1",
        "s6 -.->|fails| c3",
        // The second arm's first step turns back to before the branch.
        "s2 -.->|fails| c0",
        "c3 -.-> c0",
        "c1 -.-> c0",
    ] {
        assert!(mermaid.contains(line), "{line}:\n{mermaid}");
    }
    assert!(!mermaid.contains("s1 --> s2"), "{mermaid}");
    assert!(!mermaid.contains("c3 -.-> c1"), "{mermaid}");
    // `SAGAFLOW_DUMP_GRAPHS=dir` writes the texts, for Mermaid's and Graphviz's
    // own parsers (`node tests/mermaid/check.mjs dir/branch.mmd`, `dot dir/branch.dot`).
    if let Some(dir) = std::env::var_os("SAGAFLOW_DUMP_GRAPHS") {
        let dir = std::path::Path::new(&dir);
        std::fs::write(dir.join("branch.mmd"), &mermaid).unwrap();
        std::fs::write(dir.join("branch.dot"), graph.to_dot()).unwrap();
    }
    let dot = graph.to_dot();
    assert!(
        dot.contains("b0 [label=\"order.express\", shape=diamond];"),
        "{dot}"
    );
    assert!(dot.contains("b0 -> s2 [label=\"false\"];"), "{dot}");
    let svg = graph.to_svg();
    assert!(svg.contains(">order.express</text>"), "{svg}");
    assert!(svg.contains(">match order.region</text>"), "{svg}");
    // Each branch a fork: every arm labelled (the one without steps too),
    // a join dot per branch, no `or` between arms in one row.
    assert!(svg.contains(">_</text>"), "{svg}");
    assert_eq!(svg.matches("<circle ").count(), 2, "{svg}");
    assert!(!svg.contains(">or</text>"), "{svg}");
    assert!(!svg.contains("\n\n"));
    assert!(
        graph
            .to_string()
            .contains("branch on order.express: true → 2, false → 3-4"),
        "{graph}"
    );
}

// A group inside an arm, and a group after a branch.
#[saga]
async fn grouped(world: &World, order: Order) -> Result<u64, Oops> {
    let _ = reserve(world, &order).await?;
    if order.express {
        let (_vat, _tax) =
            sagaflow::join!(charge_vat(world, &order), charge_sales_tax(world, &order))?;
    } else {
        let _ = ship_express(world, &order).await?;
    }
    let (a, _b) = sagaflow::join!(charge(world, 3), quote_ground(world, &order))?;
    Ok(a)
}

#[tokio::test]
async fn groups_inside_arms_and_after_branches_are_undone_along_the_path() {
    let world = World::failing(&["quote_ground"]);
    grouped(&world, order(true, Region::Eu)).await.unwrap_err();
    let mut log = world.entries();
    // The group's members run at once: their order in the log may vary.
    log[1..3].sort();
    log[3..5].sort();
    log[6..8].sort();
    assert_eq!(
        log,
        [
            "reserve",
            "charge_sales_tax",
            "charge_vat",
            "charge",
            "quote_ground failed",
            "undo charge",
            "undo charge_sales_tax",
            "undo charge_vat",
            "undo reserve",
        ]
    );

    let world = World::failing(&["charge_vat"]);
    grouped(&world, order(true, Region::Eu)).await.unwrap_err();
    let log = world.entries();
    assert!(log.contains(&"undo charge_sales_tax".to_owned()), "{log:?}");
    assert_eq!(log.last().unwrap(), "undo reserve");
    assert!(!log.iter().any(|l| l.contains("ship_express")), "{log:?}");

    let world = World::failing(&["quote_ground"]);
    grouped(&world, order(false, Region::Eu)).await.unwrap_err();
    let mut log = world.entries();
    log[2..4].sort();
    assert_eq!(
        log,
        [
            "reserve",
            "ship_express",
            "charge",
            "quote_ground failed",
            "undo charge",
            "undo ship_express (express 100)",
            "undo reserve",
        ]
    );
}
