//! Reading sagas with their journals: one statement per read, so that a read
//! sees one snapshot.

use tokio_postgres::Row;

use super::error::Server;
use super::{Shared, retrying};
use crate::SagaId;
use crate::durable::rows::{self, Records};
use crate::durable::store::{SagaRecord, SagaStatus, StoreError};

/// Saga `id` with its journal (none or one record).
pub(super) async fn get(shared: &Shared, id: SagaId) -> Result<Vec<SagaRecord>, StoreError> {
    let sql = format!("{} WHERE s.id = $1 ORDER BY j.seq", shared.sql.select);
    let id = id.to_string();
    let rows = retrying(shared, &format!("cannot read saga {id}"), |client| {
        let (sql, id) = (&sql, &id);
        async move {
            let stmt = client.prepare_cached(sql).await?;
            client.query(&stmt, &[id]).await
        }
    })
    .await?;
    records(&shared.server, &rows)
}

/// The sagas with `status`, oldest first.
pub(super) async fn with_status(
    shared: &Shared,
    status: SagaStatus,
) -> Result<Vec<SagaRecord>, StoreError> {
    let sql = format!(
        "{} WHERE s.status = $1 ORDER BY s.n, j.seq",
        shared.sql.select
    );
    let rows = retrying(shared, "cannot read sagas", |client| {
        let sql = &sql;
        async move {
            let stmt = client.prepare_cached(sql).await?;
            client.query(&stmt, &[&status.as_str()]).await
        }
    })
    .await?;
    records(&shared.server, &rows)
}

/// The sagas `ids`, oldest first.
pub(super) async fn many(shared: &Shared, ids: &[SagaId]) -> Result<Vec<SagaRecord>, StoreError> {
    let sql = format!(
        "{} WHERE s.id = ANY($1::text[]) ORDER BY s.n, j.seq",
        shared.sql.select
    );
    let ids: Vec<String> = ids.iter().map(SagaId::to_string).collect();
    let rows = retrying(shared, "cannot read the claimed sagas", |client| {
        let (sql, ids) = (&sql, &ids);
        async move {
            let stmt = client.prepare_cached(sql).await?;
            client.query(&stmt, &[ids]).await
        }
    })
    .await?;
    records(&shared.server, &rows)
}

/// The id stored as `text`: 32 lowercase hex digits.
pub(super) fn parse_id(server: &Server, text: &str) -> Result<SagaId, StoreError> {
    rows::parse_id(server, "store", text)
}

/// Records from rows of [`Sql::select`](super::Sql), grouped by saga in order.
pub(super) fn records(server: &Server, rows: &[Row]) -> Result<Vec<SagaRecord>, StoreError> {
    let fail = |e: tokio_postgres::Error| {
        StoreError::new(format!(
            "{server}: cannot read sagas: {e}; the store is damaged"
        ))
    };
    let mut records = Records::new(server, "store");
    for row in rows {
        let id_text: &str = row.try_get(0).map_err(fail)?;
        if records.is_new(id_text) {
            records.saga(
                id_text,
                row.try_get(4).map_err(fail)?,
                row.try_get(1).map_err(fail)?,
                row.try_get(2).map_err(fail)?,
                row.try_get(3).map_err(fail)?,
            )?;
        }
        let Some(seq) = row.try_get::<_, Option<i64>>(5).map_err(fail)? else {
            continue; // LEFT JOIN: a saga with no entries yet
        };
        let fields = (|| -> Result<_, tokio_postgres::Error> {
            Ok((
                row.try_get(6)?,
                row.try_get(7)?,
                row.try_get(8)?,
                row.try_get(9)?,
                row.try_get(10)?,
            ))
        })()
        .map_err(|e| e.to_string());
        records.entry(seq, fields)?;
    }
    Ok(records.done())
}
