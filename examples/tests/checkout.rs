//! The `checkout` example: what each of its modes sends, read from its output
//! and, with `--redis`, from the Redis streams themselves.

use std::process::Command;

fn run(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_checkout"))
        .args(args)
        .output()
        .expect("the example runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    text
}

/// The printed messages as `(destination, order)`, in the order printed.
fn printed(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| {
            ["payments ", "audit ", "notifications "]
                .iter()
                .any(|d| l.starts_with(d))
        })
        .map(|l| {
            let destination = l.split(' ').next().unwrap().to_owned();
            let json = &l[l.find('{').expect("a JSON payload")..];
            let value: serde_json::Value = serde_json::from_str(json).unwrap();
            (destination, value["order"].as_str().unwrap().to_owned())
        })
        .collect()
}

fn expected() -> Vec<(String, String)> {
    [
        ("payments", "o-1"),
        ("audit", "o-1"),
        ("notifications", "o-1"),
        ("payments", "o-2"),
        ("payments", "o-2"),
    ]
    .into_iter()
    .map(|(d, o)| (d.to_owned(), o.to_owned()))
    .collect()
}

#[test]
fn durably_only_what_happened_is_relayed() {
    let text = run(&[]);
    assert_eq!(printed(&text), expected(), "{text}");
    assert!(text.contains("o-2: not checked out"), "{text}");
    assert!(text.contains("payment refunded"), "{text}");
    assert!(
        text.contains("Relayed: 5 delivered, 0 to retry, 0 dead."),
        "{text}"
    );
}

#[test]
fn in_memory_the_runner_s_sink_gets_the_same_messages() {
    let text = run(&["--memory"]);
    assert_eq!(printed(&text), expected(), "{text}");
}

/// The Redis server the tests may use; `None` (and the test skipped) locally
/// without one, a failure in CI, which starts one.
fn redis_url() -> Option<String> {
    match std::env::var("SAGAFLOW_REDIS_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("SAGAFLOW_REDIS_URL is not set, and CI must run the Redis tests")
        }
        Err(_) => {
            eprintln!("skipped: SAGAFLOW_REDIS_URL is not set");
            None
        }
    }
}

#[cfg(feature = "redis")]
#[test]
fn with_redis_the_messages_land_in_one_stream_per_destination() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("checkout-test-{}:", std::process::id());
    let text = run(&["--redis", &url, "--prefix", &prefix]);
    assert!(text.contains("Relayed: 5 delivered"), "{text}");
    // `-u` takes the whole URL, database number included.
    let count = |destination: &str| {
        let out = Command::new("redis-cli")
            .args(["-u", &url, "XLEN", &format!("{prefix}{destination}")])
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(count("payments"), "3");
    assert_eq!(count("audit"), "1");
    assert_eq!(count("notifications"), "1");
    let _ = Command::new("redis-cli")
        .args(["-u", &url, "DEL"])
        .args(["payments", "audit", "notifications"].map(|d| format!("{prefix}{d}")))
        .output();
}

#[cfg(not(feature = "redis"))]
#[test]
fn with_redis_the_messages_land_in_one_stream_per_destination() {
    let _ = redis_url();
    eprintln!("skipped: built without the `redis` feature");
}
