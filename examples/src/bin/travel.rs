//! Books trips with the `travel` saga and tells what happens.
//!
//! # In memory (the default)
//!
//! `cargo run -p sagaflow-examples --bin travel` books three trips: one that goes
//! through (after the mail server is busy once), one whose hotel has no rooms,
//! so the flight is cancelled and the customer refunded, and one whose customer
//! cannot pay, so nothing was done and nothing needs undoing.
//!
//! # Durable
//!
//! ```text
//! cargo run -p sagaflow-examples --bin travel -- --durable travel.db [--to CITY]
//!     [--crash-after STEP | --crash-during STEP]
//! cargo run -p sagaflow-examples --features postgres --bin travel -- \
//!     --postgres postgres://user@127.0.0.1:5432/db [--ledger FILE] [--schema NAME] ...
//! ```
//!
//! keeps every saga in the SQLite file `travel.db`, and the fake bank, airline,
//! hotels and mail server write what they are asked and what they do to
//! `travel.db.ledger`, so that both outlive the process. Each line is
//! `<what> <saga id> <idempotency key> [<JSON details>]`: `call:<effect>` for
//! every request, then the effect itself (`debit`, `flight`, `cancel-flight`, ...)
//! with its result as JSON if the service did it, or `again:<effect>` if the
//! request came again with a key the service had already done (see
//! [`sagaflow_examples::ledger`]). Each run first *recovers*: it lists the trips an earlier run left
//! unfinished, what each had done, and finishes them (forward, or undoing what
//! was done if a step had failed). Then it books one new trip for Ada, to Lisbon
//! or to `--to CITY` (Venice has no hotel rooms: the trip is undone).
//!
//! - `--crash-after STEP` kills the process (`abort`, no clean-up) right after
//!   STEP's result is recorded in `travel.db`. STEP is a step (`Bank::debit_customer`,
//!   `Airline::book_flight`, `Hotels::book_hotel`, `email_itinerary`) or a compensation
//!   (`refund_customer`, `cancel_flight`, `cancel_hotel`; use `--to Venice` to reach
//!   the first two).
//!   Run again without the flag: recovery reads the finished steps' results back
//!   from the file and goes on from the next step.
//! - `--crash-during STEP` kills it after STEP did its work (the service wrote it
//!   in the ledger) but before its result is recorded. Run again: recovery runs
//!   STEP again with the same idempotency key, and the service, recognising the
//!   key, answers with what it did the first time instead of doing it twice (the
//!   ledger shows an `again:` line).
//!
//! ```text
//! cargo run -p sagaflow-examples --bin travel -- --durable /tmp/travel.db --crash-after Airline::book_flight
//! cargo run -p sagaflow-examples --bin travel -- --durable /tmp/travel.db
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use sagaflow::durable::{
    Durability, Entry, Executor, RecoveredOutcome, RecoveryReport, Resources, SagaRecord,
    SagaStatus, SqliteStore, Store,
};
use sagaflow::{Runner, Saga};
use sagaflow_examples::crash::{CrashPlan, CrashingStore, Moment};
use sagaflow_examples::ledger::Ledger;
use sagaflow_examples::travel::{
    Airline, Bank, BookTripSaga, FlightBooking, Hotels, Mailer, Narrator, Trip, euros, format_euros,
};
use sagaflow_examples::words::{in_order, listed};

const USAGE: &str = "usage: travel [--durable FILE | --postgres URL [--ledger FILE] [--schema NAME]] [--to CITY] \
     [--crash-after STEP | --crash-during STEP]";

/// What the command line asked for.
struct Options {
    durable: Option<String>,
    /// `--postgres URL`: the sagas on a PostgreSQL server instead of a file.
    postgres: Option<String>,
    /// Where the services write what they do, with `--postgres`.
    ledger: Option<String>,
    /// The PostgreSQL schema of the store, with `--postgres` (`sagaflow`).
    schema: Option<String>,
    to: String,
    crash: Option<(Moment, String)>,
}

fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        durable: None,
        postgres: None,
        ledger: None,
        schema: None,
        to: "Lisbon".to_owned(),
        crash: None,
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("`{name}` needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--durable" => options.durable = Some(value("--durable")?),
            "--postgres" => options.postgres = Some(value("--postgres")?),
            "--ledger" => options.ledger = Some(value("--ledger")?),
            "--schema" => options.schema = Some(value("--schema")?),
            "--to" => options.to = value("--to")?,
            "--crash-after" => options.crash = Some((Moment::After, value("--crash-after")?)),
            "--crash-during" => options.crash = Some((Moment::Before, value("--crash-during")?)),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    if options.durable.is_some() && options.postgres.is_some() {
        return Err(format!(
            "`--durable FILE` and `--postgres URL` are two stores: give one\n{USAGE}"
        ));
    }
    if options.crash.is_some() && options.durable.is_none() && options.postgres.is_none() {
        return Err(format!(
            "`--crash-after` and `--crash-during` need `--durable FILE` or `--postgres URL`: a crash of an in-memory run loses everything\n{USAGE}"
        ));
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = match (&options.durable, &options.postgres) {
        (None, None) => {
            runtime.block_on(in_memory());
            Ok(())
        }
        (Some(path), _) => runtime.block_on(async {
            let store = SqliteStore::open(path, Durability::Full).map_err(|e| e.to_string())?;
            durable(store, path, &format!("{path}.ledger"), None, &options).await
        }),
        (None, Some(url)) => runtime.block_on(on_postgres(url, &options)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The durable mode with the sagas on PostgreSQL (built with the `postgres`
/// feature of this package).
#[cfg(feature = "postgres")]
async fn on_postgres(url: &str, options: &Options) -> Result<(), String> {
    // A short lease, so that a crashed run's trip is taken up seconds later.
    let lease = Duration::from_secs(3);
    let mut config = sagaflow::durable::PgConfig::new(url).lease(lease);
    if let Some(schema) = &options.schema {
        config = config.schema(schema.clone());
    }
    let store = sagaflow::durable::PgStore::connect_with(config)
        .await
        .map_err(|e| e.to_string())?;
    let ledger = options
        .ledger
        .as_deref()
        .unwrap_or("travel-postgres.ledger");
    let result = durable(store.clone(), &store.server(), ledger, Some(lease), options).await;
    // Hand the leases over at once rather than at their expiry.
    store.close().await.map_err(|e| e.to_string())?;
    result
}

#[cfg(not(feature = "postgres"))]
async fn on_postgres(_url: &str, _options: &Options) -> Result<(), String> {
    Err("this travel was built without PostgreSQL: run it with \
         `cargo run -p sagaflow-examples --features postgres --bin travel -- --postgres URL`"
        .to_owned())
}

async fn in_memory() {
    println!("The saga, as declared:\n{}\n", BookTripSaga::graph());

    let bank = Bank::new()
        .with_account("ada", euros(2_000))
        .with_account("alan", euros(1_500))
        .with_account("grace", euros(200));
    let airline = Airline::new();
    let hotels = Hotels::new().with_no_rooms_in("Venice");
    let mailer = Mailer::busy_for(1);
    let runner = Runner::new().with_hooks(Narrator::new());
    let book = async |title: &str, trip: Trip| {
        println!("== {title} ==");
        let (result, report) = runner
            .run_reported(BookTripSaga::new(&bank, &airline, &hotels, &mailer, trip))
            .await;
        match &result {
            Ok(itinerary) => println!("\nBooked: {itinerary}"),
            Err(err) => {
                println!("\nNot booked: {err}");
                println!("Failed step: `{}`", err.failed_step());
                println!("Undone, in this order: {}", in_order(err.undone()));
            }
        }
        println!("\nRun report:\n{report}");
    };
    // The flights of one customer that stand, and those that were cancelled.
    let flights = |customer: &str| {
        let of = |bookings: Vec<FlightBooking>| -> Vec<String> {
            bookings
                .into_iter()
                .filter(|b| b.customer == customer)
                .map(|b| b.reference)
                .collect()
        };
        (of(airline.booked()), of(airline.cancelled()))
    };

    let trip = Trip::new("ada", "ada@example.com", "Lisbon", 3, euros(900));
    book("Trip 1: Ada, 3 nights in Lisbon for €900.00", trip).await;
    let (booked, _) = flights("ada");
    println!(
        "Afterwards: Ada has {} left; her flight(s): {}; {} hotel room(s) booked; {} e-mail(s) sent.\n",
        format_euros(bank.balance("ada").unwrap_or_default()),
        listed(&booked),
        hotels.booked().len(),
        mailer.sent().len(),
    );

    let trip = Trip::new("alan", "alan@example.com", "Venice", 2, euros(700));
    book(
        "Trip 2: Alan, 2 nights in Venice for €700.00 (no rooms there)",
        trip,
    )
    .await;
    let (booked, cancelled) = flights("alan");
    println!(
        "Afterwards: Alan has {} (he started with {}); his flights cancelled: {}; his flights still booked: {}.\n",
        format_euros(bank.balance("alan").unwrap_or_default()),
        format_euros(euros(1_500)),
        listed(&cancelled),
        listed(&booked),
    );

    let trip = Trip::new("grace", "grace@example.com", "Lisbon", 3, euros(900));
    book(
        "Trip 3: Grace, 3 nights in Lisbon for €900.00 (she has €200.00)",
        trip,
    )
    .await;
    let (booked, _) = flights("grace");
    println!(
        "Afterwards: Grace still has {}; her flights: {}.",
        format_euros(bank.balance("grace").unwrap_or_default()),
        listed(&booked),
    );
}

/// The crash the command line asked for, as a plan for [`CrashingStore`], with
/// the sentence to print as it happens.
fn crash_plan(moment: Moment, name: &str) -> Result<(CrashPlan, String), String> {
    let steps = BookTripSaga::STEPS;
    let (index, compensation) = if let Some(i) = steps.iter().position(|s| s.name() == name) {
        (i, false)
    } else if let Some(i) = steps.iter().position(|s| s.compensation() == Some(name)) {
        (i, true)
    } else {
        let mut names: Vec<&str> = steps.iter().map(|s| s.name()).collect();
        names.extend(steps.iter().filter_map(|s| s.compensation()));
        return Err(format!(
            "`{name}` is neither a step nor a compensation of `book_trip`; choose one of: {}",
            names.join(", ")
        ));
    };
    let kind = if compensation {
        "CompensationSucceeded"
    } else {
        "StepSucceeded"
    };
    let message = match moment {
        Moment::After => format!(
            "\n*** CRASH (on purpose): `{name}` is done and its result is recorded in the store; \
             the process stops dead here. Run the same command without --crash-after to recover. ***"
        ),
        Moment::Before => format!(
            "\n*** CRASH (on purpose): `{name}` did its work (see the ledger), but the process dies \
             before its result is recorded. Run the same command without --crash-during to recover. ***"
        ),
    };
    let plan = CrashPlan {
        moment,
        kind,
        index: Some(index as u32),
        nth: 1,
    };
    Ok((plan, message))
}

/// The durable mode over `store` (a file, or a server, named `place`).
async fn durable<St: Store + Clone>(
    store: St,
    path: &str,
    ledger_path: &str,
    lease: Option<Duration>,
    options: &Options,
) -> Result<(), String> {
    let (plan, message) = match &options.crash {
        Some((moment, name)) => {
            let (plan, message) = crash_plan(*moment, name)?;
            (Some(plan), message)
        }
        None => (None, String::new()),
    };
    println!(
        "Durable mode: the sagas are kept in {path}; the services write what they do to {ledger_path}."
    );
    let ledger =
        Arc::new(Ledger::open(ledger_path, true).map_err(|e| format!("{ledger_path}: {e}"))?);
    let executor = Executor::new(CrashingStore::new(store, plan, message))
        .with_hooks(Narrator::new())
        .resource(
            Bank::new()
                .with_account("ada", euros(2_000))
                .with_ledger(ledger.clone()),
        )
        .resource(Airline::new().with_ledger(ledger.clone()))
        .resource(
            Hotels::new()
                .with_no_rooms_in("Venice")
                .with_ledger(ledger.clone()),
        )
        .resource(Mailer::new().with_ledger(ledger.clone()))
        .register::<BookTripSaga>();
    recover_unfinished(&executor, path, lease, &ledger).await?;
    book_a_new_trip(&executor, path, options).await?;
    tell_totals(executor.resources(), &ledger)
}

/// 1. What did an earlier run leave unfinished? Tells it, and recovers it.
async fn recover_unfinished<St: Store + Clone>(
    executor: &Executor<CrashingStore<St>, Narrator>,
    path: &str,
    lease: Option<Duration>,
    ledger: &Ledger,
) -> Result<(), String> {
    println!("\n== Looking for trips that an earlier run left unfinished ==");
    let unfinished = executor
        .store()
        .inner()
        .with_status(SagaStatus::Running)
        .await
        .map_err(|e| e.to_string())?;
    if unfinished.is_empty() {
        println!("None: every trip in {path} had ended.");
    } else {
        println!(
            "Found {} unfinished trip(s); this is what the store says each had done:",
            unfinished.len()
        );
        for record in &unfinished {
            describe(record, ledger);
        }
        println!("\nRecovering them now:");
    }
    let mut report = executor.recover().await.map_err(|e| e.to_string())?;
    if let Some(lease) = lease
        && report.sagas.len() < unfinished.len()
    {
        // On PostgreSQL a saga of a process that died is still leased to it
        // until the lease expires; then any worker may take it up.
        println!(
            "({} trip(s) still leased to the process that died; taking them up once the lease of {lease:?} expires.)",
            unfinished.len() - report.sagas.len()
        );
        tokio::time::sleep(lease + Duration::from_millis(200)).await;
        let later = executor.recover().await.map_err(|e| e.to_string())?;
        report.sagas.extend(later.sagas);
    }
    if !unfinished.is_empty() {
        tell_recovery(&report, ledger);
    }
    Ok(())
}

/// 2. A new trip, which crashes on purpose if the options say so.
async fn book_a_new_trip<St: Store + Clone>(
    executor: &Executor<CrashingStore<St>, Narrator>,
    path: &str,
    options: &Options,
) -> Result<(), String> {
    let trip = Trip::new("ada", "ada@example.com", &options.to, 3, euros(900));
    println!(
        "\n== A new trip: Ada, 3 nights in {} for {} ==",
        trip.city,
        format_euros(trip.price)
    );
    if let Some((moment, name)) = &options.crash {
        let when = match moment {
            Moment::After => "right after the result of",
            Moment::Before => "in the middle of",
        };
        println!("(This run will crash on purpose {when} `{name}`.)");
    }
    let resources = executor.resources();
    let saga = BookTripSaga::new(
        resources.get::<Bank>().map_err(|e| e.to_string())?,
        resources.get::<Airline>().map_err(|e| e.to_string())?,
        resources.get::<Hotels>().map_err(|e| e.to_string())?,
        resources.get::<Mailer>().map_err(|e| e.to_string())?,
        trip,
    );
    let started = executor.start(saga).await.map_err(|e| e.to_string())?;
    let id = started.id();
    println!("Its input is now safe in {path}, as saga {id}.");
    match started.outcome().await {
        Ok(Ok(itinerary)) => println!("\nBooked: {itinerary}"),
        Ok(Err(err)) => println!("\nNot booked: {err}"),
        Err(e) => println!("\nThe store failed, so the trip stopped where it was: {e}"),
    }
    if let Some((_, name)) = &options.crash {
        println!("(`{name}` did not run to the end in this trip, so there was no crash.)");
    }
    Ok(())
}

/// 3. Where things stand, from the ledger: every run so far.
fn tell_totals(resources: &Resources, ledger: &Ledger) -> Result<(), String> {
    let bank = resources.get::<Bank>().map_err(|e| e.to_string())?;
    let airline = resources.get::<Airline>().map_err(|e| e.to_string())?;
    let hotels = resources.get::<Hotels>().map_err(|e| e.to_string())?;
    let mailer = resources.get::<Mailer>().map_err(|e| e.to_string())?;
    println!(
        "\nAll runs so far, from the ledger: Ada has {} left (she started with {}); \
         {} flight(s) and {} hotel room(s) booked, {} flight(s) cancelled; {} e-mail(s) sent; \
         {} repeated request(s) recognised by their idempotency key.",
        format_euros(bank.balance("ada").unwrap_or_default()),
        format_euros(euros(2_000)),
        airline.booked().len(),
        hotels.booked().len(),
        airline.cancelled().len(),
        mailer.sent().len(),
        ledger
            .lines()
            .iter()
            .filter(|l| l.what.starts_with("again:"))
            .count(),
    );
    Ok(())
}

/// Tells in words what the journal of an unfinished saga says.
fn describe(record: &SagaRecord, ledger: &Ledger) {
    let steps = BookTripSaga::STEPS;
    let name = |index: u32| steps.get(index as usize).map_or("?", |s| s.name());
    let undo = |index: u32| {
        steps
            .get(index as usize)
            .and_then(|s| s.compensation())
            .unwrap_or("?")
    };
    let trip = serde_json::from_slice::<serde_json::Value>(&record.input)
        .ok()
        .and_then(|v| serde_json::from_value::<Trip>(v.get("trip")?.clone()).ok());
    match trip {
        Some(trip) => println!(
            "\n  Trip {}: {}, {} nights in {} for {}",
            record.id,
            trip.customer,
            trip.nights,
            trip.city,
            format_euros(trip.price)
        ),
        None => println!("\n  Trip {}", record.id),
    }
    if record.journal.is_empty() {
        println!("    - nothing yet: it had been saved but no step had started");
    }
    for entry in &record.journal {
        let line = match entry {
            Entry::StepStarted { index, attempt } => {
                format!("`{}` started (attempt {attempt})", name(*index))
            }
            Entry::StepSucceeded { index, .. } => {
                format!("`{}` succeeded, its result recorded", name(*index))
            }
            Entry::StepFailed { index, error } => format!("`{}` failed: {error}", name(*index)),
            Entry::CompensationStarted { index, attempt } => format!(
                "undoing `{}` with `{}` started (attempt {attempt})",
                name(*index),
                undo(*index)
            ),
            Entry::CompensationSucceeded { index } => format!("`{}` undone", name(*index)),
            Entry::CompensationFailed { index, error } => {
                format!("could not undo `{}`: {error}", name(*index))
            }
            Entry::Decided => "decided to commit: confirming the held seats".to_owned(),
            Entry::ConfirmStarted { index, attempt } => {
                format!("confirming `{}` started (attempt {attempt})", name(*index))
            }
            Entry::Confirmed { index } => format!("`{}` confirmed", name(*index)),
            Entry::Finished { status, .. } => format!("ended: {status}"),
            Entry::Intervention { retry, note } => {
                format!("a person intervened (retry: {retry}): {note}")
            }
            Entry::Sent { messages } => format!("{} message(s) for the outbox", messages.len()),
            Entry::Arm { branch, arm } => format!("branch {branch} took arm {arm}"),
        };
        println!("    - {line}");
    }
    // What recovery will do with the last entry. The flight and the hotel
    // run at once, so more than one step may have started without a result.
    let cut_short: Vec<String> = started_without_result(&record.journal)
        .into_iter()
        .map(|index| {
            let key = format!("{}-{index}", record.id);
            let done_before = ledger.lines().iter().any(|l| l.is_effect() && l.key == key);
            format!(
                "`{}` had started but its result was never recorded{}: recovery runs it \
                     again with the same idempotency key ({key}), so the service can tell it is \
                     a repeat",
                name(index),
                if done_before {
                    " (the ledger shows the service did it)"
                } else {
                    ""
                }
            )
        })
        .collect();
    let next = match record.journal.last() {
        None => "recovery runs it from the first step".to_owned(),
        Some(Entry::StepStarted { .. } | Entry::StepSucceeded { .. }) if !cut_short.is_empty() => {
            cut_short.join("; ")
        }
        Some(Entry::StepSucceeded { index, .. }) => format!(
            "recovery reads the results of the steps that succeeded back from the store \
             (it does not run them again) and goes on after `{}`",
            name(*index)
        ),
        Some(Entry::CompensationStarted { index, .. }) => format!(
            "it was undoing `{}` when the process died: recovery runs `{}` again with the \
             same idempotency key ({}-{index}-undo), then undoes the steps before it",
            name(*index),
            undo(*index),
            record.id
        ),
        Some(_) => "it was undoing what had been done: recovery goes on undoing".to_owned(),
    };
    println!("    => {next}");
}

/// The steps whose last attempt started and has no result in `journal`, in
/// the order they started.
fn started_without_result(journal: &[Entry]) -> Vec<u32> {
    let mut open: Vec<u32> = Vec::new();
    for entry in journal {
        match entry {
            Entry::StepStarted { index, .. } if !open.contains(index) => open.push(*index),
            Entry::StepSucceeded { index, .. } | Entry::StepFailed { index, .. } => {
                open.retain(|i| i != index);
            }
            _ => {}
        }
    }
    open
}

/// Tells in words what recovery did.
fn tell_recovery(report: &RecoveryReport, ledger: &Ledger) {
    println!("\nWhat recovery did:");
    for saga in &report.sagas {
        let what = match &saga.outcome {
            RecoveredOutcome::Committed => "finished it: the trip is booked".to_owned(),
            RecoveredOutcome::Compensated {
                failed_step,
                undone,
            } => {
                if undone.is_empty() {
                    format!("`{failed_step}` had failed and there was nothing to undo")
                } else {
                    format!(
                        "`{failed_step}` had failed, so it undid {}: nothing of the trip remains",
                        in_order(undone)
                    )
                }
            }
            RecoveredOutcome::Parked {
                failed_step,
                failed,
            } => format!(
                "`{failed_step}` had failed and undoing failed too ({}); the trip is parked \
                 for a person to repair",
                failed
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            RecoveredOutcome::Halted(e) => format!("the store failed again, so it stopped: {e}"),
            RecoveredOutcome::Refused(why) => format!("left it alone: {why}"),
        };
        println!("  Trip {}: {what}.", saga.id);
        let again: Vec<String> = ledger
            .lines()
            .into_iter()
            .filter(|l| l.what.starts_with("again:") && l.saga == saga.id.to_string())
            .map(|l| format!("{} ({})", l.effect(), l.key))
            .collect();
        if !again.is_empty() {
            println!(
                "    A step ran again after the crash and the service recognised its key, \
                 so it did not do it twice: {}.",
                again.join(", ")
            );
        }
    }
}
