//! Stores filled with outbox messages through the `Store` API alone, the way
//! the executor writes them: a step's `Sent` entry in the commit of its
//! success, so any `Outbox` store can be filled the same way.

use sagaflow::SagaId;
use sagaflow::durable::{Entry, NewSaga, SagaStatus, Store};
use sagaflow::outbox::Message;

/// One saga as filled: its id and its messages, by transition, in order.
#[derive(Debug, Clone)]
pub struct FilledSaga {
    /// Its id.
    pub id: SagaId,
    /// Each step's messages, in step order.
    pub transitions: Vec<Vec<Message>>,
}

impl FilledSaga {
    /// Every message id, in order.
    pub fn ids(&self) -> Vec<String> {
        self.transitions
            .iter()
            .flatten()
            .map(|m| m.id.clone())
            .collect()
    }
}

/// The `n`th message of step `step` of saga `saga`, to `destination`, with
/// the id the executor would give it.
pub fn message(saga: SagaId, step: u32, n: usize, destination: &str) -> Message {
    let id = format!("{saga}-s{step}-{n}");
    Message {
        payload: serde_json::to_vec(&serde_json::json!({ "id": id, "step": step })).unwrap(),
        id,
        destination: destination.to_owned(),
        key: Some(saga.to_string()),
        created_ms: 1_700_000_000_000 + u64::from(step),
    }
}

/// Makes `sagas` committed sagas in `store`, each with one step per item of
/// `shape` sending one message to each destination listed there.
pub async fn fill<St: Store>(store: &St, sagas: usize, shape: &[&[&str]]) -> Vec<FilledSaga> {
    let mut filled = Vec::with_capacity(sagas);
    for _ in 0..sagas {
        filled.push(fill_one(store, shape, true).await);
    }
    filled
}

/// One saga like those of [`fill`]; committed if `commit`, else left running
/// after its steps.
pub async fn fill_one<St: Store>(store: &St, shape: &[&[&str]], commit: bool) -> FilledSaga {
    let id = SagaId::time_ordered();
    store
        .create(NewSaga {
            id,
            saga_type: "outbox_test".into(),
            fingerprint: "outbox_test".into(),
            input: b"{}".to_vec(),
        })
        .await
        .expect("create a saga");
    let mut transitions = Vec::with_capacity(shape.len());
    for (step, destinations) in shape.iter().enumerate() {
        let index = step as u32;
        let messages: Vec<Message> = destinations
            .iter()
            .enumerate()
            .map(|(n, destination)| message(id, index, n, destination))
            .collect();
        store
            .append(id, Entry::StepStarted { index, attempt: 1 })
            .await
            .expect("append a step's intent");
        store
            .append_all(
                id,
                vec![
                    Entry::StepSucceeded {
                        index,
                        output: b"null".to_vec(),
                    },
                    Entry::Sent {
                        messages: messages.clone(),
                    },
                ],
            )
            .await
            .expect("append a step's outcome with its messages");
        transitions.push(messages);
    }
    if commit {
        store
            .append(
                id,
                Entry::Finished {
                    status: SagaStatus::Committed,
                    output: Some(b"null".to_vec()),
                },
            )
            .await
            .expect("commit a saga");
    }
    FilledSaga { id, transitions }
}
