//! The outbox on the server: claims that several relays in several processes
//! can make at once, fenced settlements, resend, and the operator's listing.

use std::collections::HashMap;
use std::time::Duration;

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::read::parse_id;
use super::{PgStore, Shared, retrying};
use crate::SagaId;
use crate::durable::outbox_rows::{Candidate, pending, pick};
use crate::durable::store::StoreError;
use crate::outbox::{
    ClaimedMessages, MessageFilter, MessageState, Outbox, PendingMessage, Settlement, StoredMessage,
};

/// The outbox's statements, with the schema's quoted name put in.
pub(super) struct OutboxSql {
    /// $1 limit. The sagas whose earliest pending message may be leased now,
    /// that earliest message locked (skipping those another claim holds).
    heads: String,
    /// $1 saga ids. Their pending messages, locked, with whether each may be
    /// leased now.
    pending: String,
    /// $1 token, $2 lease in ms, $3 ids.
    lease: String,
    /// $1 token, then parallel arrays: $2 ids, $3 kinds, $4 errors, $5 retry times.
    settle: String,
    /// $1 id.
    resend: String,
    /// The rows an operator reads, before `WHERE`.
    select: String,
}

impl OutboxSql {
    pub(super) fn new(s: &str) -> OutboxSql {
        let free = "available_at <= clock_timestamp()
                    AND (lease_until IS NULL OR lease_until <= clock_timestamp())";
        OutboxSql {
            heads: format!(
                "SELECT o.saga_id FROM {s}.outbox AS o
                 WHERE o.state = 'pending' AND o.{free}
                   AND NOT EXISTS (SELECT 1 FROM {s}.outbox AS e
                                   WHERE e.saga_id = o.saga_id AND e.state = 'pending'
                                     AND (e.seq, e.n) < (o.seq, o.n))
                 ORDER BY o.ord
                 LIMIT $1
                 FOR UPDATE OF o SKIP LOCKED"
            ),
            pending: format!(
                "SELECT saga_id, seq, id, destination, key, payload, created_ms, attempts,
                        {free}
                 FROM {s}.outbox
                 WHERE saga_id = ANY($1::text[]) AND state = 'pending'
                 ORDER BY saga_id, seq, n
                 FOR UPDATE"
            ),
            lease: format!(
                "UPDATE {s}.outbox
                 SET lease_token = $1,
                     lease_until = clock_timestamp() + $2::float8 * interval '1 millisecond'
                 WHERE id = ANY($3::text[])"
            ),
            settle: format!(
                "UPDATE {s}.outbox AS o
                 SET state = CASE s.kind WHEN 'delivered' THEN 'delivered'
                                         WHEN 'dead' THEN 'dead' ELSE o.state END,
                     attempts = o.attempts
                                + CASE WHEN s.kind IN ('retry', 'dead') THEN 1 ELSE 0 END,
                     available_at = CASE WHEN s.kind = 'retry' THEN s.retry_at
                                         ELSE o.available_at END,
                     last_error = CASE WHEN s.kind IN ('retry', 'dead') THEN s.error
                                       ELSE o.last_error END,
                     delivered_at = CASE WHEN s.kind = 'delivered' THEN clock_timestamp()
                                         ELSE o.delivered_at END,
                     lease_token = NULL,
                     lease_until = NULL
                 FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[])
                      AS s(id, kind, error, retry_at)
                 WHERE o.id = s.id AND o.lease_token = $1 AND o.state = 'pending'"
            ),
            resend: format!(
                "UPDATE {s}.outbox
                 SET state = 'pending', attempts = 0, available_at = clock_timestamp(),
                     lease_token = NULL, lease_until = NULL
                 WHERE id = $1 AND state = 'dead'"
            ),
            select: format!(
                "SELECT saga_id, seq, id, destination, key, payload, created_ms, attempts,
                        state, last_error, delivered_at
                 FROM (SELECT *, min(ord) OVER (PARTITION BY saga_id) AS first
                       FROM {s}.outbox"
            ),
        }
    }
}

/// A pending message from the columns every outbox query starts with.
fn pending_of(shared: &Shared, row: &Row) -> Result<PendingMessage, StoreError> {
    let fail = |e: tokio_postgres::Error| {
        StoreError::new(format!(
            "{}: cannot read a message: {e}; the store is damaged",
            shared.server
        ))
    };
    let saga_id = parse_id(&shared.server, row.try_get(0).map_err(fail)?)?;
    Ok(pending(
        saga_id,
        row.try_get::<_, i64>(1).map_err(fail)? as u64,
        row.try_get(2).map_err(fail)?,
        row.try_get(3).map_err(fail)?,
        row.try_get(4).map_err(fail)?,
        row.try_get(5).map_err(fail)?,
        row.try_get::<_, i64>(6).map_err(fail)? as u64,
        row.try_get::<_, i64>(7).map_err(fail)? as u32,
    ))
}

