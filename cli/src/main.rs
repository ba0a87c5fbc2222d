//! `sagaflow`: the operator's view of a sagaflow store.
//!
//! Lists, shows, repairs and purges the sagas in a store, from the shell or
//! from a local web page (`sagaflow serve`), and lists and re-sends the
//! messages of its outbox. It reads and writes only through the public `Store`
//! and `Outbox` interfaces, so it shows any store that implements them.
//! The commands, their JSON and their exit codes are documented in
//! `docs/operating.md`.

mod html;
mod messages;
mod serve;
mod text;
mod view;

use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Parser, Subcommand};
use sagaflow::SagaId;
use sagaflow::durable::{
    Durability, DurableError, Executor, SagaFilter, SagaStatus, SqliteStore, Store,
};
use sagaflow::outbox::{MessageFilter, MessageState, Outbox};

use crate::view::SagaView;

/// See, repair and retire the sagas in a sagaflow store.
#[derive(Debug, Parser)]
#[command(name = "sagaflow", version, about, long_about = None)]
struct Cli {
    /// The store: a sagaflow SQLite file, or a `postgres://` URL (with the
    /// `postgres` feature).
    #[arg(long, global = true, env = "SAGAFLOW_STORE", value_name = "FILE|URL")]
    store: Option<String>,
    /// With a `postgres://` store: the PostgreSQL schema that holds it.
    #[arg(
        long,
        global = true,
        env = "SAGAFLOW_SCHEMA",
        default_value = "sagaflow"
    )]
    schema: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One line a saga, newest first: id, type, status, age, the step it is
    /// at, the failed step and its error.
    List {
        /// Only sagas with this status.
        #[arg(long, value_parser = parse_status)]
        status: Option<SagaStatus>,
        /// Only sagas of this type (the saga function's name).
        #[arg(long = "type", value_name = "TYPE")]
        saga_type: Option<String>,
        /// Only sagas started within this long (`90s`, `2h`, `3d`) or since
        /// this time (`2026-12-01T10:00:00Z`).
        #[arg(long, value_parser = parse_time)]
        since: Option<SystemTime>,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
        /// JSON for scripts: an array of objects, one a saga.
        #[arg(long)]
        json: bool,
    },
    /// A saga's input, graph with each step's state, report and journal.
    Show {
        /// The saga's id (32 hexadecimal digits).
        id: SagaId,
        /// JSON for scripts: one object.
        #[arg(long)]
        json: bool,
    },
    /// Sends a parked saga back to compensating: its application's executor
    /// runs the failed compensations again at its next recovery.
    RetryCompensations {
        /// The saga's id.
        id: SagaId,
        /// Who and why, kept in the saga's history.
        #[arg(long)]
        note: String,
    },
    /// Marks a parked saga resolved (repaired by hand).
    Resolve {
        /// The saga's id.
        id: SagaId,
        /// Who and why, kept in the saga's history.
        #[arg(long)]
        note: String,
    },
    /// Deletes finished sagas (committed, compensated, resolved) older than a
    /// limit. Running and parked sagas are never purged.
    Purge {
        /// Finished more than this long ago (`30d`) or before this time.
        #[arg(long, value_parser = parse_time)]
        finished_before: SystemTime,
        /// Only say what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// JSON for scripts: the ids purged (or that would be).
        #[arg(long)]
        json: bool,
    },
    /// The outbox: one line a message, sagas oldest first, each in order:
    /// id, destination, key, state, attempts, age and the last error.
    Messages {
        /// Only messages in this state.
        #[arg(long, value_parser = messages::parse_state)]
        state: Option<MessageState>,
        /// Only the messages of this saga.
        #[arg(long, value_name = "ID")]
        saga: Option<SagaId>,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
        /// JSON for scripts: an array of objects, one a message.
        #[arg(long)]
        json: bool,
    },
    /// Sends a dead message again: it becomes pending with its attempts
    /// reset, and the application's relay delivers it.
    Resend {
        /// The message's id, as `messages` shows it.
        id: String,
    },
    /// A local web page over the store: the list, each saga's graph, journal
    /// and report, and the two interventions as forms.
    Serve(serve::Options),
}

