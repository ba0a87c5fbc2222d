//! A store filled by real durable runs of a small saga: committed,
//! compensated, parked (twice) and running sagas, for the CLI's and the
//! page's tests. Some texts are hostile, to check that every view escapes.

#![allow(dead_code)] // each test file uses its own part of this kit

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sagaflow::durable::{Durability, Executor, SqliteStore};
use sagaflow::{SagaId, saga, step};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore};

/// Held while this test process starts a child and while it closes a store:
/// a child forked while the process closes a store's lock file would hold
/// that lock (the descriptor it inherited) until it execs, and a store opened
/// in that moment, by a test or by the command it starts, would be refused.
pub static SPAWN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Starts `command` under [`SPAWN`]; `spawn` returns once the child has
/// exec'd, so it no longer holds anything it inherited.
pub fn spawn(command: &mut Command) -> std::process::Child {
    let _held = SPAWN.lock().unwrap_or_else(|p| p.into_inner());
    command.spawn().unwrap()
}

/// The hostile customer name, in the parked saga's input and error texts.
pub const HOSTILE: &str = "<script>alert('x')</script><img src=x onerror=alert(1)>\"&";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trip {
    pub customer: String,
    pub seats: u32,
}

#[derive(Debug)]
pub struct DeskError(String);

impl std::fmt::Display for DeskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The travel desk the steps call: flags say what fails.
#[derive(Clone)]
pub struct Desk(Arc<DeskState>);

pub struct DeskState {
    fail_charge: AtomicBool,
    fail_release: AtomicBool,
    hang_ticket: AtomicBool,
    entered: Notify,
    never: Semaphore,
}

impl Default for Desk {
    fn default() -> Self {
        Desk(Arc::new(DeskState {
            fail_charge: AtomicBool::new(false),
            fail_release: AtomicBool::new(false),
            hang_ticket: AtomicBool::new(false),
            entered: Notify::new(),
            never: Semaphore::new(0),
        }))
    }
}

#[step(compensate = release_seat, compensate_retry(max = 1, backoff = "1ms"))]
async fn hold_seat(desk: &Desk, trip: &Trip) -> Result<u64, DeskError> {
    let _ = (desk, trip);
    Ok(42)
}

async fn release_seat(desk: &Desk, trip: &Trip, seat: &u64) -> Result<(), DeskError> {
    if desk.0.fail_release.load(Ordering::SeqCst) {
        return Err(DeskError(format!(
            "seat {seat} of {} could not be released: airline offline",
            trip.customer
        )));
    }
    Ok(())
}

#[step(compensate = refund_card)]
async fn charge_card(desk: &Desk, trip: &Trip) -> Result<u64, DeskError> {
    if desk.0.fail_charge.load(Ordering::SeqCst) {
        return Err(DeskError(format!("card of {} declined", trip.customer)));
    }
    Ok(u64::from(trip.seats) * 100)
}

async fn refund_card(desk: &Desk, trip: &Trip, paid: &u64) -> Result<(), DeskError> {
    let _ = (desk, trip, paid);
    Ok(())
}

#[step(retriable)]
async fn send_ticket(desk: &Desk, paid: &u64) -> Result<String, DeskError> {
    if desk.0.hang_ticket.load(Ordering::SeqCst) {
        desk.0.entered.notify_one();
        let _ = desk.0.never.acquire().await;
    }
    Ok(format!("ticket for {paid}"))
}

#[saga]
async fn book_trip(desk: &Desk, trip: Trip) -> Result<String, DeskError> {
    let _seat = hold_seat(desk, &trip).await?;
    let paid = charge_card(desk, &trip).await?;
    let ticket = send_ticket(desk, &paid).await?;
    Ok(ticket)
}

/// The ids of the sagas in a filled store.
#[derive(Debug, Clone, Copy)]
pub struct Ids {
    pub committed: SagaId,
    pub compensated: SagaId,
    /// Parked, with hostile text in its input and errors.
    pub parked: SagaId,
    /// Parked too, for a second intervention.
    pub parked_again: SagaId,
    /// Stopped in `send_ticket` by a crash.
    pub running: SagaId,
}

