//! `messages` and `resend`: the outbox as an operator sees it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sagaflow::outbox::{MessageFilter, MessageState, Outbox, StoredMessage};
use serde_json::{Value, json};

use crate::Failure;
use crate::text::{age, table};
use crate::view::rfc3339;

/// Exit code: no dead message with this id.
const NOT_DEAD: u8 = 5;

/// What `messages` prints: a table, or a JSON array.
pub async fn list<St: Outbox>(
    store: &St,
    filter: MessageFilter,
    json: bool,
    now: SystemTime,
) -> Result<String, Failure> {
    let messages = store
        .messages(filter)
        .await
        .map_err(|e| Failure::store(e.to_string()))?;
    if json {
        let rows: Vec<Value> = messages.iter().map(to_json).collect();
        return Ok(format!("{}\n", Value::Array(rows)));
    }
    if messages.is_empty() {
        return Ok("no messages match\n".to_owned());
    }
    let mut t = table(&[
        "id",
        "destination",
        "key",
        "state",
        "attempts",
        "age",
        "last error",
    ]);
    for m in &messages {
        let made = UNIX_EPOCH + Duration::from_millis(m.message.created_ms);
        t.add_row(vec![
            m.message.id.clone(),
            m.message.destination.clone(),
            m.message.key.clone().unwrap_or_default(),
            m.state.to_string(),
            m.attempts.to_string(),
            now.duration_since(made).map(age).unwrap_or_default(),
            m.last_error.clone().unwrap_or_default(),
        ]);
    }
    Ok(format!("{t}\n"))
}

/// One message as `messages --json` prints it.
fn to_json(m: &StoredMessage) -> Value {
    let payload = serde_json::from_slice(&m.message.payload).unwrap_or_else(|_| {
        Value::String(String::from_utf8_lossy(&m.message.payload).into_owned())
    });
    json!({
        "id": m.message.id,
        "saga_id": m.saga_id.to_string(),
        "seq": m.seq,
        "destination": m.message.destination,
        "key": m.message.key,
        "payload": payload,
        "created_at": rfc3339(UNIX_EPOCH + Duration::from_millis(m.message.created_ms)),
        "state": m.state.as_str(),
        "attempts": m.attempts,
        "last_error": m.last_error,
        "delivered_at": m.delivered_at.map(rfc3339),
    })
}

/// What `resend` prints, or exit code 5 when there is no such dead message.
pub async fn resend<St: Outbox>(store: &St, id: &str) -> Result<String, Failure> {
    match store.resend(id).await {
        Ok(true) => Ok(format!(
            "message {id} is pending again, its attempts reset; the application's relay \
             delivers it\n"
        )),
        Ok(false) => Err(Failure {
            code: NOT_DEAD,
            message: format!(
                "no dead message {id:?} in the store (no such id, or it is pending or \
                 delivered), so nothing was done; `sagaflow messages --state dead` lists \
                 the dead ones"
            ),
        }),
        Err(e) => Err(Failure::store(e.to_string())),
    }
}

/// `--state`'s words.
pub fn parse_state(word: &str) -> Result<MessageState, String> {
    MessageState::parse(word)
        .ok_or_else(|| format!("`{word}` is not a message state: use pending, delivered or dead"))
}
