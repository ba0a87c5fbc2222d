//! The PostgreSQL store ([`PgStore`]): its configuration, the writer and lease
//! tasks, reads and the schema. What it guarantees is documented on `PgStore`.

mod claim;
mod config;
mod error;
mod lease;
mod operate;
mod outbox;
mod params;
mod read;
mod schema;
mod sql;
mod writer;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, Object, Pool, Runtime};
use tokio::sync::{mpsc, oneshot};

pub use self::config::PgConfig;
use self::error::{Server, is_transient, pg_error};
use self::sql::Sql;
use self::writer::{Done, Request, Write};
use super::store::{
    Claims, Entry, NewSaga, SagaFilter, SagaRecord, SagaStatus, Store, StoreError, StoredSaga,
};
use crate::SagaId;

/// Sagas on a PostgreSQL server, shared by several worker processes through
/// leases with fencing tokens.
///
/// processes through leases with fencing tokens.
///
/// # Leases and fencing
///
/// Each `PgStore` is one *owner* (a random name made at connect). A saga is run
/// only under a lease: its row names the owner, the lease's expiry (server
/// time, so the workers' clocks do not matter) and a fencing token that grows by
/// one with every claim by another store. [`create`](Store::create) makes a saga leased to this
/// store; [`claim_unfinished`](Store::claim_unfinished) and
/// [`claim_runnable`](Store::claim_runnable) lease the running and confirming sagas that
/// nobody holds, whose lease expired, or that this store holds but no run in
/// this process drives (`FOR UPDATE SKIP LOCKED`: a claim never waits for
/// another worker's rows); [`submit`](Store::submit) makes one that
/// nobody holds yet. The store keeps the token of every saga it holds, and
/// every write of a transition checks it, with the owner, in the statement
/// that appends: a store whose lease was taken over (it was paused,
/// partitioned or slow past its lease) can never write for that saga again;
/// its write fails with [`StoreError::lease_lost`] and writes nothing.
///
/// A background task renews every held lease each third of the lease, in one
/// statement; a lease it finds taken over is dropped and logged. A saga that
/// ends (committed, compensated, parked) is let go in the statement that
/// writes its end; [`release`](Store::release) lets go of one at once, and
/// [`PgStore::close`] of all. A worker that dies holds its leases until they
/// expire, then another worker's claim takes its sagas up from their journals.
///
/// A person's intervention on a parked saga ([`append_if`](Store::append_if))
/// needs no lease: a parked saga is held by nobody, and the status check in
/// the appending statement decides between two at once.
///
/// # Group commit
///
/// One writer task per store owns a connection; every write is sent to it and
/// it takes everything that is waiting into one transaction, one statement per
/// write, sent together without waiting for each answer (pipelined), then one
/// commit. While one commit is in flight the next batch piles up.
///
/// # Durability
///
/// A write is acknowledged once PostgreSQL has committed it. What that means
/// after a crash is the server's `synchronous_commit` setting (the store does
/// not change it): with `on`, the default, the commit is flushed to the
/// server's write-ahead log on its disk, and survives a crash of the server or
/// its machine; with synchronous standbys, `remote_write`/`on`/`remote_apply`
/// also wait for them. With `off`, a server crash may lose the last commits
/// (about three times `wal_writer_delay`) but never leaves them half-written:
/// then a step that ran may run again on recovery, which its idempotency key
/// must absorb anyway.
///
/// # Lost connections
///
/// A write or read whose connection fails (the server restarted, the network
/// dropped) is tried again on a new connection, with backoff, for up to
/// [`PgConfig::reconnect_for`]; meanwhile the saga waits. A commit whose answer
/// was lost is looked up by its transaction id (`txid_status`) before anything
/// is retried, so a write is never acknowledged unless it committed and never
/// applied twice. When the time is up the write fails with an error naming the
/// server; the saga stops where it was, and recovery takes it up later.
///
/// # Schema
///
/// The store's tables live in a PostgreSQL schema of their own (`sagaflow`
/// unless [`PgConfig::schema`] says otherwise), created on first connect:
/// `sagaflow_meta` (an application marker and the schema version), `sagas` (one
/// row per saga: input, status, the journal's next sequence number, and the
/// lease: owner, token, expiry), `journal` (one row per transition) and
/// `outbox` (one row per message sent; see the [`Outbox`](crate::outbox::Outbox)
/// impl below). A
/// schema that holds other tables, or one written by a newer sagaflow, is
/// refused untouched. Connections use no TLS: run the store on a trusted
/// network or through a local proxy.
///
/// # Handles
///
/// Cheap to clone (an [`Arc`] inside); clones are one owner, with one writer
/// task, one lease task and one connection pool. The tasks run on the tokio
/// runtime that [`connect`](PgStore::connect) was called on; they stop when the
/// last clone is dropped, after committing what was sent to them. Dropping
/// does not let go of the leases (they expire): call [`close`](PgStore::close)
/// on a graceful shutdown, so that other workers take the sagas up at once.
///
/// ```no_run
/// use sagaflow::durable::{Executor, PgStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PgStore::connect("postgres://sagaflow@127.0.0.1:5432/shop").await?;
/// let executor = Executor::new(store.clone());
/// // Takes up the running sagas nobody holds, including those of dead workers.
/// let report = executor.recover().await?;
/// println!("{report}");
/// store.close().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

