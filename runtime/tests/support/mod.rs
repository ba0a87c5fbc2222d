//! What the store tests share: where the PostgreSQL server is, and a schema
//! of its own for each test so that tests run in parallel.
#![allow(dead_code)] // each test file uses a part

/// The server's URL from `SAGAFLOW_PG_URL`, or `None` after saying the test
/// skipped. With `CI` set a missing URL fails the test: CI must run them.
pub fn pg_url() -> Option<String> {
    match std::env::var("SAGAFLOW_PG_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            let ci = std::env::var("CI").unwrap_or_default();
            if !ci.is_empty() && ci != "false" && ci != "0" {
                panic!(
                    "SAGAFLOW_PG_URL not set, and CI is: the PostgreSQL tests must run in CI \
                     (.ci/run starts a server and sets it)"
                );
            }
            eprintln!("skipped: SAGAFLOW_PG_URL not set");
            None
        }
    }
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