/// How a command failed, with the exit code it leaves.
#[derive(Debug)]
pub struct Failure {
    /// The code: see `docs/operating.md`.
    pub code: u8,
    /// One line for stderr.
    pub message: String,
}

impl Failure {
    /// The store could not be opened, read or written (exit code 1).
    pub fn store(message: impl Into<String>) -> Self {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
}

/// Exit code: the saga id is not in the store.
const UNKNOWN_SAGA: u8 = 3;
/// Exit code: an intervention was refused because the saga is not parked.
const NOT_PARKED: u8 = 4;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: not errors.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's message spreads over lines (the problem, a usage, a
            // hint): keep the problem, on one line.
            let rendered = e.render().to_string();
            let problem: Vec<&str> = rendered
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
                .collect();
            let problem = problem.join(" ");
            eprintln!(
                "sagaflow: {} (see `sagaflow --help`)",
                problem.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("sagaflow: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("sagaflow: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// Opens the store `--store` names and runs one command on it.
async fn run(cli: Cli) -> Result<String, Failure> {
    let place = cli.store.ok_or_else(|| Failure {
        code: 2,
        message: "no store given: pass `--store FILE` (or a postgres:// URL) or set \
                  SAGAFLOW_STORE"
            .to_owned(),
    })?;
    if place.starts_with("postgres://") || place.starts_with("postgresql://") {
        return on_postgres(&place, &cli.schema, cli.command).await;
    }
    let store = SqliteStore::open_existing(&place, Durability::Full)
        .map_err(|e| Failure::store(e.to_string()))?;
    command(store, place, cli.command).await
}

/// A store on a PostgreSQL server (the `postgres` feature of this package).
#[cfg(feature = "postgres")]
async fn on_postgres(url: &str, schema: &str, command_: Command) -> Result<String, Failure> {
    let config = sagaflow::durable::PgConfig::new(url).schema(schema);
    let store = sagaflow::durable::PgStore::connect_with(config)
        .await
        .map_err(|e| Failure::store(e.to_string()))?;
    let place = store.server();
    let out = command(store.clone(), place, command_).await;
    // It leases nothing, but its background tasks end cleanly this way.
    let _ = store.close().await;
    out
}

#[cfg(not(feature = "postgres"))]
async fn on_postgres(_url: &str, _schema: &str, _command: Command) -> Result<String, Failure> {
    Err(Failure::store(
        "this sagaflow was built without PostgreSQL: install it with \
         `cargo install --path cli --features postgres`"
            .to_owned(),
    ))
}

/// Runs one command on `store` (shown as `place`) and answers what to print.
async fn command<St: Outbox + Clone>(
    store: St,
    place: String,
    command: Command,
) -> Result<String, Failure> {
    let now = SystemTime::now();
    match command {
        Command::List {
            status,
            saga_type,
            since,
            limit,
            json,
        } => {
            let filter = SagaFilter {
                status,
                saga_type,
                since,
                limit,
            };
            let sagas = list(&store, filter).await?;
            Ok(match json {
                true => {
                    let rows: Vec<_> = sagas.iter().map(|s| s.summary_json(now)).collect();
                    format!("{}\n", serde_json::Value::Array(rows))
                }
                false => text::list(&sagas, now),
            })
        }
        Command::Show { id, json } => {
            let saga = show(&store, id).await?;
            Ok(match json {
                true => format!("{}\n", saga.to_json(now)),
                false => text::show(&saga, now),
            })
        }
        Command::RetryCompensations { id, note } => {
            intervene(&store, id, true, &note).await?;
            Ok(format!(
                "saga {id} sent back to compensating; its application's executor runs the \
                 failed compensations at its next recovery\n"
            ))
        }
        Command::Resolve { id, note } => {
            intervene(&store, id, false, &note).await?;
            Ok(format!("saga {id} marked resolved\n"))
        }
        Command::Purge {
            finished_before,
            dry_run,
            json,
        } => {
            let ids = store
                .purge(finished_before, dry_run)
                .await
                .map_err(|e| Failure::store(e.to_string()))?;
            Ok(purged(&ids, dry_run, json))
        }
        Command::Messages {
            state,
            saga,
            limit,
            json,
        } => {
            let filter = MessageFilter {
                state,
                saga_id: saga,
                limit,
            };
            messages::list(&store, filter, json, now).await
        }
        Command::Resend { id } => messages::resend(&store, &id).await,
        Command::Serve(options) => serve::run(store, place, options)
            .await
            .map(|()| String::new()),
    }
}

/// The sagas matching `filter`, worked out for show.
pub async fn list<St: Store>(store: &St, filter: SagaFilter) -> Result<Vec<SagaView>, Failure> {
    let sagas = store
        .list(filter)
        .await
        .map_err(|e| Failure::store(e.to_string()))?;
    Ok(sagas.into_iter().map(SagaView::new).collect())
}

/// One saga, or exit code 3.
pub async fn show<St: Store>(store: &St, id: SagaId) -> Result<SagaView, Failure> {
    match store.history(id).await {
        Ok(Some(saga)) => Ok(SagaView::new(saga)),
        Ok(None) => Err(Failure {
            code: UNKNOWN_SAGA,
            message: format!("no saga {id} in the store"),
        }),
        Err(e) => Err(Failure::store(e.to_string())),
    }
}

/// A person's intervention on a parked saga, through the executor (whose
/// store checks the status in the same transaction as the append). Refused,
/// it says what the saga is now and what the last intervention was.
pub async fn intervene<St: Store + Clone>(
    store: &St,
    id: SagaId,
    retry: bool,
    note: &str,
) -> Result<(), Failure> {
    let executor = Executor::new(store.clone());
    let result = match retry {
        true => executor.retry_compensations(id, note).await,
        false => executor.resolve(id, note).await,
    };
    match result {
        Ok(()) => Ok(()),
        Err(DurableError::UnknownSaga { id }) => Err(Failure {
            code: UNKNOWN_SAGA,
            message: format!("no saga {id} in the store"),
        }),
        Err(DurableError::NotParked { id, status }) => {
            let before = match store.history(id).await {
                Ok(Some(saga)) => match SagaView::new(saga).last_intervention() {
                    Some((true, note)) => {
                        format!("; someone sent it back to compensating, with the note {note:?}")
                    }
                    Some((false, note)) => {
                        format!("; someone marked it resolved, with the note {note:?}")
                    }
                    None => String::new(),
                },
                _ => String::new(),
            };
            Err(Failure {
                code: NOT_PARKED,
                message: format!("saga {id} is {status}, not parked, so nothing was done{before}"),
            })
        }
        Err(e) => Err(Failure::store(e.to_string())),
    }
}

/// What `purge` prints.
fn purged(ids: &[SagaId], dry_run: bool, json: bool) -> String {
    if json {
        let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        return format!(
            "{}\n",
            serde_json::json!({ "dry_run": dry_run, "purged": ids })
        );
    }
    let verb = if dry_run { "would purge" } else { "purged" };
    let mut out = format!("{verb} {} finished saga(s)\n", ids.len());
    for id in ids {
        out.push_str(&format!("{id}\n"));
    }
    out
}

pub(crate) fn parse_status(word: &str) -> Result<SagaStatus, String> {
    SagaStatus::parse(word).ok_or_else(|| {
        format!("`{word}` is not a status: use running, confirming, parked, committed, compensated or resolved")
    })
}

/// `2h` (that long ago) or an RFC 3339 time.
pub(crate) fn parse_time(text: &str) -> Result<SystemTime, String> {
    if let Ok(ago) = humantime::parse_duration(text) {
        return SystemTime::now()
            .checked_sub(ago)
            .ok_or_else(|| format!("`{text}` reaches back before the clock's start"));
    }
    humantime::parse_rfc3339_weak(text).map_err(|_| {
        format!(
            "`{text}` is neither a duration (`90s`, `2h`, `30d`) nor a time \
             (`2026-12-01T10:00:00Z`)"
        )
    })
}
