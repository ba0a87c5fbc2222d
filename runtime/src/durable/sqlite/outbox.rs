//! The outbox in the SQLite file: the `outbox` table, its rows written with
//! the journal entries that carry them, and [`Outbox`] for [`SqliteStore`].

use std::path::Path;
use std::time::Duration;

use rusqlite::{ErrorCode, Transaction, params};

use super::read::Reader;
use super::writer::{Done, Failure, Write};
use super::{SqliteStore, id_text, millis, sql_error, time_of};
use crate::SagaId;
use crate::durable::outbox_rows::{Candidate, pending, pick};
use crate::durable::rows::parse_id;
use crate::durable::store::StoreError;
use crate::outbox::{
    ClaimedMessages, Message, MessageFilter, MessageState, Outbox, Settlement, StoredMessage,
};

/// Schema version 2: the outbox table. `rowid` is the order messages were
/// written in, which is the order sagas take their turns in a claim.
pub(super) const MIGRATION: &str = "
     CREATE TABLE IF NOT EXISTS outbox (
         id           TEXT PRIMARY KEY NOT NULL, -- Message::id, unique in the store
         saga_id      TEXT NOT NULL,
         seq          INTEGER NOT NULL,          -- journal seq of the `sent` entry
         n            INTEGER NOT NULL,          -- position in that entry, from 0
         destination  TEXT NOT NULL,
         key          TEXT,
         payload      BLOB NOT NULL,             -- JSON
         created_ms   INTEGER NOT NULL,          -- Unix milliseconds, as made
         state        TEXT NOT NULL,             -- MessageState::as_str
         attempts     INTEGER NOT NULL,
         available_at INTEGER NOT NULL,          -- Unix ms: not claimed before
         lease_token  INTEGER,                   -- the claim holding it, if any
         lease_until  INTEGER,                   -- Unix ms: the lease's end
         last_error   TEXT,
         delivered_at INTEGER                    -- Unix ms
     );
     CREATE UNIQUE INDEX IF NOT EXISTS outbox_order ON outbox (saga_id, seq, n);
     CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (saga_id, seq, n) WHERE state = 'pending';
     CREATE INDEX IF NOT EXISTS outbox_by_state ON outbox (state);";

/// An outbox write, done by the writer in its transaction.
pub(super) enum OutboxWrite {
    /// Leases up to `limit` messages under `token` until `lease_ms` from now.
    Claim {
        limit: usize,
        lease_ms: i64,
        token: i64,
    },
    /// Settles messages leased under `token`.
    Settle {
        token: i64,
        settlements: Vec<Settlement>,
    },
    /// Makes a dead message pending again.
    Resend(String),
}

/// Stores the messages of the `sent` entry `seq` of saga `id`, pending from
/// `now`. A message id already in the outbox fails the whole write (its
/// transaction is rolled back and the batch tried without it).
pub(super) fn insert(
    tx: &Transaction<'_>,
    path: &Path,
    id: SagaId,
    seq: i64,
    messages: &[Message],
    now: i64,
) -> Result<(), Failure> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO outbox (id, saga_id, seq, n, destination, key, payload, created_ms,
                                 state, attempts, available_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', 0, ?9)",
        )
        .map_err(|e| Failure::Statement(sql_error(path, "cannot store messages", &e), false))?;
    for (n, message) in messages.iter().enumerate() {
        let created = i64::try_from(message.created_ms).unwrap_or(i64::MAX);
        let values = params![
            message.id,
            id_text(id),
            seq,
            n as i64,
            message.destination,
            message.key,
            message.payload,
            created,
            now
        ];
        if let Err(e) = stmt.execute(values) {
            let shown = path.display();
            let error = match e.sqlite_error_code() {
                Some(ErrorCode::ConstraintViolation) => StoreError::new(format!(
                    "sagaflow store {shown}: saga {id}, journal entry {seq}: message id {:?} \
                     is already in the outbox; a message id is sent once (nothing of this \
                     write was stored)",
                    message.id
                )),
                _ => sql_error(
                    path,
                    &format!("cannot store message {:?} of saga {id}", message.id),
                    &e,
                ),
            };
            let own = matches!(
                e.sqlite_error_code(),
                Some(ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch)
            );
            return Err(Failure::Statement(error, own));
        }
    }
    Ok(())
}

