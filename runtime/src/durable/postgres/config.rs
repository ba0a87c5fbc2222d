//! How a store connects and leases.

use std::fmt;
use std::time::Duration;

/// How a [`PgStore`](super::PgStore) connects and leases: the server's URL and the knobs that
/// have a sensible default.
///
/// ```
/// use std::time::Duration;
/// use sagaflow::durable::PgConfig;
///
/// let config = PgConfig::new("postgres://sagaflow@127.0.0.1:5432/shop")
///     .schema("orders")
///     .lease(Duration::from_secs(10));
/// assert_eq!(config.lease_duration(), Duration::from_secs(10));
/// ```
#[derive(Clone)]
pub struct PgConfig {
    pub(super) url: String,
    pub(super) schema: String,
    pub(super) lease: Duration,
    pub(super) pool_size: usize,
    pub(super) reconnect_for: Duration,
    pub(super) connect_timeout: Duration,
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the URL: it may hold a password.
        f.debug_struct("PgConfig")
            .field("schema", &self.schema)
            .field("lease", &self.lease)
            .field("pool_size", &self.pool_size)
            .field("reconnect_for", &self.reconnect_for)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl PgConfig {
    /// Connects to `url`, a `postgres://user:password@host:port/database` URL
    /// or a `host=… dbname=…` string, as `libpq` reads them (no TLS). The
    /// defaults: schema `sagaflow`, 30 s leases, 8 connections, 60 s of
    /// reconnecting before a write fails, 10 s to connect.
    pub fn new(url: impl Into<String>) -> PgConfig {
        PgConfig {
            url: url.into(),
            schema: "sagaflow".to_owned(),
            lease: Duration::from_secs(30),
            pool_size: 8,
            reconnect_for: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// The PostgreSQL schema that holds the store's tables: created if missing;
    /// refused if it holds anything else. 1 to 63 lowercase ASCII letters,
    /// digits and `_`. One schema is one store: stores in two schemas of one
    /// database share nothing.
    pub fn schema(mut self, name: impl Into<String>) -> PgConfig {
        self.schema = name.into();
        self
    }

    /// How long a lease lasts unless renewed (renewed each third of it): how
    /// long a dead worker's sagas wait before another worker takes them up.
    /// At least 100 ms.
    pub fn lease(mut self, lease: Duration) -> PgConfig {
        self.lease = lease.max(Duration::from_millis(100));
        self
    }

    /// The lease length set.
    pub fn lease_duration(&self) -> Duration {
        self.lease
    }

    /// The most connections the store opens (one is the writer's). At least 2.
    pub fn pool_size(mut self, size: usize) -> PgConfig {
        self.pool_size = size.max(2);
        self
    }

    /// How long a read or write goes on trying after its connection failed,
    /// before it fails with an error naming the server.
    pub fn reconnect_for(mut self, time: Duration) -> PgConfig {
        self.reconnect_for = time;
        self
    }

    /// How long a connection attempt may take.
    pub fn connect_timeout(mut self, time: Duration) -> PgConfig {
        self.connect_timeout = time;
        self
    }
}
