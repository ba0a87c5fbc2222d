//! The writer task: group commit over one connection, fencing in every append,
//! and retries that never acknowledge what did not commit.

use std::sync::Arc;

use deadpool_postgres::Object;
use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::error::SqlState;

use super::error::{is_transient, pg_error};
use super::params::Params;
use super::{Backoff, Shared, connection, lock};
use crate::SagaId;
use crate::durable::store::{Entry, NewSaga, SagaStatus, StoreError};

mod statements;

use statements::{Statements, describe, duplicate_message, outcome};

/// The most writes committed in one transaction: bounds the latency of the
/// first waiter of a batch and the size of one commit.
const MAX_BATCH: usize = 512;

/// One write, as the store sends it.
pub(super) enum Write {
    /// A new saga; leased to this store if `leased`, else held by nobody.
    Create { saga: NewSaga, leased: bool },
    /// Transitions of a saga this store holds under `token`, all or none.
    Append {
        id: SagaId,
        token: i64,
        entries: Vec<Entry>,
    },
    /// A transition of a saga whose status is `status`, under no lease.
    AppendIf {
        id: SagaId,
        status: SagaStatus,
        entry: Entry,
    },
}

/// What a write did, once committed.
#[derive(Debug)]
pub(super) enum Done {
    Written,
    /// A conditional append found the saga missing (`None`) or with another
    /// status, and wrote nothing.
    Skipped(Option<SagaStatus>),
}

pub(super) struct Request {
    pub(super) write: Write,
    pub(super) ack: oneshot::Sender<Result<Done, StoreError>>,
}

/// What a committed write changes in the store's map of held leases.
#[derive(Debug, Clone, Copy)]
enum Effect {
    None,
    /// Now held under this token.
    Hold(SagaId, i64),
    /// No longer held (ended, or taken over), if still under this token.
    Drop(SagaId, i64),
}

type Outcome = (Result<Done, StoreError>, Effect);

/// Commits what is sent, in batches, until every store clone is gone and what
/// was sent is answered.
pub(super) async fn run(shared: Arc<Shared>, mut requests: mpsc::UnboundedReceiver<Request>) {
    let mut client: Option<Object> = None;
    while let Some(first) = requests.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let writes: Vec<&Write> = batch.iter().map(|r| &r.write).collect();
        let params: Vec<Params> = writes.iter().map(|w| Params::of(w)).collect();
        let outcomes = commit_isolating(&shared, &mut client, &writes, &params).await;
        {
            let mut held = lock(&shared.held);
            for (_, effect) in &outcomes {
                match *effect {
                    Effect::None => {}
                    Effect::Hold(id, token) => {
                        held.insert(id, token);
                    }
                    Effect::Drop(id, token) => {
                        if held.get(&id) == Some(&token) {
                            held.remove(&id);
                        }
                    }
                }
            }
        }
        for (request, (result, _)) in batch.into_iter().zip(outcomes) {
            // The waiter may have gone away; the write stands regardless.
            let _ = request.ack.send(result);
        }
    }
}

/// Commits `writes` in one transaction; if a statement fails on its own
/// account (not the connection's), commits each write alone so that only the
/// failing one fails.
async fn commit_isolating(
    shared: &Shared,
    client: &mut Option<Object>,
    writes: &[&Write],
    params: &[Params],
) -> Vec<Outcome> {
    match commit(shared, client, writes, params).await {
        Ok(outcomes) => outcomes,
        Err(Failed::GaveUp(error)) => writes
            .iter()
            .map(|_| (Err(error.clone()), Effect::None))
            .collect(),
        Err(Failed::Statement(error)) if writes.len() == 1 => vec![(Err(error), Effect::None)],
        Err(Failed::Statement(_)) => {
            let mut outcomes = Vec::with_capacity(writes.len());
            for (write, params) in writes.iter().zip(params) {
                let one = std::slice::from_ref(write);
                match commit(shared, client, one, std::slice::from_ref(params)).await {
                    Ok(mut done) => outcomes.push(done.remove(0)),
                    Err(Failed::GaveUp(error) | Failed::Statement(error)) => {
                        outcomes.push((Err(error), Effect::None));
                    }
                }
            }
            outcomes
        }
    }
}

/// Why a commit did not happen.
enum Failed {
    /// A statement failed on its own account; nothing was committed.
    Statement(StoreError),
    /// The connection kept failing until `reconnect_for` passed; nothing was
    /// committed, or whether it was could not be learnt (the error says which).
    GaveUp(StoreError),
}

/// How one try ended, when it did not commit.
enum Broken {
    /// The connection failed before the commit was sent: nothing committed.
    Before(StoreError),
    /// The connection failed after the commit was sent: it committed if
    /// transaction `xid` did; then these are the writes' outcomes.
    AtCommit(StoreError, i64, Vec<Outcome>),
    Statement(StoreError),
}