/// Does an outbox write in the writer's transaction.
pub(super) fn apply(
    tx: &Transaction<'_>,
    path: &Path,
    write: &OutboxWrite,
    now: i64,
) -> Result<Done, Failure> {
    let fail = |doing: String| {
        move |e: rusqlite::Error| Failure::Statement(sql_error(path, &doing, &e), false)
    };
    match write {
        OutboxWrite::Claim {
            limit,
            lease_ms,
            token,
        } => {
            let sagas = claimable_sagas(tx, path, *limit, now)
                .map_err(fail("cannot claim messages".into()))?;
            let mut candidates = Vec::with_capacity(sagas.len());
            for saga in sagas {
                candidates.push(pending_of(tx, path, &saga, now)?);
            }
            let messages = pick(candidates, *limit);
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE outbox SET lease_token = ?2, lease_until = ?3 WHERE id = ?1",
                )
                .map_err(fail("cannot lease messages".into()))?;
            let until = now.saturating_add(*lease_ms);
            for message in &messages {
                stmt.execute(params![message.message.id, token, until])
                    .map_err(fail("cannot lease messages".into()))?;
            }
            Ok(Done::Claimed(ClaimedMessages {
                token: *token as u64,
                messages,
            }))
        }
        OutboxWrite::Settle { token, settlements } => {
            for settlement in settlements {
                settle(tx, *token, settlement, now)
                    .map_err(fail("cannot settle messages".into()))?;
            }
            Ok(Done::Written)
        }
        OutboxWrite::Resend(id) => {
            let changed = tx
                .prepare_cached(
                    "UPDATE outbox SET state = 'pending', attempts = 0, available_at = ?2,
                                       lease_token = NULL, lease_until = NULL
                     WHERE id = ?1 AND state = 'dead'",
                )
                .and_then(|mut stmt| stmt.execute(params![id, now]))
                .map_err(fail(format!("cannot resend message {id:?}")))?;
            Ok(Done::Resent(changed > 0))
        }
    }
}

/// The sagas whose earliest pending message may be leased now, in the order
/// their first pending message was written, at most `limit`.
fn claimable_sagas(
    tx: &Transaction<'_>,
    path: &Path,
    limit: usize,
    now: i64,
) -> rusqlite::Result<Vec<SagaId>> {
    let mut stmt = tx.prepare_cached(
        "SELECT o.saga_id FROM outbox AS o
         WHERE o.state = 'pending' AND o.available_at <= ?1
           AND (o.lease_until IS NULL OR o.lease_until <= ?1)
           AND NOT EXISTS (SELECT 1 FROM outbox AS e
                           WHERE e.saga_id = o.saga_id AND e.state = 'pending'
                             AND (e.seq, e.n) < (o.seq, o.n))
         ORDER BY o.rowid LIMIT ?2",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let texts = stmt
        .query_map(params![now, limit], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    let store = format!("sagaflow store {}", path.display());
    texts
        .iter()
        .map(|text| {
            parse_id(&store, "file", text).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    0,
                    rusqlite::types::Type::Text,
                    e.message().into(),
                )
            })
        })
        .collect()
}