/// One claim, in one transaction: lock the heads of the sagas whose turn it
/// is, read and lock their pending messages, pick, lease.
async fn claim(
    shared: &Shared,
    limit: usize,
    lease: Duration,
    token: i64,
) -> Result<ClaimedMessages, StoreError> {
    let sql = &shared.sql.outbox;
    let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
    let lease_ms = lease.as_secs_f64() * 1000.0;
    // A claim tried again after a lost connection may also have committed:
    // then its messages stay leased to nobody until the lease passes.
    let claimed = retrying(shared, "cannot claim messages", |mut client| async move {
        let (heads_stmt, pending_stmt, lease_stmt) = futures_util::future::try_join3(
            client.prepare_cached(&sql.heads),
            client.prepare_cached(&sql.pending),
            client.prepare_cached(&sql.lease),
        )
        .await?;
        let tx = client.transaction().await?;
        let heads: Vec<String> = tx
            .query(&heads_stmt, &[&limit_sql])
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        if heads.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        let rows = tx.query(&pending_stmt, &[&heads]).await?;
        let sagas = match candidates(shared, &heads, &rows) {
            Ok(sagas) => sagas,
            // Dropping the transaction rolls it back.
            Err(error) => return Ok(Err(error)),
        };
        let messages = pick(sagas, limit);
        let ids: Vec<&str> = messages.iter().map(|m| m.message.id.as_str()).collect();
        tx.execute(&lease_stmt, &[&token, &lease_ms, &ids]).await?;
        tx.commit().await?;
        Ok(Ok(messages))
    })
    .await??;
    Ok(ClaimedMessages {
        token: token as u64,
        messages: claimed,
    })
}

/// The pending messages read by a claim, saga by saga in the order of `heads`.
fn candidates(
    shared: &Shared,
    heads: &[String],
    rows: &[Row],
) -> Result<Vec<Vec<Candidate>>, StoreError> {
    let mut by_saga: HashMap<SagaId, Vec<Candidate>> = HashMap::with_capacity(heads.len());
    for row in rows {
        let claimable: bool = row.try_get(8).map_err(|e| {
            StoreError::new(format!("{}: cannot read a message: {e}", shared.server))
        })?;
        let message = pending_of(shared, row)?;
        by_saga
            .entry(message.saga_id)
            .or_default()
            .push(Candidate { message, claimable });
    }
    let mut sagas = Vec::with_capacity(heads.len());
    for head in heads {
        if let Some(messages) = by_saga.remove(&parse_id(&shared.server, head)?) {
            sagas.push(messages);
        }
    }
    Ok(sagas)
}

/// The settlements as the settle statement's parallel arrays.
type SettleArrays = (
    Vec<String>,
    Vec<&'static str>,
    Vec<Option<String>>,
    Vec<Option<std::time::SystemTime>>,
);

fn settle_arrays(settlements: Vec<Settlement>) -> SettleArrays {
    let mut arrays: SettleArrays = Default::default();
    for settlement in settlements {
        let (id, kind, error, retry_at) = match settlement {
            Settlement::Delivered { id } => (id, "delivered", None, None),
            Settlement::Retry {
                id,
                error,
                retry_at,
            } => (id, "retry", Some(error), Some(retry_at)),
            Settlement::Dead { id, error } => (id, "dead", Some(error), None),
            Settlement::Released { id } => (id, "released", None, None),
        };
        arrays.0.push(id);
        arrays.1.push(kind);
        arrays.2.push(error);
        arrays.3.push(retry_at);
    }
    arrays
}

