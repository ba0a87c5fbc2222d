//! [`RedisStreams`]: a [`Sink`] that appends messages to Redis Streams.

use core::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Message, Sink, SinkError};

/// Where and how [`RedisStreams`] writes.
///
/// ```
/// # use sagaflow::outbox::RedisConfig;
/// let config = RedisConfig::new("redis://127.0.0.1:6379/")
///     .prefix("shop:")
///     .max_len(100_000);
/// assert_eq!(config.stream_for("audit"), "shop:audit");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// The server, as `redis://[user:password@]host:port/[db]`
    /// (`rediss://` needs a TLS feature of the `redis` crate, not enabled).
    pub url: String,
    /// Put before each destination to name its stream: `"shop:"` writes a
    /// message to `audit` into the stream `shop:audit`. Empty by default.
    pub prefix: String,
    /// Trim each stream to about this many entries at every write
    /// (`XADD … MAXLEN ~ n`), dropping its oldest; `None` (the default) keeps
    /// everything. Trimming also drops entries that no consumer has read yet.
    pub max_len: Option<u64>,
    /// How long connecting may take.
    pub connection_timeout: Duration,
    /// How long the server may take to answer one delivery.
    pub response_timeout: Duration,
    /// How many times a lost connection is tried again inside one delivery
    /// before it fails (the relay's own retries come on top).
    pub reconnect_retries: usize,
}

impl RedisConfig {
    /// The server at `url`, no prefix, no trimming, 5 s to connect and to
    /// answer, one reconnect attempt.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            prefix: String::new(),
            max_len: None,
            connection_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(5),
            reconnect_retries: 1,
        }
    }

    /// With this stream prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Trimming each stream to about `max_len` entries.
    pub fn max_len(mut self, max_len: u64) -> Self {
        self.max_len = Some(max_len);
        self
    }

    /// The stream a message to `destination` goes to.
    pub fn stream_for(&self, destination: &str) -> String {
        format!("{}{destination}", self.prefix)
    }

    /// The URL with its password, if any, replaced by `***`: what errors show.
    pub fn display_url(&self) -> String {
        redact(&self.url)
    }
}

/// A [`Sink`] over Redis Streams. Cheap to clone; clones share one
/// multiplexed connection, which reconnects by itself after it was lost.
///
/// Each message becomes one stream entry, appended with `XADD` to the stream
/// named by its destination (after an optional prefix), with the fields
///
/// | field        | value                                                  |
/// |--------------|--------------------------------------------------------|
/// | `id`         | the message's stable [`id`](super::Message::id)        |
/// | `saga`       | the id of the saga that sent it                        |
/// | `key`        | its [`key`](super::Message::key), only when it has one |
/// | `payload`    | its JSON                                               |
/// | `created_ms` | when it was made, in ms since the Unix epoch           |
///
/// One [`deliver`](Sink::deliver) (one saga transition) is one `MULTI` …
/// `EXEC` holding every `XADD` of the transition, sent as one pipeline: no other
/// client sees some of them without the others, and a connection lost before
/// the `EXEC` writes none of them. Redis does not undo a transaction when one of
/// its commands fails at run time (a destination key that holds something
/// other than a stream): the delivery then fails, the relay retries it whole,
/// and the entries that were written come again with the same `id`. Consumers
/// deduplicate by `id`, as at-least-once delivery needs anyway.
///
/// ```no_run
/// # use sagaflow::outbox::{RedisConfig, RedisStreams, Relay, RelayConfig, Outbox};
/// # async fn relay<St: Outbox>(store: St) -> Result<(), sagaflow::outbox::SinkError> {
/// let sink = RedisStreams::connect(RedisConfig::new("redis://127.0.0.1:6379/")).await?;
/// let relay = Relay::new(store, sink, RelayConfig::default());
/// tokio::spawn(relay.run());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStreams {
    connection: ConnectionManager,
    config: RedisConfig,
    url: String,
}

impl core::fmt::Debug for RedisStreams {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RedisStreams")
            .field("url", &self.url)
            .field("prefix", &self.config.prefix)
            .field("max_len", &self.config.max_len)
            .finish_non_exhaustive()
    }
}

