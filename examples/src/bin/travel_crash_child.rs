//! The process that the crash test (`examples/tests/crash.rs`) kills over and
//! over: it runs many durable `travel` sagas at once, in a directory of its own.
//!
//! ```text
//! travel_crash_child DIR [--sagas N] [--concurrency C] [--park-every K]
//!     [--normal] [--recover-only]
//! ```
//!
//! In `DIR` it opens (or creates) the store `sagas.db` and the services' ledger
//! `ledger`, recovers what an earlier run left unfinished and, at the same time,
//! starts `N` new `book_trip` sagas (default: practically forever), `C` at a
//! time (default 20). After each `start` returns (the saga's input is durable)
//! it appends the saga's id to `DIR/started`. One trip in four goes to Venice,
//! which has no hotel rooms, so it is undone; one in ten is for a customer who
//! cannot pay; with `--park-every K`, one in K goes to Venice for a customer
//! whose refunds the bank refuses, so it ends parked; the mail server is busy
//! one time in four.
//!
//! `--normal` uses `Durability::Normal` and a ledger without `sync_data`: every
//! write survives the death of the process, which is all a kill tests, at a
//! fraction of the cost. `--recover-only` starts nothing: it recovers to the end.
//!
//! With `SAGAFLOW_CRASH=before|after:<kind>:<n>` in the environment, the process
//! aborts at the `n`-th store write of that kind (see
//! [`sagaflow_examples::crash::CrashPlan`]).
//!
//! It prints:
//!
//! - `recovering <n> unfinished`: how many unfinished sagas recovery found;
//! - `recovered <id> <outcome>`: one line per recovered saga, once all have ended;
//! - `recovery: <n> unfinished`: the end of recovery;
//! - `done: <c> committed, <k> compensated, <p> parked`: the new sagas' outcomes.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use sagaflow::durable::{Durability, Executor, RecoveredOutcome, SqliteStore};
use sagaflow_examples::crash::{CrashPlan, CrashingStore};
use sagaflow_examples::ledger::Ledger;
use sagaflow_examples::travel::{Airline, Bank, BookTripSaga, Hotels, Mailer, Trip, euros};

struct Options {
    dir: PathBuf,
    sagas: u64,
    concurrency: usize,
    park_every: u64,
    normal: bool,
    recover_only: bool,
}

fn parse() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: travel_crash_child DIR [options]")?;
    let mut options = Options {
        dir: PathBuf::from(dir),
        sagas: u64::MAX,
        concurrency: 20,
        park_every: 0,
        normal: false,
        recover_only: false,
    };
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("`{name}` needs a number"))
        };
        match arg.as_str() {
            "--sagas" => options.sagas = number("--sagas")?,
            "--concurrency" => options.concurrency = number("--concurrency")?.max(1) as usize,
            "--park-every" => options.park_every = number("--park-every")?,
            "--normal" => options.normal = true,
            "--recover-only" => options.recover_only = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(options)
}