/// Every pending message of saga `id`, in order, with whether it may be
/// leased now.
fn pending_of(
    tx: &Transaction<'_>,
    path: &Path,
    id: &SagaId,
    now: i64,
) -> Result<Vec<Candidate>, Failure> {
    let fail = |e: rusqlite::Error| {
        Failure::Statement(
            sql_error(path, &format!("cannot read the messages of saga {id}"), &e),
            false,
        )
    };
    let mut stmt = tx
        .prepare_cached(
            "SELECT seq, id, destination, key, payload, created_ms, attempts,
                    available_at <= ?2 AND (lease_until IS NULL OR lease_until <= ?2)
             FROM outbox WHERE saga_id = ?1 AND state = 'pending' ORDER BY seq, n",
        )
        .map_err(fail)?;
    let rows = stmt
        .query_map(params![id_text(*id), now], |row| {
            Ok(Candidate {
                message: pending(
                    *id,
                    row.get::<_, i64>(0)? as u64,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get::<_, i64>(5)? as u64,
                    row.get::<_, i64>(6)? as u32,
                ),
                claimable: row.get(7)?,
            })
        })
        .map_err(fail)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(fail)
}

/// Records one settlement, if the message is still leased under `token`.
fn settle(
    tx: &Transaction<'_>,
    token: i64,
    settlement: &Settlement,
    now: i64,
) -> rusqlite::Result<usize> {
    use rusqlite::types::Value;
    // Every settlement gives the lease up; the state, the attempts, the
    // backoff and the error change as its kind says (`?3`, `?4` its values).
    let (id, set, values): (&str, &str, Vec<Value>) = match settlement {
        Settlement::Delivered { id } => (
            id,
            "state = 'delivered', delivered_at = ?3,",
            vec![now.into()],
        ),
        Settlement::Retry {
            id,
            error,
            retry_at,
        } => (
            id,
            "attempts = attempts + 1, last_error = ?3, available_at = ?4,",
            vec![error.clone().into(), millis(*retry_at).into()],
        ),
        Settlement::Dead { id, error } => (
            id,
            "state = 'dead', attempts = attempts + 1, last_error = ?3,",
            vec![error.clone().into()],
        ),
        Settlement::Released { id } => (id, "", Vec::new()),
    };
    let sql = format!(
        "UPDATE outbox SET {set} lease_token = NULL, lease_until = NULL
         WHERE id = ?1 AND lease_token = ?2 AND state = 'pending'"
    );
    let mut params: Vec<Value> = vec![id.to_owned().into(), token.into()];
    params.extend(values);
    tx.prepare_cached(&sql)?
        .execute(rusqlite::params_from_iter(params))
}