impl RedisStreams {
    /// Connects to the server now: fails, naming the URL, if the URL is not a
    /// Redis URL or the server cannot be reached.
    pub async fn connect(config: RedisConfig) -> Result<Self, SinkError> {
        let url = config.display_url();
        let (client, manager_config) = client(&config, &url)?;
        let connection = ConnectionManager::new_with_config(client, manager_config)
            .await
            .map_err(|e| SinkError::new(format!("Redis at {url}: cannot connect: {e}")))?;
        Ok(RedisStreams {
            connection,
            config,
            url,
        })
    }

    /// Connects on the first delivery instead, so that an application can
    /// start while Redis is down (its relay retries). Fails only if the URL
    /// is not a Redis URL. Must be called inside a tokio runtime.
    pub fn connect_lazily(config: RedisConfig) -> Result<Self, SinkError> {
        let url = config.display_url();
        let (client, manager_config) = client(&config, &url)?;
        let connection = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|e| SinkError::new(format!("Redis at {url}: {e}")))?;
        Ok(RedisStreams {
            connection,
            config,
            url,
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// The transaction that writes `messages`: `MULTI`, one `XADD` each, `EXEC`.
    fn transaction(&self, messages: &[Message]) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for message in messages {
            let xadd = pipe
                .cmd("XADD")
                .arg(self.config.stream_for(&message.destination));
            if let Some(max_len) = self.config.max_len {
                xadd.arg("MAXLEN").arg("~").arg(max_len);
            }
            xadd.arg("*").arg("id").arg(&message.id);
            if let Some(saga) = saga_of(&message.id) {
                xadd.arg("saga").arg(saga);
            }
            if let Some(key) = &message.key {
                xadd.arg("key").arg(key);
            }
            xadd.arg("payload")
                .arg(&message.payload)
                .arg("created_ms")
                .arg(message.created_ms);
        }
        pipe
    }
}

impl Sink for RedisStreams {
    async fn deliver(&self, messages: &[Message]) -> Result<(), SinkError> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut connection = self.connection.clone();
        let entries: Vec<String> = self
            .transaction(messages)
            .query_async(&mut connection)
            .await
            .map_err(|e| {
                let streams: Vec<String> = messages
                    .iter()
                    .map(|m| self.config.stream_for(&m.destination))
                    .collect();
                SinkError::new(format!(
                    "Redis at {}: writing {} message(s) to {} failed: {e}",
                    self.url,
                    messages.len(),
                    streams.join(", ")
                ))
            })?;
        if entries.len() != messages.len() {
            return Err(SinkError::new(format!(
                "Redis at {}: the transaction answered {} entry ids for {} messages",
                self.url,
                entries.len(),
                messages.len()
            )));
        }
        Ok(())
    }
}

fn client(
    config: &RedisConfig,
    url: &str,
) -> Result<(redis::Client, ConnectionManagerConfig), SinkError> {
    let client = redis::Client::open(config.url.as_str())
        .map_err(|e| SinkError::new(format!("`{url}` is not a Redis URL: {e}")))?;
    let manager = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.connection_timeout))
        .set_response_timeout(Some(config.response_timeout))
        .set_number_of_retries(config.reconnect_retries)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(1));
    Ok((client, manager))
}

/// The saga id a message id starts with (`<saga id>-…`).
fn saga_of(id: &str) -> Option<&str> {
    let (saga, _) = id.split_once('-')?;
    (saga.len() == 32 && saga.bytes().all(|b| b.is_ascii_hexdigit())).then_some(saga)
}

/// `url` with the password of its user part, if any, as `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((user, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match user.split_once(':') {
        Some((name, _password)) => format!("{scheme}://{name}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows_in_what_errors_name() {
        assert_eq!(
            redact("redis://:hunter2@10.0.0.1:6379/0"),
            "redis://:***@10.0.0.1:6379/0"
        );
        assert_eq!(redact("redis://app:p@ss@host/"), "redis://app:***@host/");
        assert_eq!(redact("redis://app@host/"), "redis://app@host/");
        assert_eq!(redact("redis://127.0.0.1:6379/"), "redis://127.0.0.1:6379/");
    }

    #[test]
    fn the_saga_field_comes_from_the_message_id() {
        let saga = "0123456789abcdef0123456789abcdef";
        assert_eq!(saga_of(&format!("{saga}-s2-0")), Some(saga));
        assert_eq!(saga_of(&format!("{saga}-end-1")), Some(saga));
        assert_eq!(saga_of("order-7"), None);
        assert_eq!(saga_of("plain"), None);
    }
}
