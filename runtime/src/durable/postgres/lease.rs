//! The lease task: renews every lease the store holds, in one statement each
//! third of the lease, and lets go of the leases it is told to.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Shared, lock, retrying};
use crate::SagaId;
use crate::durable::store::StoreError;

/// What the store tells the lease task.
pub(super) enum Message {
    /// Let go of these leases (already out of the held map), then answer.
    Release(Vec<SagaId>, Option<oneshot::Sender<Result<(), StoreError>>>),
}

/// Runs until every store clone is gone, then lets go of what it was told to
/// and ends. The held leases are not let go then: a store dropped without
/// [`close`](super::PgStore::close) is taken for a worker that died.
pub(super) async fn run(shared: Arc<Shared>, mut messages: mpsc::UnboundedReceiver<Message>) {
    let mut tick = tokio::time::interval(shared.lease / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => renew(&shared).await,
            message = messages.recv() => {
                let Some(first) = message else { break };
                let mut batch = vec![first];
                while let Ok(more) = messages.try_recv() {
                    batch.push(more);
                }
                release(&shared, batch).await;
            }
        }
    }
}

/// Renews every held lease; drops, with a log line, those found taken over.
async fn renew(shared: &Shared) {
    let snapshot: Vec<(SagaId, i64)> = lock(&shared.held).iter().map(|(&id, &t)| (id, t)).collect();
    if snapshot.is_empty() {
        return;
    }
    let ids: Vec<String> = snapshot.iter().map(|(id, _)| id.to_string()).collect();
    let lease_ms = shared.lease.as_secs_f64() * 1000.0;
    let renewed = retrying(shared, "cannot renew the leases", |client| {
        let ids = &ids;
        async move {
            let stmt = client.prepare_cached(&shared.sql.renew).await?;
            client.query(&stmt, &[&shared.owner, &lease_ms, ids]).await
        }
    })
    .await;
    let rows = match renewed {
        Ok(rows) => rows,
        Err(error) => {
            // The leases may lapse; the writes under them will say so.
            tracing::warn!(%error, "sagaflow postgres: leases not renewed");
            return;
        }
    };
    let kept: std::collections::HashMap<&str, i64> = rows
        .iter()
        .map(|row| (row.get::<_, &str>(0), row.get::<_, i64>(1)))
        .collect();
    let mut held = lock(&shared.held);
    for ((id, token), text) in snapshot.iter().zip(&ids) {
        if kept.get(text.as_str()) == Some(token) {
            continue;
        }
        // Taken over by another worker (or ended meanwhile). Forget it only if
        // it is still the claim that was looked at.
        if held.get(id) == Some(token) {
            held.remove(id);
            tracing::warn!(
                saga = %id, token, server = %shared.server,
                "sagaflow postgres: lease lost: another worker took the saga over; this \
                 store will not write for it again"
            );
        }
    }
}

/// Lets go of the leases named in `batch`, in one statement, and answers.
async fn release(shared: &Shared, batch: Vec<Message>) {
    let mut ids = Vec::new();
    let mut acks = Vec::new();
    for Message::Release(some, ack) in batch {
        ids.extend(some.iter().map(SagaId::to_string));
        acks.extend(ack);
    }
    let result = if ids.is_empty() {
        Ok(())
    } else {
        retrying(shared, "cannot release leases", |client| {
            let ids = &ids;
            async move {
                let stmt = client.prepare_cached(&shared.sql.release).await?;
                client.execute(&stmt, &[&shared.owner, ids]).await
            }
        })
        .await
        .map(drop)
    };
    if let Err(error) = &result {
        tracing::warn!(%error, "sagaflow postgres: leases not released; they will expire");
    }
    for ack in acks {
        let _ = ack.send(result.clone());
    }
}
