//! A fake outbox store, in memory, that can be told to fail.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sagaflow::SagaId;
use sagaflow::durable::{Entry, NewSaga, SagaRecord, SagaStatus, Store, StoreError};
use sagaflow::outbox::{
    ClaimedMessages, MessageFilter, MessageState, Outbox, PendingMessage, Settlement, StoredMessage,
};

#[derive(Debug, Clone)]
struct FakeMessage {
    pending: PendingMessage,
    state: MessageState,
    last_error: Option<String>,
    delivered_at: Option<SystemTime>,
    retry_at: SystemTime,
    lease: Option<(u64, Instant)>,
}

#[derive(Default)]
struct FakeInner {
    sagas: Vec<SagaRecord>,
    messages: Vec<FakeMessage>,
    next_token: u64,
    settle_calls: Vec<Vec<Settlement>>,
}

/// An in-memory `Store + Outbox` with the contract's claim rule, and faults
/// on request: the next `fail_claims` claims and `fail_settles` settlements
/// fail (settlements without changing anything).
#[derive(Clone, Default)]
pub struct FakeOutbox {
    inner: Arc<Mutex<FakeInner>>,
    pub fail_claims: Arc<AtomicU32>,
    pub fail_settles: Arc<AtomicU32>,
}

impl FakeOutbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, FakeInner> {
        self.inner.lock().unwrap()
    }

    /// Every `settle_messages` call so far, with its settlements.
    pub fn settle_calls(&self) -> Vec<Vec<Settlement>> {
        self.lock().settle_calls.clone()
    }
}

fn take_fault(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl Store for FakeOutbox {
    async fn create(&self, saga: NewSaga) -> Result<(), StoreError> {
        self.lock().sagas.push(SagaRecord {
            id: saga.id,
            saga_type: saga.saga_type,
            fingerprint: saga.fingerprint,
            input: saga.input,
            status: SagaStatus::Running,
            journal: Vec::new(),
        });
        Ok(())
    }

    async fn append(&self, id: SagaId, entry: Entry) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let FakeInner {
            sagas, messages, ..
        } = &mut *inner;
        let saga = sagas
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or_else(|| StoreError::new(format!("no saga {id}")))?;
        let seq = saga.journal.len() as u64;
        match &entry {
            Entry::Finished { status, .. } => saga.status = *status,
            Entry::Sent { messages: sent } => {
                messages.extend(sent.iter().map(|message| FakeMessage {
                    pending: PendingMessage {
                        saga_id: id,
                        seq,
                        message: message.clone(),
                        attempts: 0,
                    },
                    state: MessageState::Pending,
                    last_error: None,
                    delivered_at: None,
                    retry_at: SystemTime::UNIX_EPOCH,
                    lease: None,
                }))
            }
            _ => {}
        }
        saga.journal.push(entry);
        Ok(())
    }

    async fn claim_unfinished(&self) -> Result<Vec<SagaRecord>, StoreError> {
        self.with_status(SagaStatus::Running).await
    }

    async fn get(&self, id: SagaId) -> Result<Option<SagaRecord>, StoreError> {
        Ok(self.lock().sagas.iter().find(|s| s.id == id).cloned())
    }

    async fn with_status(&self, status: SagaStatus) -> Result<Vec<SagaRecord>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .sagas
            .iter()
            .filter(|s| s.status == status)
            .cloned()
            .collect())
    }
}

impl Outbox for FakeOutbox {
    async fn claim_messages(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<ClaimedMessages, StoreError> {
        if take_fault(&self.fail_claims) {
            return Err(StoreError::new("fake outbox: claim refused on purpose"));
        }
        let mut inner = self.lock();
        inner.next_token += 1;
        let token = inner.next_token;
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut claimed = Vec::new();
        // A saga whose earliest pending message cannot go now blocks the rest
        // of that saga's messages; a transition goes whole or not at all (the
        // first of a claim even past `limit`).
        let mut blocked: Vec<SagaId> = Vec::new();
        let mut picked: Vec<usize> = Vec::new();
        let mut at = 0;
        while at < inner.messages.len() {
            let message = &inner.messages[at];
            let (saga, seq) = (message.pending.saga_id, message.pending.seq);
            let transition: Vec<usize> = (at..inner.messages.len())
                .take_while(|&i| {
                    let m = &inner.messages[i].pending;
                    (m.saga_id, m.seq) == (saga, seq)
                })
                .collect();
            at += transition.len();
            if message.state != MessageState::Pending || blocked.contains(&saga) {
                continue;
            }
            let free = transition.iter().all(|&i| {
                let m = &inner.messages[i];
                m.lease.is_none_or(|(_, until)| until <= now) && m.retry_at <= wall
            });
            let room = limit.saturating_sub(picked.len());
            if !free || (transition.len() > room && !picked.is_empty()) {
                blocked.push(saga);
                continue;
            }
            picked.extend(transition);
        }
        for i in picked {
            let message = &mut inner.messages[i];
            message.lease = Some((token, now + lease));
            claimed.push(message.pending.clone());
        }
        Ok(ClaimedMessages {
            token,
            messages: claimed,
        })
    }

    async fn settle_messages(
        &self,
        token: u64,
        settlements: Vec<Settlement>,
    ) -> Result<(), StoreError> {
        if take_fault(&self.fail_settles) {
            return Err(StoreError::new(
                "fake outbox: settlement refused on purpose",
            ));
        }
        let mut inner = self.lock();
        inner.settle_calls.push(settlements.clone());
        for settlement in settlements {
            let id = match &settlement {
                Settlement::Delivered { id }
                | Settlement::Retry { id, .. }
                | Settlement::Dead { id, .. }
                | Settlement::Released { id } => id.clone(),
            };
            let Some(message) = inner
                .messages
                .iter_mut()
                .find(|m| m.pending.message.id == id)
            else {
                continue;
            };
            if message.lease.map(|(t, _)| t) != Some(token) {
                continue; // fenced off: another relay has it now
            }
            message.lease = None;
            match settlement {
                Settlement::Delivered { .. } => {
                    message.state = MessageState::Delivered;
                    message.delivered_at = Some(SystemTime::now());
                }
                Settlement::Retry {
                    error, retry_at, ..
                } => {
                    message.pending.attempts += 1;
                    message.last_error = Some(error);
                    message.retry_at = retry_at;
                }
                Settlement::Dead { error, .. } => {
                    message.pending.attempts += 1;
                    message.last_error = Some(error);
                    message.state = MessageState::Dead;
                }
                Settlement::Released { .. } => {}
            }
        }
        Ok(())
    }

    async fn messages(&self, filter: MessageFilter) -> Result<Vec<StoredMessage>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .messages
            .iter()
            .filter(|m| filter.state.is_none_or(|s| s == m.state))
            .filter(|m| filter.saga_id.is_none_or(|s| s == m.pending.saga_id))
            .take(filter.limit.unwrap_or(usize::MAX))
            .map(|m| StoredMessage {
                saga_id: m.pending.saga_id,
                seq: m.pending.seq,
                message: m.pending.message.clone(),
                state: m.state,
                attempts: m.pending.attempts,
                last_error: m.last_error.clone(),
                delivered_at: m.delivered_at,
            })
            .collect())
    }

    async fn resend(&self, id: &str) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let dead = inner
            .messages
            .iter_mut()
            .find(|m| m.pending.message.id == id && m.state == MessageState::Dead);
        Ok(dead.is_some_and(|m| {
            m.state = MessageState::Pending;
            m.pending.attempts = 0;
            m.retry_at = SystemTime::UNIX_EPOCH;
            true
        }))
    }
}
