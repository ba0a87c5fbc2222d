//! Claiming sagas to run: leased in one statement, then read once the lease
//! is this store's.

use tokio::sync::oneshot;

use super::{PgStore, lease, lock, read, retrying};
use crate::durable::store::{SagaRecord, StoreError};

impl PgStore {
    /// Leases up to `limit` runnable sagas, then reads them: running, not run
    /// in this process, and held by nobody, by this store (a saga whose run
    /// here ended without finishing it) or by a lapsed lease.
    pub(super) async fn claim(&self, limit: i64) -> Result<Vec<SagaRecord>, StoreError> {
        let shared = &self.inner.shared;
        // Sagas run here under a claim of this process are not leased again,
        // even if their lease lapsed: their run is still going.
        let running: Vec<String> = {
            let claims = shared
                .claims
                .set()
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            claims.ids.iter().map(|id| id.to_string()).collect()
        };
        // A run here that ended queues its lease's release before it lets go
        // of its id in the claims read above: wait until every release queued
        // so far is done, or one could land after this claim takes the saga
        // again (a claim by the holder keeps its token) and leave it leased to
        // nobody while it runs here.
        let (flushed, done) = oneshot::channel();
        if self
            .inner
            .releases
            .send(lease::Message::Release(Vec::new(), Some(flushed)))
            .is_ok()
        {
            let _ = done.await;
        }
        let lease_ms = shared.lease.as_secs_f64() * 1000.0;
        let rows = retrying(shared, "cannot claim sagas", |client| {
            let running = &running;
            async move {
                let stmt = client.prepare_cached(&shared.sql.claim).await?;
                client
                    .query(&stmt, &[&shared.owner, &lease_ms, &limit, running])
                    .await
            }
        })
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        {
            let mut held = lock(&shared.held);
            for row in &rows {
                let id = read::parse_id(&shared.server, row.get(0))?;
                held.insert(id, row.get(1));
                claimed.push(id);
            }
        }
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        // Read after the lease is ours: nobody else writes these journals now.
        read::many(shared, &claimed).await
    }
}