impl Reader {
    /// The messages `filter` matches: sagas in the order of their first
    /// message, each in message order.
    pub(super) fn messages(
        &mut self,
        filter: &MessageFilter,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let path = self.path.as_path();
        let fail = |e: rusqlite::Error| sql_error(path, "cannot read the outbox", &e);
        let mut conditions = Vec::new();
        let mut values: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(state) = filter.state {
            values.push(state.as_str().to_owned().into());
            conditions.push(format!("state = ?{}", values.len()));
        }
        if let Some(id) = filter.saga_id {
            values.push(id_text(id).into());
            conditions.push(format!("saga_id = ?{}", values.len()));
        }
        let limit = filter
            .limit
            .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        values.push(limit.into());
        let condition = match conditions.is_empty() {
            true => String::new(),
            false => format!("WHERE {}", conditions.join(" AND ")),
        };
        let sql = format!(
            "SELECT saga_id, seq, id, destination, key, payload, created_ms, state, attempts,
                    last_error, delivered_at
             FROM (SELECT *, min(rowid) OVER (PARTITION BY saga_id) AS first
                   FROM outbox {condition})
             ORDER BY first, seq, n LIMIT ?{}",
            values.len()
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(fail)?;
        let params: Vec<&dyn rusqlite::ToSql> =
            values.iter().map(|v| v as &dyn rusqlite::ToSql).collect();
        let mut rows = stmt.query(params.as_slice()).map_err(fail)?;
        let store = format!("sagaflow store {}", path.display());
        let mut found = Vec::new();
        while let Some(row) = rows.next().map_err(fail)? {
            let saga_id = parse_id(&store, "file", &row.get::<_, String>(0).map_err(fail)?)?;
            let word: String = row.get(7).map_err(fail)?;
            let id: String = row.get(2).map_err(fail)?;
            let state = MessageState::parse(&word).ok_or_else(|| {
                StoreError::new(format!(
                    "{store}: message {id:?} has unknown state {word:?}; the file is damaged \
                     or was written by a newer sagaflow"
                ))
            })?;
            let message = pending(
                saga_id,
                row.get::<_, i64>(1).map_err(fail)? as u64,
                id,
                row.get(3).map_err(fail)?,
                row.get(4).map_err(fail)?,
                row.get(5).map_err(fail)?,
                row.get::<_, i64>(6).map_err(fail)? as u64,
                row.get::<_, i64>(8).map_err(fail)? as u32,
            );
            found.push(StoredMessage {
                saga_id,
                seq: message.seq,
                message: message.message,
                state,
                attempts: message.attempts,
                last_error: row.get(9).map_err(fail)?,
                delivered_at: row.get::<_, Option<i64>>(10).map_err(fail)?.map(time_of),
            });
        }
        Ok(found)
    }
}

/// The outbox of a SQLite store: the table `outbox` in the store's file.
///
/// One row per message, written in the same transaction as the journal entry
/// of kind `sent` that carries it (so a message is stored if and only if the
/// transition that made it is): `id` (the [`Message::id`], unique), `saga_id`,
/// `seq` (the journal position of that entry: a saga's order), `n` (the
/// message's position in the entry), `destination`, `key`, `payload` (JSON),
/// `created_ms`, and its delivery: `state`, `attempts`, `available_at` (not
/// claimed before; a failed delivery's backoff), `lease_token` and
/// `lease_until` (the claim holding it), `last_error`, `delivered_at`.
///
/// States: `pending` waits for a relay (again after a failure, once its
/// backoff has passed); `delivered` was acknowledged by the sink; `dead`
/// failed as often as the relay allows and waits for a person
/// ([`resend`](Outbox::resend)).
///
/// Order: a claim leases a saga's pending messages from its earliest on,
/// whole transitions at a time, and stops at the first one in backoff or
/// leased to another claim, so a saga's messages leave in order and never
/// from two relays at once; sagas take turns in the order their first
/// pending message was written. A dead message no longer holds its saga's
/// later messages back. Times are the local clock's; claims go through the
/// store's writer, one at a time.
impl Outbox for SqliteStore {
    async fn claim_messages(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<ClaimedMessages, StoreError> {
        if limit == 0 {
            return Ok(ClaimedMessages::default());
        }
        let write = OutboxWrite::Claim {
            limit,
            lease_ms: i64::try_from(lease.as_millis()).unwrap_or(i64::MAX),
            // Never 0, so that a default `ClaimedMessages` proves nothing.
            token: fastrand::i64(1..),
        };
        match self.write(Write::Outbox(write)).await? {
            Done::Claimed(claimed) => Ok(claimed),
            other => Err(unexpected(self, &other)),
        }
    }

    async fn settle_messages(
        &self,
        token: u64,
        settlements: Vec<Settlement>,
    ) -> Result<(), StoreError> {
        if settlements.is_empty() {
            return Ok(());
        }
        let write = OutboxWrite::Settle {
            token: token as i64,
            settlements,
        };
        self.write(Write::Outbox(write)).await.map(drop)
    }

    async fn messages(&self, filter: MessageFilter) -> Result<Vec<StoredMessage>, StoreError> {
        self.read(move |r| r.messages(&filter)).await
    }

    async fn resend(&self, id: &str) -> Result<bool, StoreError> {
        let write = OutboxWrite::Resend(id.to_owned());
        match self.write(Write::Outbox(write)).await? {
            Done::Resent(found) => Ok(found),
            other => Err(unexpected(self, &other)),
        }
    }
}

fn unexpected(store: &SqliteStore, done: &Done) -> StoreError {
    StoreError::new(format!(
        "sagaflow store {}: the writer answered an outbox write with {done:?} (a bug)",
        store.path().display()
    ))
}