fn trip(customer: &str) -> Trip {
    Trip {
        customer: customer.to_owned(),
        seats: 2,
    }
}

/// Fills `sagas.db` in `dir` by running the saga five times, the last one
/// killed mid-step (its runtime dropped), and closes the store.
pub fn fill(dir: &Path) -> (PathBuf, Ids) {
    let path = dir.join("sagas.db");
    let opened = path.clone();
    // The store opens and closes inside: no child may be forked meanwhile.
    let _held = SPAWN.lock().unwrap_or_else(|p| p.into_inner());
    let ids = fill_with(async move { SqliteStore::open(&opened, Durability::Full).unwrap() });
    (path, ids)
}

/// The same runs over the store `open` makes, on a runtime of their own that
/// is dropped at the end (the running saga's "crash").
pub fn fill_with<St, F>(open: F) -> Ids
where
    St: sagaflow::durable::Store + Clone,
    F: std::future::Future<Output = St>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let ids = runtime.block_on(async {
        let store = open.await;
        let executor = Executor::new(store)
            .resource(Desk::default())
            .register::<BookTripSaga>();
        let desk = executor.resources().get::<Desk>().unwrap().clone();
        let run = |customer: &'static str| {
            let executor = executor.clone();
            let desk = desk.clone();
            async move {
                let started = executor
                    .start(BookTripSaga::new(&desk, trip(customer)))
                    .await
                    .unwrap();
                let id = started.id();
                let _ = started.outcome().await.unwrap();
                id
            }
        };
        let committed = run("Ada").await;
        desk.0.fail_charge.store(true, Ordering::SeqCst);
        let compensated = run("Grace").await;
        desk.0.fail_release.store(true, Ordering::SeqCst);
        let parked = run(HOSTILE).await;
        let parked_again = run("Linus").await;
        desk.0.fail_charge.store(false, Ordering::SeqCst);
        desk.0.fail_release.store(false, Ordering::SeqCst);
        desk.0.hang_ticket.store(true, Ordering::SeqCst);
        let started = executor
            .start(BookTripSaga::new(&desk, trip("Barbara")))
            .await
            .unwrap();
        let running = started.id();
        let entered = desk.0.entered.notified();
        let task = started.spawn();
        entered.await;
        drop(task); // detached: dropped with the runtime, as in a crash
        Ids {
            committed,
            compensated,
            parked,
            parked_again,
            running,
        }
    });
    drop(runtime);
    ids
}

/// Runs the built `sagaflow` with these arguments.
pub fn sagaflow(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sagaflow"));
    command
        .args(args)
        .env_remove("SAGAFLOW_STORE")
        .env_remove("SAGAFLOW_TOKEN");
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    spawn(&mut command).wait_with_output().unwrap()
}

/// Stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// A `sagaflow serve` child, killed when dropped.
pub struct Server {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Server {
    /// Starts `sagaflow serve` on a free loopback port with `extra` arguments
    /// and waits until it says where it listens.
    pub fn start(store: &Path, extra: &[&str]) -> Server {
        use std::io::BufRead;
        let mut command = Command::new(env!("CARGO_BIN_EXE_sagaflow"));
        command
            .args([
                "serve",
                "--store",
                store.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env_remove("SAGAFLOW_TOKEN")
            .stdout(std::process::Stdio::piped());
        let mut child = spawn(&mut command);
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let start = line
            .find("http://")
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        let base = line[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches('/');
        let addr = base.trim_start_matches("http://").to_owned();
        Server {
            child,
            base: base.to_owned(),
            addr,
        }
    }

    /// One HTTP/1.1 request; answers the status, the headers and the body.
    pub fn request(&self, method: &str, path: &str, form: Option<&str>) -> (u16, String, String) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&self.addr).unwrap();
        let body = form.unwrap_or("");
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        if form.is_some() {
            request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_owned(), body.to_owned())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `text` encoded for a form body.
pub fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
