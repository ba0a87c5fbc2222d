//! One transaction's statements: what each write sends, and what the rows it
//! got back (or a lookup in the same transaction) say it did.

use deadpool_postgres::Object;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::super::Shared;
use super::super::error::Server;
use super::super::params::{Params, ends_the_run};
use super::{Done, Effect, Outcome, Write};
use crate::durable::store::{SagaStatus, StoreError};

/// The prepared statements of one transaction, and what they all take.
#[derive(Clone, Copy)]
pub(super) struct Statements<'a> {
    pub(super) create: &'a tokio_postgres::Statement,
    pub(super) append: &'a tokio_postgres::Statement,
    pub(super) append_if: &'a tokio_postgres::Statement,
    pub(super) owner: &'a str,
    pub(super) lease_ms: f64,
}

impl Statements<'_> {
    /// Sends `write`'s one statement; its rows say what it did.
    pub(super) async fn run(
        self,
        client: &Object,
        write: &Write,
        p: &Params,
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        match write {
            Write::Create { saga, leased } => {
                let (holder, token) = if *leased {
                    (Some(self.owner), 1_i64)
                } else {
                    (None, 0)
                };
                let values: [&(dyn ToSql + Sync); 7] = [
                    &p.id,
                    &saga.saga_type,
                    &saga.fingerprint,
                    &saga.input,
                    &holder,
                    &token,
                    &self.lease_ms,
                ];
                client.query(self.create, &values).await
            }
            Write::Append { token, .. } => {
                let release = p.status.is_some_and(ends_the_run);
                let m = &p.messages;
                let values: [&(dyn ToSql + Sync); 17] = [
                    &p.id,
                    token,
                    &p.kinds,
                    &p.steps,
                    &p.attempts,
                    &p.payloads,
                    &p.notes,
                    &p.status,
                    &release,
                    &self.owner,
                    &m.ids,
                    &m.ords,
                    &m.ns,
                    &m.destinations,
                    &m.keys,
                    &m.payloads,
                    &m.created,
                ];
                client.query(self.append, &values).await
            }
            Write::AppendIf { status, .. } => {
                let to = p.status.unwrap_or(status.as_str());
                let m = &p.messages;
                let values: [&(dyn ToSql + Sync); 15] = [
                    &p.id,
                    &status.as_str(),
                    &p.kinds,
                    &p.steps,
                    &p.attempts,
                    &p.payloads,
                    &p.notes,
                    &to,
                    &m.ids,
                    &m.ords,
                    &m.ns,
                    &m.destinations,
                    &m.keys,
                    &m.payloads,
                    &m.created,
                ];
                client.query(self.append_if, &values).await
            }
        }
    }
}

/// What a write did, from the rows its statement returned; for one that wrote
/// nothing, why, looked up in the same transaction.
pub(super) async fn outcome(
    shared: &Shared,
    client: &Object,
    write: &Write,
    p: &Params,
    rows: &[Row],
) -> Result<Outcome, tokio_postgres::Error> {
    let server = &shared.server;
    let written = !rows.is_empty();
    Ok(match write {
        Write::Create { saga, leased } => {
            if written {
                let effect = match leased {
                    true => Effect::Hold(saga.id, rows[0].get(0)),
                    false => Effect::None,
                };
                (Ok(Done::Written), effect)
            } else {
                let error = StoreError::new(format!(
                    "{server}: saga {} already exists; a saga id is created once",
                    saga.id
                ));
                (Err(error), Effect::None)
            }
        }
        Write::Append { id, token, .. } if written => {
            let ends = p.status.is_some_and(ends_the_run);
            let effect = if ends {
                Effect::Drop(*id, *token)
            } else {
                Effect::None
            };
            (Ok(Done::Written), effect)
        }
        Write::Append { id, token, .. } => {
            let error = match lookup(shared, client, &p.id).await? {
                None => StoreError::new(format!(
                    "{server}: cannot append to saga {id}: no such saga in this store"
                )),
                Some((status, owner, now)) => {
                    let holder = match owner {
                        Some(owner) => format!("it is held by {owner} under token {now}"),
                        None => format!("it is held by nobody (status {status}, token {now})"),
                    };
                    let error = StoreError::lease_lost(format!(
                        "{server}: lease lost on saga {id}: this store ({}) wrote under \
                         token {token}, but {holder}; nothing was written: this store must \
                         stop driving the saga",
                        shared.owner
                    ));
                    tracing::warn!(saga = %id, %error, "sagaflow postgres: write fenced off");
                    error
                }
            };
            (Err(error), Effect::Drop(*id, *token))
        }
        Write::AppendIf { .. } if written => (Ok(Done::Written), Effect::None),
        Write::AppendIf { id, .. } => match lookup(shared, client, &p.id).await? {
            None => (Ok(Done::Skipped(None)), Effect::None),
            Some((word, _, _)) => match SagaStatus::parse(&word) {
                Some(status) => (Ok(Done::Skipped(Some(status))), Effect::None),
                None => {
                    let error = StoreError::new(format!(
                        "{server}: saga {id} has unknown status {word:?}; the store is \
                         damaged or was written by a newer sagaflow"
                    ));
                    (Err(error), Effect::None)
                }
            },
        },
    })
}

/// A saga's status, lease holder and token, as this transaction sees them.
async fn lookup(
    shared: &Shared,
    client: &Object,
    id: &str,
) -> Result<Option<(String, Option<String>, i64)>, tokio_postgres::Error> {
    let stmt = client.prepare_cached(&shared.sql.lookup).await?;
    let row = client.query_opt(&stmt, &[&id]).await?;
    Ok(row.map(|row| (row.get(0), row.get(1), row.get(2))))
}

/// The error for a write refused because one of its messages' ids is
/// already in the outbox, naming the id; `None` for any other error.
pub(super) fn duplicate_message(
    server: &Server,
    write: &Write,
    error: &tokio_postgres::Error,
) -> Option<StoreError> {
    let db = error.as_db_error()?;
    if *db.code() != SqlState::UNIQUE_VIOLATION || db.table() != Some("outbox") {
        return None;
    }
    // The server says which: "Key (id)=(<id>) already exists."
    let id = db
        .detail()
        .and_then(|d| d.strip_prefix("Key (id)=("))
        .and_then(|d| d.strip_suffix(") already exists."))
        .unwrap_or("?");
    Some(StoreError::new(format!(
        "{server}: {}: message id {id:?} is already in the outbox; a message id is sent \
         once (nothing of this write was stored)",
        describe(write)
    )))
}

/// What a write was trying to do, for the error that says it failed.
pub(super) fn describe(write: &Write) -> String {
    match write {
        Write::Create { saga, .. } => format!("cannot create saga {}", saga.id),
        Write::Append { id, entries, .. } => {
            format!("cannot append {} entries to saga {id}", entries.len())
        }
        Write::AppendIf { id, .. } => format!("cannot append to saga {id}"),
    }
}