/// The `i`-th trip of this run.
fn trip(i: u64, park_every: u64) -> Trip {
    if park_every > 0 && i % park_every == park_every - 1 {
        return Trip::new("mallory", "m@example.com", "Venice", 2, euros(500));
    }
    if i % 10 == 3 {
        return Trip::new("bob", "bob@example.com", "Lisbon", 1, euros(300));
    }
    let city = if i % 4 == 1 { "Venice" } else { "Lisbon" };
    Trip::new("ada", "ada@example.com", city, 3, euros(900))
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() -> ExitCode {
    let options = match parse() {
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
    match runtime.block_on(run(&options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("travel_crash_child: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: &Options) -> Result<(), String> {
    let plan = match std::env::var("SAGAFLOW_CRASH") {
        Ok(text) if !text.is_empty() => Some(text.parse::<CrashPlan>()?),
        _ => None,
    };
    let message = format!(
        "crashing: {}",
        plan.as_ref().map(ToString::to_string).unwrap_or_default()
    );
    let durability = if options.normal {
        Durability::Normal
    } else {
        Durability::Full
    };
    let store =
        SqliteStore::open(options.dir.join("sagas.db"), durability).map_err(|e| e.to_string())?;
    let ledger = Arc::new(
        Ledger::open(options.dir.join("ledger"), !options.normal).map_err(|e| e.to_string())?,
    );
    let store = CrashingStore::new(store, plan, message);
    let executor = Executor::new(store.clone())
        .resource(
            Bank::new()
                .with_account("ada", u64::MAX / 4)
                .with_account("mallory", u64::MAX / 4)
                .with_account("bob", 0)
                .refusing_refunds_for("mallory")
                .with_ledger(ledger.clone()),
        )
        .resource(Airline::new().with_ledger(ledger.clone()))
        .resource(
            Hotels::new()
                .with_no_rooms_in("Venice")
                .with_ledger(ledger.clone()),
        )
        .resource(Mailer::busy_one_in(4).with_ledger(ledger.clone()))
        .register::<BookTripSaga>();

    let recovery = async {
        let report = executor.recover().await.map_err(|e| e.to_string())?;
        for saga in &report.sagas {
            let outcome = match &saga.outcome {
                RecoveredOutcome::Committed => "committed".to_owned(),
                RecoveredOutcome::Compensated { .. } => "compensated".to_owned(),
                RecoveredOutcome::Parked { .. } => "parked".to_owned(),
                RecoveredOutcome::Halted(e) => format!("halted {e}"),
                RecoveredOutcome::Refused(why) => format!("refused {why}"),
            };
            say(&format!("recovered {} {outcome}", saga.id));
        }
        say(&format!("recovery: {} unfinished", report.sagas.len()));
        Ok::<_, String>(())
    };
    let new_sagas = async {
        // Start nothing before recovery has read the unfinished sagas: a saga
        // created while recovery reads could otherwise be run by both.
        store.claimed().await;
        say(&format!("recovering {} unfinished", store.last_claim()));
        if options.recover_only {
            return Ok((0, 0, 0));
        }
        start_sagas(&executor, options, &options.dir.join("started")).await
    };
    let (recovered, counts) = tokio::join!(recovery, new_sagas);
    recovered?;
    let (committed, compensated, parked) = counts?;
    say(&format!(
        "done: {committed} committed, {compensated} compensated, {parked} parked"
    ));
    Ok(())
}

async fn start_sagas(
    executor: &Executor<CrashingStore<SqliteStore>>,
    options: &Options,
    started_path: &Path,
) -> Result<(u64, u64, u64), String> {
    let mut started_file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(started_path)
        .map_err(|e| format!("{}: {e}", started_path.display()))?;
    let resources = executor.resources();
    let bank = resources.get::<Bank>().map_err(|e| e.to_string())?;
    let airline = resources.get::<Airline>().map_err(|e| e.to_string())?;
    let hotels = resources.get::<Hotels>().map_err(|e| e.to_string())?;
    let mailer = resources.get::<Mailer>().map_err(|e| e.to_string())?;
    let mut running = FuturesUnordered::new();
    let (mut committed, mut compensated, mut parked) = (0, 0, 0);
    let mut i = 0;
    loop {
        while i < options.sagas && running.len() < options.concurrency {
            let saga =
                BookTripSaga::new(bank, airline, hotels, mailer, trip(i, options.park_every));
            i += 1;
            let started = executor.start(saga).await.map_err(|e| e.to_string())?;
            // One write per line, after the input is durable.
            started_file
                .write_all(format!("{}\n", started.id()).as_bytes())
                .map_err(|e| format!("{}: {e}", started_path.display()))?;
            running.push(started.outcome());
        }
        match running.next().await {
            None => break,
            Some(Err(e)) => return Err(format!("the store failed: {e}")),
            Some(Ok(Ok(_))) => committed += 1,
            Some(Ok(Err(e))) if e.is_compensated() => compensated += 1,
            Some(Ok(Err(_))) => parked += 1,
        }
    }
    Ok((committed, compensated, parked))
}
