//! What a barrier call that failed says: the table, the phase, the key.

use std::fmt;

use super::Phase;

/// A barrier call that failed: the table's name is refused, the key is empty,
/// or the database failed. Names the table, the key and the phase.
#[derive(Debug)]
pub struct BarrierError {
    table: String,
    key: Option<String>,
    phase: Option<&'static str>,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl BarrierError {
    pub(super) fn invalid_table(table: &str, why: &str) -> Self {
        BarrierError {
            table: table.to_owned(),
            key: None,
            phase: None,
            message: why.to_owned(),
            source: None,
        }
    }

    pub(super) fn empty_key(table: &str, phase: Phase) -> Self {
        BarrierError {
            table: table.to_owned(),
            key: Some(String::new()),
            phase: Some(phase.as_str()),
            message: "the key is empty: pass the step's idempotency key".to_owned(),
            source: None,
        }
    }

    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(super) fn database(
        table: &str,
        key: Option<&str>,
        phase: Option<Phase>,
        doing: &str,
        source: impl DatabaseError,
    ) -> Self {
        BarrierError {
            table: table.to_owned(),
            key: key.map(str::to_owned),
            phase: phase.map(Phase::as_str),
            message: format!("{doing} failed: {}", source.detail()),
            source: Some(Box::new(source)),
        }
    }

    /// The barrier table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The key of the failed call, if the call had one.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The phase of the failed call: `"try"`, `"confirm"` or `"cancel"`.
    pub fn phase(&self) -> Option<&'static str> {
        self.phase
    }
}

impl fmt::Display for BarrierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "barrier table {:?}", self.table)?;
        if let Some(phase) = self.phase {
            write!(f, ", {phase} phase")?;
        }
        if let Some(key) = &self.key {
            write!(f, " of key {key:?}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for BarrierError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A database driver's error, and what of it a [`BarrierError`]'s message
/// says.
pub(super) trait DatabaseError: std::error::Error + Send + Sync + 'static {
    /// The server's own words where the driver's `Display` hides them.
    fn detail(&self) -> String {
        self.to_string()
    }
}

#[cfg(feature = "sqlite")]
impl DatabaseError for rusqlite::Error {}

#[cfg(feature = "postgres")]
impl DatabaseError for tokio_postgres::Error {
    fn detail(&self) -> String {
        match self.as_db_error() {
            Some(db) => format!("{}: {}", db.severity(), db.message()),
            None => self.to_string(),
        }
    }
}
