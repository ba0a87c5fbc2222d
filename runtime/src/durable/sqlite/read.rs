//! The reader thread's queries: sagas with their journals, one snapshot each.

use std::path::PathBuf;
use std::time::SystemTime;

use rusqlite::Connection;

use super::{finished_before, id_text, millis, sql_error, time_of};
use crate::SagaId;
use crate::durable::rows::Records;
use crate::durable::store::{SagaFilter, SagaRecord, SagaStatus, StoreError, StoredSaga};

pub(super) type ReadJob = Box<dyn FnOnce(&mut Reader) + Send>;

pub(super) struct Reader {
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
}

/// Columns of the one query every read uses: each saga with its journal rows, in
/// one statement so that a read sees one snapshot of the file.
const SELECT_SAGAS: &str = "
    SELECT s.id, s.saga_type, s.fingerprint, s.input, s.status,
           j.seq, j.kind, j.step_index, j.attempt, j.payload, j.note,
           s.created_at, s.updated_at, j.at
    FROM sagas AS s LEFT JOIN journal AS j ON j.saga_id = s.id";

impl Reader {
    pub(super) fn get(&mut self, id: SagaId) -> Result<Option<SagaRecord>, StoreError> {
        let sql = format!("{SELECT_SAGAS} WHERE s.id = ?1 ORDER BY j.seq");
        Ok(self.query(&sql, id_text(id))?.pop())
    }

    /// Oldest first: rowids grow with insertion (a purge deletes rows, but a
    /// new row's rowid is still above every remaining one).
    pub(super) fn by_status(&mut self, status: SagaStatus) -> Result<Vec<SagaRecord>, StoreError> {
        let sql = format!("{SELECT_SAGAS} WHERE s.status = ?1 ORDER BY s.rowid, j.seq");
        self.query(&sql, status.as_str().to_owned())
    }

    /// Every saga a recovery resumes (`SagaStatus::is_resumable`), in the
    /// order they were created.
    pub(super) fn resumable(&mut self) -> Result<Vec<SagaRecord>, StoreError> {
        let statuses: Vec<String> = SagaStatus::ALL
            .iter()
            .filter(|s| s.is_resumable())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        let sql = format!(
            "{SELECT_SAGAS} WHERE s.status IN ({}) ORDER BY s.rowid, j.seq",
            statuses.join(", ")
        );
        let sagas = self.query_timed(&sql, &[])?;
        Ok(sagas.into_iter().map(|s| s.record).collect())
    }

    pub(super) fn history(&mut self, id: SagaId) -> Result<Option<StoredSaga>, StoreError> {
        let sql = format!("{SELECT_SAGAS} WHERE s.id = ?1 ORDER BY j.seq");
        Ok(self.query_timed(&sql, &[&id_text(id)])?.pop())
    }

    /// Newest first; the limit counts sagas, not journal rows.
    pub(super) fn list(&mut self, filter: &SagaFilter) -> Result<Vec<StoredSaga>, StoreError> {
        let mut conditions = Vec::new();
        let mut values: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(status) = filter.status {
            values.push(status.as_str().to_owned().into());
            conditions.push(format!("status = ?{}", values.len()));
        }
        if let Some(saga_type) = &filter.saga_type {
            values.push(saga_type.clone().into());
            conditions.push(format!("saga_type = ?{}", values.len()));
        }
        if let Some(since) = filter.since {
            values.push(millis(since).into());
            conditions.push(format!("created_at >= ?{}", values.len()));
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
            "{SELECT_SAGAS} WHERE s.id IN (SELECT id FROM sagas {condition} \
             ORDER BY rowid DESC LIMIT ?{}) ORDER BY s.rowid DESC, j.seq",
            values.len()
        );
        let params: Vec<&dyn rusqlite::ToSql> =
            values.iter().map(|v| v as &dyn rusqlite::ToSql).collect();
        self.query_timed(&sql, &params)
    }

    /// The ids of the finished sagas whose status last changed before `before`
    /// (Unix milliseconds), oldest first.
    pub(super) fn finished_before(&mut self, before: i64) -> Result<Vec<SagaId>, StoreError> {
        let path = self.path.as_path();
        finished_before(&self.conn, path, before)
    }

    fn query(&mut self, sql: &str, param: String) -> Result<Vec<SagaRecord>, StoreError> {
        let sagas = self.query_timed(sql, &[&param])?;
        Ok(sagas.into_iter().map(|s| s.record).collect())
    }

    fn query_timed(
        &mut self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<StoredSaga>, StoreError> {
        let path = self.path.as_path();
        let fail = |e: rusqlite::Error| sql_error(path, "cannot read sagas", &e);
        let mut stmt = self.conn.prepare_cached(sql).map_err(fail)?;
        let mut rows = stmt.query(params).map_err(fail)?;
        let store = format!("sagaflow store {}", path.display());
        let mut records = Records::new(&store, "file");
        // The times, saga by saga, beside the records the shared builder makes.
        let mut times: Vec<(SystemTime, SystemTime, Vec<SystemTime>)> = Vec::new();
        while let Some(row) = rows.next().map_err(fail)? {
            let id_text: String = row.get(0).map_err(fail)?;
            if records.is_new(&id_text) {
                let status: String = row.get(4).map_err(fail)?;
                records.saga(
                    &id_text,
                    &status,
                    row.get(1).map_err(fail)?,
                    row.get(2).map_err(fail)?,
                    row.get(3).map_err(fail)?,
                )?;
                times.push((
                    time_of(row.get(11).map_err(fail)?),
                    time_of(row.get(12).map_err(fail)?),
                    Vec::new(),
                ));
            }
            let Some(seq) = row.get::<_, Option<i64>>(5).map_err(fail)? else {
                continue; // LEFT JOIN: a saga with no entries yet
            };
            let fields = (|| -> rusqlite::Result<_> {
                Ok((
                    row.get(6)?,
                    row.get(7)?,
                    row.get(8)?,
                    row.get(9)?,
                    row.get(10)?,
                ))
            })()
            .map_err(|e| e.to_string());
            records.entry(seq, fields)?;
            let at: i64 = row.get(13).map_err(fail)?;
            if let Some((_, _, entry_times)) = times.last_mut() {
                entry_times.push(time_of(at));
            }
        }
        Ok(records
            .done()
            .into_iter()
            .zip(times)
            .map(|(record, (created, updated, entry_times))| StoredSaga {
                record,
                created_at: Some(created),
                updated_at: Some(updated),
                entry_times,
            })
            .collect())
    }

    pub(super) fn verify(&mut self) -> Result<(), StoreError> {
        let path = self.path.as_path();
        let mut problems = Vec::new();
        self.conn
            .pragma_query(None, "integrity_check", |row| {
                problems.push(row.get::<_, String>(0)?);
                Ok(())
            })
            .map_err(|e| sql_error(path, "integrity check", &e))?;
        if problems.len() == 1 && problems[0] == "ok" {
            return Ok(());
        }
        Err(StoreError::new(format!(
            "sagaflow store {}: file is corrupt: {}; restore it from a backup",
            path.display(),
            problems.join("; ")
        )))
    }
}
