//! Reading sagas with their journals: one statement per read, so that a read
//! sees one snapshot.

use tokio_postgres::Row;

use super::error::Server;
use super::{Shared, retrying};
use crate::SagaId;
use crate::durable::store::{SagaRecord, SagaStatus, StoreError, decode};

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
    u128::from_str_radix(text, 16)
        .ok()
        .filter(|_| text.len() == 32)
        .map(SagaId::from_u128)
        .ok_or_else(|| {
            StoreError::new(format!(
                "{server}: saga id {text:?} is not 32 hex digits; the store is damaged"
            ))
        })
}

/// Records from rows of [`Sql::select`](super::Sql), grouped by saga in order.
fn records(server: &Server, rows: &[Row]) -> Result<Vec<SagaRecord>, StoreError> {
    let fail = |e: tokio_postgres::Error| {
        StoreError::new(format!(
            "{server}: cannot read sagas: {e}; the store is damaged"
        ))
    };
    let mut records: Vec<SagaRecord> = Vec::new();
    let mut current = "";
    for row in rows {
        let id_text: &str = row.try_get(0).map_err(fail)?;
        if records.is_empty() || id_text != current {
            let id = parse_id(server, id_text)?;
            let word: &str = row.try_get(4).map_err(fail)?;
            let status = SagaStatus::parse(word).ok_or_else(|| {
                StoreError::new(format!(
                    "{server}: saga {id_text} has unknown status {word:?}; the store is \
                     damaged or was written by a newer sagaflow"
                ))
            })?;
            records.push(SagaRecord {
                id,
                saga_type: row.try_get(1).map_err(fail)?,
                fingerprint: row.try_get(2).map_err(fail)?,
                input: row.try_get(3).map_err(fail)?,
                status,
                journal: Vec::new(),
            });
            current = id_text;
        }
        let Some(seq) = row.try_get::<_, Option<i64>>(5).map_err(fail)? else {
            continue; // LEFT JOIN: a saga with no entries yet
        };
        let bad = |why: String| {
            StoreError::new(format!(
                "{server}: saga {current}, journal entry {seq}: {why}; the store is damaged \
                 or was written by a newer sagaflow"
            ))
        };
        let decoded = (|| -> Result<_, tokio_postgres::Error> {
            Ok((
                row.try_get::<_, String>(6)?,
                row.try_get::<_, Option<i64>>(7)?,
                row.try_get::<_, Option<i64>>(8)?,
                row.try_get::<_, Option<Vec<u8>>>(9)?,
                row.try_get::<_, Option<String>>(10)?,
            ))
        })()
        .map_err(|e| bad(e.to_string()))?;
        let (kind, step_index, attempt, payload, note) = decoded;
        let entry = decode(&kind, step_index, attempt, payload, note).map_err(bad)?;
        if let Some(record) = records.last_mut() {
            record.journal.push(entry);
        }
    }
    Ok(records)
}
