//! Checks out three orders with the `checkout` saga and relays what they sent.
//!
//! ```text
//! checkout [--memory] [--store FILE] [--redis URL [--prefix P]]
//! ```
//!
//! By default the sagas run durably on a SQLite file in a temporary directory
//! (`--store FILE` for one of your own), and a relay delivers the outbox to a
//! sink that prints each message. With `--redis URL` (built with the `redis`
//! feature) the relay writes them to Redis Streams instead, one stream per
//! destination, named `P<destination>` (`--prefix`, default `checkout:`).
//! With `--memory` the sagas run in memory on a runner whose sink prints.
//!
//! The first order commits: the warehouse holds its lamp (the TCC step's try)
//! and ships it once the shipment is booked (the confirm); its payment, its
//! audit event and its notice are sent. The second finds the lamp sold out: its
//! try holds nothing, its cancel is an empty one, its payment is refunded, and
//! the payments service hears of the payment and of the refund, while nobody
//! hears of an order that did not happen. The third order's card is declined: nothing
//! happened, nothing is sent.
//!
//! Run it with `cargo run -p sagaflow-examples --bin checkout`.

use std::path::PathBuf;
use std::process::ExitCode;

use sagaflow::Runner;
use sagaflow::durable::{Durability, Executor, SqliteStore};
use sagaflow::outbox::{Outbox, PrintSink, Relay, RelayConfig, Sink};
use sagaflow_examples::checkout::{Carrier, CheckoutSaga, Order, Payments, Warehouse};

struct Options {
    memory: bool,
    store: Option<PathBuf>,
    redis: Option<String>,
    prefix: String,
}

fn parse() -> Result<Options, String> {
    let mut options = Options {
        memory: false,
        store: None,
        redis: None,
        prefix: "checkout:".to_owned(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--memory" => options.memory = true,
            "--store" => options.store = Some(PathBuf::from(value("--store")?)),
            "--redis" => options.redis = Some(value("--redis")?),
            "--prefix" => options.prefix = value("--prefix")?,
            other => {
                return Err(format!(
                    "unknown argument `{other}`; usage: checkout [--memory] [--store FILE] [--redis URL [--prefix P]]"
                ));
            }
        }
    }
    if options.memory && (options.store.is_some() || options.redis.is_some()) {
        return Err(
            "--memory runs without a store or a relay: leave out --store and --redis".into(),
        );
    }
    Ok(options)
}

/// The three orders, and the services that make them go as told above.
fn orders() -> [Order; 3] {
    [
        Order::new("o-1", "lamp", 1, 4_900),
        Order::new("o-2", "lamp", 1, 4_900),
        Order::new("o-3", "chair", 1, 12_000),
    ]
}

fn tell(order: &Order, outcome: Result<String, String>) {
    match outcome {
        Ok(tracking) => println!("{}: committed, shipped as {tracking}", order.id),
        Err(e) => println!("{}: not checked out: {e}", order.id),
    }
}

async fn in_memory() -> Result<(), String> {
    let runner = Runner::new().with_sink(PrintSink);
    let (payments, declining) = (Payments::new(), Payments::declining());
    let warehouse = Warehouse::with_stock("lamp", 1);
    let carrier = Carrier::new();
    for (n, order) in orders().into_iter().enumerate() {
        println!("-- {} --", order.id);
        let payments = if n == 2 { &declining } else { &payments };
        let saga = CheckoutSaga::new(payments, &warehouse, &carrier, order.clone());
        let outcome = runner.run(saga).await;
        tell(
            &order,
            outcome.map(|r| r.tracking).map_err(|e| e.to_string()),
        );
    }
    Ok(())
}

async fn durable(store: SqliteStore, sink: impl Sink) -> Result<(), String> {
    let executor = Executor::new(store.clone())
        .resource(Warehouse::with_stock("lamp", 1))
        .resource(Carrier::new())
        .resource(Payments::new())
        .register::<CheckoutSaga>();
    let recovered = executor.recover().await.map_err(|e| e.to_string())?;
    if !recovered.sagas.is_empty() {
        println!("{recovered}");
    }
    let r = executor.resources();
    let get = |e: sagaflow::durable::MissingResource| e.to_string();
    let (warehouse, carrier) = (
        r.get::<Warehouse>().map_err(get)?,
        r.get::<Carrier>().map_err(get)?,
    );
    let payments = r.get::<Payments>().map_err(get)?;
    let declining = Payments::declining();
    for (n, order) in orders().into_iter().enumerate() {
        let payments = if n == 2 { &declining } else { payments };
        let saga = CheckoutSaga::new(payments, warehouse, carrier, order.clone());
        let started = executor.start(saga).await.map_err(|e| e.to_string())?;
        let outcome = started.outcome().await.map_err(|e| e.to_string())?;
        tell(
            &order,
            outcome.map(|r| r.tracking).map_err(|e| e.to_string()),
        );
    }
    let pending = store
        .messages(sagaflow::outbox::MessageFilter {
            state: Some(sagaflow::outbox::MessageState::Pending),
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "\nThe outbox holds {} message(s); the relay delivers them:",
        pending.len()
    );
    let relay = Relay::new(store, sink, RelayConfig::default());
    let report = relay.run_once().await;
    println!(
        "\nRelayed: {} delivered, {} to retry, {} dead.",
        report.delivered, report.retried, report.dead
    );
    match report.errors.front() {
        None => Ok(()),
        Some(e) => Err(format!("the relay failed: {e}")),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let options = match parse() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("checkout: {e}");
            return ExitCode::from(2);
        }
    };
    let result = if options.memory {
        in_memory().await
    } else {
        run_durable(options).await
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("checkout: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_durable(options: Options) -> Result<(), String> {
    let dir = tempdir()?;
    let path = options.store.unwrap_or_else(|| dir.join("checkout.db"));
    let store = SqliteStore::open(&path, Durability::Full).map_err(|e| e.to_string())?;
    println!("Store: {}", path.display());
    let Some(url) = options.redis else {
        let result = durable(store, PrintSink).await;
        let _ = std::fs::remove_dir_all(&dir);
        return result;
    };
    let result = redis(store, &url, &options.prefix).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[cfg(feature = "redis")]
async fn redis(store: SqliteStore, url: &str, prefix: &str) -> Result<(), String> {
    use sagaflow::outbox::{RedisConfig, RedisStreams};
    let config = RedisConfig::new(url).prefix(prefix);
    println!(
        "Relaying to Redis at {}, streams `{prefix}<destination>`",
        config.display_url()
    );
    let sink = RedisStreams::connect(config)
        .await
        .map_err(|e| e.to_string())?;
    durable(store, sink).await
}

#[cfg(not(feature = "redis"))]
async fn redis(_: SqliteStore, _: &str, _: &str) -> Result<(), String> {
    Err("this build has no Redis sink: build with `--features redis`".into())
}

/// A fresh directory for the default store, so that each run starts empty.
fn tempdir() -> Result<PathBuf, String> {
    let dir =
        std::env::temp_dir().join(format!("sagaflow-checkout-{}", sagaflow::SagaId::random()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}
