//! What the store tests share: where the PostgreSQL and Redis servers are, a
//! schema of its own for each test so that tests run in parallel, and stores
//! filled with outbox messages.
#![allow(dead_code)] // each test file uses a part

pub mod outbox;

/// The server's URL from `SAGAFLOW_PG_URL`, or `None` after saying the test
/// skipped. With `CI` set a missing URL fails the test: CI must run them.
pub fn pg_url() -> Option<String> {
    env_url("SAGAFLOW_PG_URL", "PostgreSQL")
}

/// The URL in `var`, or `None` after saying the test skipped; with `CI` set,
/// a panic that names the variable and the server.
fn env_url(var: &str, server: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            let ci = std::env::var("CI").unwrap_or_default();
            if !ci.is_empty() && ci != "false" && ci != "0" {
                panic!(
                    "{var} not set, and CI is: the {server} tests must run in CI \
                     (.ci/run starts a server and sets it)"
                );
            }
            eprintln!("skipped: {var} not set");
            None
        }
    }
}

/// The number in environment variable `var`, or `default`: how a long test
/// (a kill test) is made longer or shorter by hand.
pub fn env_count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// A fresh schema name for test `name`.
pub fn schema_for(name: &str) -> String {
    let mut base: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    base.truncate(40);
    format!("t_{base}_{:08x}", fastrand::u32(..))
}

/// A plain client on the test server, for what a test does behind the store.
#[cfg(feature = "postgres")]
pub async fn raw_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to SAGAFLOW_PG_URL");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// The Redis server's URL from `SAGAFLOW_REDIS_URL`, or `None` after saying
/// the test skipped. With `CI` set a missing URL fails the test.
pub fn redis_url() -> Option<String> {
    env_url("SAGAFLOW_REDIS_URL", "Redis")
}