/// What the writer and lease tasks share with the store. They hold it, not
/// [`Inner`], so that dropping the last store closes their channels.
struct Shared {
    pool: Pool,
    server: Server,
    /// This store's name in the `owner` column.
    owner: String,
    lease: Duration,
    reconnect_for: Duration,
    /// The fencing token of every saga this store holds a lease on.
    held: Mutex<HashMap<SagaId, i64>>,
    claims: Claims,
    sql: Sql,
}

struct Inner {
    shared: Arc<Shared>,
    writes: mpsc::UnboundedSender<Request>,
    releases: mpsc::UnboundedSender<lease::Message>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.inner.shared;
        f.debug_struct("PgStore")
            .field("server", &shared.server.to_string())
            .field("owner", &shared.owner)
            .field("lease", &shared.lease)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the server at `url` with the defaults of [`PgConfig::new`].
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        PgStore::connect_with(PgConfig::new(url)).await
    }

    /// Connects as `config` says, then creates or migrates the store's schema
    /// and starts the writer and lease tasks on the current tokio runtime.
    ///
    /// Fails, naming the server and what is wrong, if the URL does not parse,
    /// the server cannot be reached (no retry here: a wrong address should be
    /// said at once), the schema holds something else or a newer version.
    pub async fn connect_with(config: PgConfig) -> Result<PgStore, StoreError> {
        let mut pg = tokio_postgres::Config::from_str(&config.url).map_err(|e| {
            StoreError::new(format!(
                "sagaflow store: the PostgreSQL URL does not parse ({e}); write it as \
                 postgres://user:password@host:port/database"
            ))
        })?;
        let server = Server::new(&pg, &config.schema);
        schema::check_name(&config.schema)
            .map_err(|why| StoreError::new(format!("{server}: {why}")))?;
        pg.connect_timeout(config.connect_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("sagaflow");
        }
        let pool = Pool::builder(Manager::new(pg, tokio_postgres::NoTls))
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(config.connect_timeout))
            .wait_timeout(Some(config.reconnect_for))
            .build()
            .map_err(|e| {
                StoreError::new(format!("{server}: cannot make the connection pool: {e}"))
            })?;
        let mut client = pool.get().await.map_err(|e| {
            let detail = match &e {
                deadpool_postgres::PoolError::Backend(e) => {
                    pg_error(&server, "cannot connect", e).message().to_owned()
                }
                other => format!("{server}: cannot connect: {other}"),
            };
            StoreError::new(format!(
                "{detail}; check that the server is running, listens on that address and \
                 accepts this user"
            ))
        })?;
        schema::prepare(&mut client, &server).await?;
        drop(client);

        let owner = format!(
            "{}-{}-{:08x}",
            hostname(),
            std::process::id(),
            fastrand::u32(..)
        );
        let sql = Sql::new(&server.quoted_schema());
        let shared = Arc::new(Shared {
            pool,
            server,
            owner,
            lease: config.lease,
            reconnect_for: config.reconnect_for,
            held: Mutex::new(HashMap::new()),
            claims: Claims::new(),
            sql,
        });
        let (writes, write_rx) = mpsc::unbounded_channel();
        let (releases, release_rx) = mpsc::unbounded_channel();
        tokio::spawn(writer::run(shared.clone(), write_rx));
        tokio::spawn(lease::run(shared.clone(), release_rx));
        Ok(PgStore {
            inner: Arc::new(Inner {
                shared,
                writes,
                releases,
            }),
        })
    }

    /// The server, database and schema, as errors name them (no credentials).
    pub fn server(&self) -> String {
        self.inner.shared.server.to_string()
    }

    /// This store's owner name, as the `owner` column of the sagas it holds
    /// shows it: host, process id and a random part.
    pub fn owner(&self) -> &str {
        &self.inner.shared.owner
    }

    /// The lease length.
    pub fn lease(&self) -> Duration {
        self.inner.shared.lease
    }

    /// The fencing token under which this store holds saga `id`, or `None` if
    /// it holds no lease on it.
    pub fn token(&self, id: SagaId) -> Option<u64> {
        lock(&self.inner.shared.held)
            .get(&id)
            .map(|&t| t.unsigned_abs())
    }

    /// The sagas this store holds a lease on, with their tokens.
    pub fn held(&self) -> Vec<(SagaId, u64)> {
        let mut held: Vec<_> = lock(&self.inner.shared.held)
            .iter()
            .map(|(&id, &t)| (id, t.unsigned_abs()))
            .collect();
        held.sort();
        held
    }

    /// Lets go of every lease this store holds, now: for a graceful shutdown,
    /// once no saga runs under this store any more, so that other workers take
    /// the sagas up at once instead of at expiry. Writes for them fail after.
    pub async fn close(&self) -> Result<(), StoreError> {
        let ids: Vec<SagaId> = lock(&self.inner.shared.held)
            .drain()
            .map(|(id, _)| id)
            .collect();
        let (ack, done) = oneshot::channel();
        self.inner
            .releases
            .send(lease::Message::Release(ids, Some(ack)))
            .map_err(|_| self.stopped("lease"))?;
        done.await.map_err(|_| self.stopped("lease"))?
    }

    fn stopped(&self, which: &str) -> StoreError {
        StoreError::new(format!(
            "{}: the {which} task has stopped (its tokio runtime shut down?); connect again",
            self.inner.shared.server
        ))
    }

    /// Sends one write to the writer and waits until it is committed.
    async fn write(&self, write: Write) -> Result<Done, StoreError> {
        let (ack, done) = oneshot::channel();
        self.inner
            .writes
            .send(Request { write, ack })
            .map_err(|_| self.stopped("writer"))?;
        done.await.map_err(|_| self.stopped("writer"))?
    }

    /// The token under which to write for saga `id`, or the error saying that
    /// this store holds no lease on it.
    fn token_for(&self, id: SagaId) -> Result<i64, StoreError> {
        let shared = &self.inner.shared;
        lock(&shared.held).get(&id).copied().ok_or_else(|| {
            StoreError::lease_lost(format!(
                "{}: cannot write for saga {id}: this store ({}) holds no lease on it (it \
                 was released, ended, or taken over by another worker); nothing was written",
                shared.server, shared.owner
            ))
        })
    }

    async fn create_as(&self, saga: NewSaga, leased: bool) -> Result<(), StoreError> {
        self.write(Write::Create { saga, leased }).await.map(drop)
    }

    async fn append_entries(&self, id: SagaId, entries: Vec<Entry>) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let token = self.token_for(id)?;
        self.write(Write::Append { id, token, entries })
            .await
            .map(drop)
    }
}