/// The outbox of a PostgreSQL store: the table `outbox` in the store's schema.
///
/// One row per message, inserted by the statement that appends the journal
/// entry of kind `sent` carrying it, inside the writer's transaction (so a
/// message is stored if and only if the transition that made it is, and only
/// by the holder of the saga's lease): `id` (the
/// [`Message::id`](crate::outbox::Message::id), unique; a duplicate fails the
/// write, naming the id), `ord` (the order rows were written in), `saga_id`,
/// `seq` (the journal position of that entry: a saga's order), `n` (the
/// message's position in the entry), `destination`, `key`, `payload` (JSON),
/// `created_ms`, and its delivery: `state`, `attempts`, `available_at` (not
/// claimed before: a failed delivery's backoff), `lease_token` and
/// `lease_until` (the claim holding it, in server time), `last_error`,
/// `delivered_at`.
///
/// States: `pending` waits for a relay (again after a failure, once its
/// backoff has passed); `delivered` was acknowledged by the sink; `dead`
/// failed as often as the relay allows and waits for a person
/// ([`resend`](Outbox::resend)).
///
/// Order, with any number of relays in any number of processes: a claim
/// locks the earliest pending message of each saga whose turn it is
/// (`FOR UPDATE SKIP LOCKED`: claims never wait for each other, and two never
/// take the same saga), then leases that saga's pending messages from there
/// on, whole transitions at a time, stopping at the first one in backoff or
/// leased. A later message of a saga is therefore never leased while an
/// earlier one is pending outside the same claim, and one saga's messages are
/// never held by two relays at once. Sagas take turns in the order their
/// first pending message was written. Every claim has a random token; a
/// settlement under another token (a relay whose lease passed and was taken
/// over) changes nothing. A dead message no longer holds its saga's later
/// messages back. A retry's `retry_at` is the relay's clock; leases are the
/// server's.
impl Outbox for PgStore {
    async fn claim_messages(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<ClaimedMessages, StoreError> {
        if limit == 0 {
            return Ok(ClaimedMessages::default());
        }
        // Never 0, so that a default `ClaimedMessages` proves nothing.
        claim(&self.inner.shared, limit, lease, fastrand::i64(1..)).await
    }

    async fn settle_messages(
        &self,
        token: u64,
        settlements: Vec<Settlement>,
    ) -> Result<(), StoreError> {
        if settlements.is_empty() {
            return Ok(());
        }
        let shared = &self.inner.shared;
        let token = token as i64;
        let (ids, kinds, errors, retry_at) = settle_arrays(settlements);
        // One statement: a repetition after a lost answer finds the leases
        // already given up, and changes nothing.
        retrying(shared, "cannot settle messages", |client| {
            let (ids, kinds, errors, retry_at) = (&ids, &kinds, &errors, &retry_at);
            async move {
                let stmt = client.prepare_cached(&shared.sql.outbox.settle).await?;
                client
                    .execute(&stmt, &[&token, ids, kinds, errors, retry_at])
                    .await
            }
        })
        .await
        .map(drop)
    }

    async fn messages(&self, filter: MessageFilter) -> Result<Vec<StoredMessage>, StoreError> {
        messages(&self.inner.shared, &filter).await
    }

    async fn resend(&self, id: &str) -> Result<bool, StoreError> {
        let shared = &self.inner.shared;
        let changed = retrying(
            shared,
            &format!("cannot resend message {id:?}"),
            |client| async move {
                let stmt = client.prepare_cached(&shared.sql.outbox.resend).await?;
                client.execute(&stmt, &[&id]).await
            },
        )
        .await?;
        Ok(changed > 0)
    }
}

/// The messages `filter` matches: sagas in the order of their first message,
/// each in message order.
async fn messages(
    shared: &Shared,
    filter: &MessageFilter,
) -> Result<Vec<StoredMessage>, StoreError> {
    let mut conditions = Vec::new();
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    if let Some(state) = filter.state {
        params.push(Box::new(state.as_str()));
        conditions.push(format!("state = ${}", params.len()));
    }
    if let Some(id) = filter.saga_id {
        params.push(Box::new(id.to_string()));
        conditions.push(format!("saga_id = ${}", params.len()));
    }
    let limit = filter
        .limit
        .map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
    params.push(Box::new(limit));
    let condition = match conditions.is_empty() {
        true => String::new(),
        false => format!("WHERE {}", conditions.join(" AND ")),
    };
    let sql = format!(
        "{} {condition}) AS m ORDER BY first, seq, n LIMIT ${}",
        shared.sql.outbox.select,
        params.len()
    );
    let rows = retrying(shared, "cannot read the outbox", |client| {
        let (sql, params) = (&sql, &params);
        async move {
            let stmt = client.prepare_cached(sql).await?;
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            client.query(&stmt, &refs).await
        }
    })
    .await?;
    rows.iter().map(|row| stored(shared, row)).collect()
}

fn stored(shared: &Shared, row: &Row) -> Result<StoredMessage, StoreError> {
    let fail = |e: tokio_postgres::Error| {
        StoreError::new(format!(
            "{}: cannot read a message: {e}; the store is damaged",
            shared.server
        ))
    };
    let message = pending_of(shared, row)?;
    let word: &str = row.try_get(8).map_err(fail)?;
    let state = MessageState::parse(word).ok_or_else(|| {
        StoreError::new(format!(
            "{}: message {:?} has unknown state {word:?}; the store is damaged or was \
             written by a newer sagaflow",
            shared.server, message.message.id
        ))
    })?;
    Ok(StoredMessage {
        saga_id: message.saga_id,
        seq: message.seq,
        message: message.message,
        state,
        attempts: message.attempts,
        last_error: row.try_get(9).map_err(fail)?,
        delivered_at: row.try_get(10).map_err(fail)?,
    })
}