/// Commits `writes` in one transaction, trying again on a new connection while
/// the connection fails, for up to `reconnect_for`.
async fn commit(
    shared: &Shared,
    client: &mut Option<Object>,
    writes: &[&Write],
    params: &[Params],
) -> Result<Vec<Outcome>, Failed> {
    let deadline = tokio::time::Instant::now() + shared.reconnect_for;
    let mut backoff = Backoff::new();
    loop {
        let error = match client {
            None => match connection(shared).await {
                Ok(new) => {
                    *client = Some(new);
                    continue;
                }
                Err(error) => error,
            },
            Some(conn) => match try_commit(shared, conn, writes, params).await {
                Ok(outcomes) => return Ok(outcomes),
                Err(Broken::Statement(error)) => {
                    // Leave the connection out of its failed transaction.
                    if conn.batch_execute("ROLLBACK").await.is_err() {
                        *client = None;
                    }
                    return Err(Failed::Statement(error));
                }
                Err(Broken::Before(error)) => {
                    *client = None;
                    error
                }
                Err(Broken::AtCommit(error, xid, outcomes)) => {
                    *client = None;
                    match committed(shared, xid, deadline).await {
                        Ok(true) => return Ok(outcomes),
                        Ok(false) => error,
                        Err(unknown) => {
                            return Err(Failed::GaveUp(StoreError::new(format!(
                                "{}; then the connection failed as the commit was sent, and \
                                 whether it committed could not be learnt ({}); recovery will \
                                 find out from the journal",
                                error.message(),
                                unknown.message()
                            ))));
                        }
                    }
                }
            },
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(Failed::GaveUp(StoreError::new(format!(
                "{}; gave up after {:?} of retrying; nothing of this write was committed",
                error.message(),
                shared.reconnect_for
            ))));
        }
        tracing::warn!(%error, "sagaflow postgres: write retried on a new connection");
        backoff.wait().await;
    }
}

/// Whether transaction `xid`, whose commit's answer was lost, committed.
async fn committed(
    shared: &Shared,
    xid: i64,
    deadline: tokio::time::Instant,
) -> Result<bool, StoreError> {
    let mut backoff = Backoff::new();
    loop {
        let error = match connection(shared).await {
            Ok(client) => match client.query_one("SELECT txid_status($1)", &[&xid]).await {
                Ok(row) => match row.get::<_, Option<&str>>(0) {
                    Some("committed") => return Ok(true),
                    Some("aborted") => return Ok(false),
                    // "in progress": the server has not finished it yet.
                    _ => StoreError::new(format!("transaction {xid} is still in progress")),
                },
                Err(e) => pg_error(&shared.server, "cannot look up the commit", &e),
            },
            Err(error) => error,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(error);
        }
        backoff.wait().await;
    }
}

/// One transaction: `BEGIN`, the transaction id, every write's statement, sent
/// together; then the look-ups for writes that wrote nothing; then `COMMIT`.
async fn try_commit(
    shared: &Shared,
    client: &Object,
    writes: &[&Write],
    params: &[Params],
) -> Result<Vec<Outcome>, Broken> {
    let server = &shared.server;
    let classify = |doing: &str, e: &tokio_postgres::Error| {
        let error = pg_error(server, doing, e);
        if is_transient(e) {
            Broken::Before(error)
        } else {
            Broken::Statement(error)
        }
    };
    let sql = &shared.sql;
    let (create, append, append_if) = futures_util::future::try_join3(
        client.prepare_cached(&sql.create),
        client.prepare_cached(&sql.append),
        client.prepare_cached(&sql.append_if),
    )
    .await
    .map_err(|e| classify("cannot prepare the statements", &e))?;
    let lease_ms = shared.lease.as_secs_f64() * 1000.0;
    let owner = shared.owner.as_str();

    let begin = client.batch_execute("BEGIN");
    let xid = client.query_one("SELECT txid_current()", &[]);
    let statements = writes.iter().zip(params).map(|(write, p)| {
        let stmts = Statements {
            create: &create,
            append: &append,
            append_if: &append_if,
            owner,
            lease_ms,
        };
        async move { stmts.run(client, write, p).await }
    });
    let (begun, xid, results) = futures_util::future::join3(begin, xid, join_all(statements)).await;
    begun.map_err(|e| classify("cannot begin a transaction", &e))?;
    // The first failure is the cause; the ones after it only say that the
    // transaction was aborted.
    let mut rows = Vec::with_capacity(results.len());
    let mut aborted = None;
    for (result, write) in results.into_iter().zip(writes) {
        match result {
            Ok(r) => rows.push(r),
            Err(e) if e.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION) => {
                aborted.get_or_insert(e);
            }
            Err(e) => match duplicate_message(server, write, &e) {
                Some(error) => return Err(Broken::Statement(error)),
                None => return Err(classify(&describe(write), &e)),
            },
        }
    }
    // After the statements: `txid_current()` is prepared first, so it may run
    // after a statement that failed, and then fail only because that did.
    let xid: i64 = xid
        .map_err(|e| classify("cannot begin a transaction", &e))?
        .get(0);
    if let Some(e) = aborted {
        // Aborted with no failure of its own: the connection was left in a
        // failed transaction. Start again on a new one.
        return Err(Broken::Before(pg_error(
            server,
            "the transaction was aborted",
            &e,
        )));
    }
    let mut outcomes = Vec::with_capacity(writes.len());
    for ((write, p), rows) in writes.iter().zip(params).zip(rows) {
        outcomes.push(
            outcome(shared, client, write, p, &rows)
                .await
                .map_err(|e| classify("cannot look up a saga", &e))?,
        );
    }
    match client.batch_execute("COMMIT").await {
        Ok(()) => Ok(outcomes),
        Err(e) if is_transient(&e) => Err(Broken::AtCommit(
            pg_error(server, "cannot commit", &e),
            xid,
            outcomes,
        )),
        Err(e) => Err(Broken::Statement(pg_error(server, "cannot commit", &e))),
    }
}