impl Store for PgStore {
    /// Leased to this store: the caller runs it.
    async fn create(&self, saga: NewSaga) -> Result<(), StoreError> {
        self.create_as(saga, true).await
    }

    async fn submit(&self, saga: NewSaga) -> Result<(), StoreError> {
        self.create_as(saga, false).await
    }

    async fn append(&self, id: SagaId, entry: Entry) -> Result<(), StoreError> {
        self.append_entries(id, vec![entry]).await
    }

    async fn append_all(&self, id: SagaId, entries: Vec<Entry>) -> Result<(), StoreError> {
        self.append_entries(id, entries).await
    }

    /// Checked in the statement that appends; needs no lease.
    async fn append_if(
        &self,
        id: SagaId,
        status: SagaStatus,
        entry: Entry,
    ) -> Result<Result<(), Option<SagaStatus>>, StoreError> {
        Ok(
            match self.write(Write::AppendIf { id, status, entry }).await? {
                Done::Written => Ok(()),
                Done::Skipped(found) => Err(found),
            },
        )
    }

    async fn claim_unfinished(&self) -> Result<Vec<SagaRecord>, StoreError> {
        self.claim(i64::MAX).await
    }

    async fn claim_runnable(&self, limit: usize) -> Result<Vec<SagaRecord>, StoreError> {
        self.claim(i64::try_from(limit).unwrap_or(i64::MAX)).await
    }

