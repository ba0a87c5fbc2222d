//! What an operator's view asks of the store: sagas listed with their times,
//! one saga's history, and the purge of finished sagas.

use std::time::SystemTime;

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::read::{parse_id, records};
use super::{Shared, retrying};
use crate::SagaId;
use crate::durable::store::{SagaFilter, StoreError, StoredSaga};

/// The sagas `filter` matches, newest first, with their times.
pub(super) async fn list(
    shared: &Shared,
    filter: &SagaFilter,
) -> Result<Vec<StoredSaga>, StoreError> {
    let mut conditions = Vec::new();
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    if let Some(status) = filter.status {
        params.push(Box::new(status.as_str().to_owned()));
        conditions.push(format!("status = ${}", params.len()));
    }
    if let Some(saga_type) = &filter.saga_type {
        params.push(Box::new(saga_type.clone()));
        conditions.push(format!("saga_type = ${}", params.len()));
    }
    if let Some(since) = filter.since {
        params.push(Box::new(since));
        conditions.push(format!("created_at >= ${}", params.len()));
    }
    let limit = filter
        .limit
        .map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
    params.push(Box::new(limit));
    let condition = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sagas = &shared.sql.sagas;
    let sql = format!(
        "{} WHERE s.id IN (SELECT id FROM {sagas} {condition} ORDER BY n DESC LIMIT ${}) \
         ORDER BY s.n DESC, j.seq",
        shared.sql.select_timed,
        params.len()
    );
    let rows = retrying(shared, "cannot list sagas", |client| {
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
    timed(shared, &rows)
}

/// Saga `id` with its times.
pub(super) async fn history(shared: &Shared, id: SagaId) -> Result<Option<StoredSaga>, StoreError> {
    let sql = format!("{} WHERE s.id = $1 ORDER BY j.seq", shared.sql.select_timed);
    let id = id.to_string();
    let rows = retrying(shared, &format!("cannot read saga {id}"), |client| {
        let (sql, id) = (&sql, &id);
        async move {
            let stmt = client.prepare_cached(sql).await?;
            client.query(&stmt, &[id]).await
        }
    })
    .await?;
    Ok(timed(shared, &rows)?.pop())
}

/// Deletes (or, for a dry run, lists) the finished sagas whose status last
/// changed before `before`.
pub(super) async fn purge(
    shared: &Shared,
    before: SystemTime,
    dry_run: bool,
) -> Result<Vec<SagaId>, StoreError> {
    let sql = if dry_run {
        &shared.sql.purgeable
    } else {
        &shared.sql.purge
    };
    let rows = retrying(shared, "cannot purge finished sagas", |client| async move {
        let stmt = client.prepare_cached(sql).await?;
        client.query(&stmt, &[&before]).await
    })
    .await?;
    rows.iter()
        .map(|row| {
            let text: &str = row
                .try_get(0)
                .map_err(|e| StoreError::new(format!("{}: cannot purge: {e}", shared.server)))?;
            parse_id(&shared.server, text)
        })
        .collect()
}

/// Records with their times, from rows of `select_timed`.
fn timed(shared: &Shared, rows: &[Row]) -> Result<Vec<StoredSaga>, StoreError> {
    let fail = |e: tokio_postgres::Error| {
        StoreError::new(format!(
            "{}: cannot read the sagas' times: {e}; the store is damaged",
            shared.server
        ))
    };
    // The times of each saga, in the order `records` groups the rows.
    let mut times: Vec<(Option<SystemTime>, Option<SystemTime>, Vec<SystemTime>)> = Vec::new();
    let mut current: Option<String> = None;
    for row in rows {
        let id: String = row.try_get(0).map_err(fail)?;
        if current.as_deref() != Some(id.as_str()) {
            times.push((
                Some(row.try_get(11).map_err(fail)?),
                Some(row.try_get(12).map_err(fail)?),
                Vec::new(),
            ));
            current = Some(id);
        }
        if let Some(at) = row.try_get::<_, Option<SystemTime>>(13).map_err(fail)?
            && let Some(last) = times.last_mut()
        {
            last.2.push(at);
        }
    }
    let records = records(&shared.server, rows)?;
    Ok(records
        .into_iter()
        .zip(times)
        .map(
            |(record, (created_at, updated_at, entry_times))| StoredSaga {
                record,
                created_at,
                updated_at,
                entry_times,
            },
        )
        .collect())
}
