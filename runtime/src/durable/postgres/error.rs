//! Which server an error is about, and which errors are worth a retry.

use std::fmt;

use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;

use crate::durable::store::StoreError;

/// The server, database and schema a store uses, as every error names them:
/// `sagaflow store postgresql://127.0.0.1:5432/shop (schema sagaflow)`. Never
/// the user or the password.
#[derive(Debug, Clone)]
pub(super) struct Server {
    shown: String,
    database: String,
    schema: String,
}

impl Server {
    pub(super) fn new(config: &tokio_postgres::Config, schema: &str) -> Server {
        let ports = config.get_ports();
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                match host {
                    Host::Tcp(name) => format!("{name}:{port}"),
                    #[cfg(unix)]
                    Host::Unix(dir) => format!("{}:{port}", dir.display()),
                }
            })
            .collect();
        let hosts = if hosts.is_empty() {
            "localhost:5432".to_owned()
        } else {
            hosts.join(",")
        };
        let database = config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or("postgres")
            .to_owned();
        Server {
            shown: format!("sagaflow store postgresql://{hosts}/{database} (schema {schema})"),
            database,
            schema: schema.to_owned(),
        }
    }

    /// The database's name.
    pub(super) fn database(&self) -> &str {
        &self.database
    }

    /// The schema's name, as given.
    pub(super) fn schema(&self) -> &str {
        &self.schema
    }

    /// The schema's name quoted for a statement (checked to need no escaping).
    pub(super) fn quoted_schema(&self) -> String {
        format!("\"{}\"", self.schema)
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// A driver error as a `StoreError` that names the server and says what was
/// being done and, where a person can act on it, what to do.
pub(super) fn pg_error(server: &Server, doing: &str, error: &tokio_postgres::Error) -> StoreError {
    let advice = if is_transient(error) {
        "; the connection to the server failed: is the server running and reachable?"
    } else {
        match error.code() {
            Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => {
                "; the database user lacks a privilege on the store's schema"
            }
            Some(c) if *c == SqlState::DISK_FULL => "; the server's disk is full",
            Some(c) if *c == SqlState::READ_ONLY_SQL_TRANSACTION => {
                "; the server is read-only (a standby?): connect to the primary"
            }
            _ => "",
        }
    };
    // The driver's own `Display` says only "db error"; the server's message is
    // in the `DbError`.
    let detail = match error.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => error.to_string(),
    };
    StoreError::new(format!("{server}: {doing}: {detail}{advice}"))
}

/// Whether `error` is the connection's fault rather than the statement's: the
/// connection closed or broke, the server is shutting down or starting, or it
/// is out of connections. Such a write is tried again on a new connection.
pub(super) fn is_transient(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    if let Some(code) = error.code() {
        let code = code.code();
        return code.starts_with("08") // connection exception
            || code == "57P01" // admin_shutdown
            || code == "57P02" // crash_shutdown
            || code == "57P03" // cannot_connect_now
            || code == "53300" // too_many_connections
            || code == "40001" // serialization_failure
            || code == "40P01"; // deadlock_detected
    }
    // No server code: an I/O error or a timeout on the socket.
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    error.to_string().contains("timeout") || error.to_string().contains("connection")
}