    fn release(&self, id: SagaId) {
        if lock(&self.inner.shared.held).remove(&id).is_some() {
            // The store may be going away; then the lease expires instead.
            let _ = self
                .inner
                .releases
                .send(lease::Message::Release(vec![id], None));
        }
    }

    /// One set for every clone.
    fn claims(&self) -> Option<&Claims> {
        Some(&self.inner.shared.claims)
    }

    async fn get(&self, id: SagaId) -> Result<Option<SagaRecord>, StoreError> {
        Ok(read::get(&self.inner.shared, id).await?.pop())
    }

    async fn with_status(&self, status: SagaStatus) -> Result<Vec<SagaRecord>, StoreError> {
        read::with_status(&self.inner.shared, status).await
    }

    async fn list(&self, filter: SagaFilter) -> Result<Vec<StoredSaga>, StoreError> {
        operate::list(&self.inner.shared, &filter).await
    }

    async fn history(&self, id: SagaId) -> Result<Option<StoredSaga>, StoreError> {
        operate::history(&self.inner.shared, id).await
    }

    /// Deletes the finished sagas (committed, compensated, resolved) whose
    /// status last changed before `finished_before`, with their journals, in
    /// one statement; running and parked sagas are never purged.
    async fn purge(
        &self,
        finished_before: std::time::SystemTime,
        dry_run: bool,
    ) -> Result<Vec<SagaId>, StoreError> {
        operate::purge(&self.inner.shared, finished_before, dry_run).await
    }
}

/// Runs `query` on a pooled connection; on a connection failure, again on a new
/// one with backoff, until [`PgConfig::reconnect_for`] has passed. For reads
/// and single statements whose repetition is harmless (a claim repeated takes
/// more leases, none twice; a renewal renews).
async fn retrying<T, F, Fut>(shared: &Shared, doing: &str, mut query: F) -> Result<T, StoreError>
where
    F: FnMut(Object) -> Fut,
    Fut: core::future::Future<Output = Result<T, tokio_postgres::Error>>,
{
    let deadline = tokio::time::Instant::now() + shared.reconnect_for;
    let mut backoff = Backoff::new();
    loop {
        let error = match connection(shared).await {
            Ok(client) => match query(client).await {
                Ok(value) => return Ok(value),
                Err(e) if is_transient(&e) => pg_error(&shared.server, doing, &e),
                Err(e) => return Err(pg_error(&shared.server, doing, &e)),
            },
            Err(e) => e,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::new(format!(
                "{}; gave up after {:?} of retrying",
                error.message(),
                shared.reconnect_for
            )));
        }
        tracing::warn!(%error, "sagaflow postgres: retrying");
        backoff.wait().await;
    }
}

/// A pooled connection, or the error saying why there is none.
async fn connection(shared: &Shared) -> Result<Object, StoreError> {
    shared.pool.get().await.map_err(|e| match e {
        deadpool_postgres::PoolError::Backend(e) => pg_error(&shared.server, "cannot connect", &e),
        other => StoreError::new(format!("{}: cannot connect: {other}", shared.server)),
    })
}

/// Exponential backoff with jitter, from 20 ms to 2 s.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(Duration::from_millis(20))
    }

    async fn wait(&mut self) {
        let jitter = 0.5 + fastrand::f64() / 2.0;
        tokio::time::sleep(self.0.mul_f64(jitter)).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(2));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Maps updated in one step each: a panic elsewhere cannot leave them torn.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// This machine's name, for the owner column (a person reading the table
/// wants to know which worker holds what).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned())
}
