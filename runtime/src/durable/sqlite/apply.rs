//! One write of a batch, applied inside the batch's transaction.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{ErrorCode, OptionalExtension, Transaction, params};

use super::outbox;
use super::writer::{Done, Failure, Write};
use super::{finished_before, id_text, sql_error};
use crate::SagaId;
use crate::durable::rows::encode;
use crate::durable::store::{Entry, NewSaga, SagaStatus, StoreError};

/// The batch's transaction and what it has changed so far.
pub(super) struct Batch<'b, 't> {
    pub(super) tx: &'b Transaction<'t>,
    pub(super) path: &'b Path,
    /// The sequence numbers committed before this batch.
    pub(super) cache: &'b HashMap<SagaId, i64>,
    /// Sequence numbers as this transaction leaves them; `None` for a saga
    /// finished or purged in it.
    pub(super) pending: &'b mut HashMap<SagaId, Option<i64>>,
    /// The time every row of the batch is stamped with (Unix milliseconds).
    pub(super) now: i64,
}

impl Batch<'_, '_> {
    /// Applies one write; its rows are committed, or not, with the batch.
    pub(super) fn apply(&mut self, write: &Write) -> Result<Done, Failure> {
        match write {
            Write::AppendAll(id, entries) => {
                for entry in entries {
                    self.append(*id, entry)?;
                }
                Ok(Done::Written)
            }
            Write::AppendIf(id, expected, entry) => self.append_if(*id, *expected, entry),
            Write::Purge(before) => self.purge(*before),
            Write::Outbox(write) => outbox::apply(self.tx, self.path, write, self.now),
            Write::Create(saga) => self.create(saga),
            Write::Append(id, entry) => self.append(*id, entry),
        }
    }

    /// A statement's error as a failure: the write's own if SQLite refused
    /// its values (a constraint, a size, a type), so that the batch is tried
    /// again without it.
    fn statement(&self, doing: String) -> impl Fn(rusqlite::Error) -> Failure + '_ {
        move |e: rusqlite::Error| {
            let own = matches!(
                e.sqlite_error_code(),
                Some(ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch)
            );
            Failure::Statement(sql_error(self.path, &doing, &e), own)
        }
    }

    fn append_if(
        &mut self,
        id: SagaId,
        expected: SagaStatus,
        entry: &Entry,
    ) -> Result<Done, Failure> {
        // Sees this transaction's earlier writes: of two conditional appends
        // in one batch, the second finds the status the first left.
        let found: Option<String> = self
            .tx
            .prepare_cached("SELECT status FROM sagas WHERE id = ?1")
            .and_then(|mut stmt| stmt.query_row([id_text(id)], |row| row.get(0)).optional())
            .map_err(|e| self.lookup_failed(id, &e))?;
        let Some(word) = found else {
            return Ok(Done::Skipped(None));
        };
        let status = SagaStatus::parse(&word).ok_or_else(|| {
            Failure::Refused(StoreError::new(format!(
                "sagaflow store {}: saga {id} has unknown status {word:?}; the file is \
                 damaged or was written by a newer sagaflow",
                self.path.display()
            )))
        })?;
        if status != expected {
            return Ok(Done::Skipped(Some(status)));
        }
        self.append(id, entry)
    }

    fn purge(&mut self, before: i64) -> Result<Done, Failure> {
        let ids = finished_before(self.tx, self.path, before)
            .map_err(|e| Failure::Statement(e, false))?;
        for id in &ids {
            for table in [
                "DELETE FROM outbox WHERE saga_id = ?1",
                "DELETE FROM journal WHERE saga_id = ?1",
                "DELETE FROM sagas WHERE id = ?1",
            ] {
                self.tx
                    .prepare_cached(table)
                    .and_then(|mut stmt| stmt.execute([id_text(*id)]))
                    .map_err(self.statement(format!("cannot purge saga {id}")))?;
            }
            self.pending.insert(*id, None);
        }
        Ok(Done::Purged(ids))
    }

    fn create(&mut self, saga: &NewSaga) -> Result<Done, Failure> {
        let id = saga.id;
        if self.next_seq(id)?.is_some() {
            return Err(Failure::Refused(StoreError::new(format!(
                "sagaflow store {}: saga {id} already exists; a saga id is created once",
                self.path.display()
            ))));
        }
        self.tx
            .prepare_cached(
                "INSERT INTO sagas (id, saga_type, fingerprint, input, status, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    id_text(id),
                    saga.saga_type,
                    saga.fingerprint,
                    saga.input,
                    SagaStatus::Running.as_str(),
                    self.now
                ])
            })
            .map_err(self.statement(format!("cannot create saga {id}")))?;
        self.pending.insert(id, Some(0));
        Ok(Done::Written)
    }

    fn append(&mut self, id: SagaId, entry: &Entry) -> Result<Done, Failure> {
        let Some(seq) = self.next_seq(id)? else {
            return Err(Failure::Refused(StoreError::new(format!(
                "sagaflow store {}: cannot append to saga {id}: no such saga in this store",
                self.path.display()
            ))));
        };
        let new_status = entry.sets_status();
        let row = encode(entry.clone());
        let now = self.now;
        self.tx
            .prepare_cached(
                "INSERT INTO journal (saga_id, seq, kind, step_index, attempt, payload, note, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    id_text(id),
                    seq,
                    row.kind,
                    row.step_index,
                    row.attempt,
                    row.payload,
                    row.note,
                    now
                ])
            })
            .map_err(self.statement(format!("cannot append entry {seq} to saga {id}")))?;
        if let Entry::Sent { messages } = entry {
            outbox::insert(self.tx, self.path, id, seq, messages, now)?;
        }
        if let Some(status) = new_status {
            self.tx
                .prepare_cached("UPDATE sagas SET status = ?2, updated_at = ?3 WHERE id = ?1")
                .and_then(|mut stmt| stmt.execute(params![id_text(id), status.as_str(), now]))
                .map_err(self.statement(format!("cannot set the status of saga {id}")))?;
        }
        // A finished saga is rarely written again: forget it rather than
        // keep one cache entry per saga ever run. A retried one is reloaded.
        let keep = !matches!(entry, Entry::Finished { .. });
        self.pending.insert(id, keep.then_some(seq + 1));
        Ok(Done::Written)
    }

    /// The next sequence number of saga `id`, or `None` if it does not exist: from
    /// this transaction, else from the cache, else from the file.
    fn next_seq(&self, id: SagaId) -> Result<Option<i64>, Failure> {
        if let Some(&next) = self.pending.get(&id) {
            if next.is_some() {
                return Ok(next);
            }
            // Finished in this transaction: not cached, but it exists; look it up.
        } else if let Some(&next) = self.cache.get(&id) {
            return Ok(Some(next));
        }
        let found: Option<Option<i64>> = self
            .tx
            .prepare_cached(
                "SELECT (SELECT max(seq) FROM journal WHERE saga_id = ?1) FROM sagas WHERE id = ?1",
            )
            .and_then(|mut stmt| stmt.query_row([id_text(id)], |row| row.get(0)).optional())
            .map_err(|e| self.lookup_failed(id, &e))?;
        Ok(found.map(|max| max.map_or(0, |max| max + 1)))
    }

    /// A read that `append_if` and `next_seq` make before they write failed.
    /// A read cannot break a constraint, so the failure is never the write's
    /// own: the whole batch is rolled back, not retried without this write.
    fn lookup_failed(&self, id: SagaId, e: &rusqlite::Error) -> Failure {
        Failure::Statement(
            sql_error(self.path, &format!("cannot look up saga {id}"), e),
            false,
        )
    }
}
