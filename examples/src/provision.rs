//! Provisioning a machine: create a user, create a VM for it, assign the VM an
//! IP address, and check that the machine answers there.
//!
//! Cloud control planes are slow and flaky, so each step here says how long an
//! attempt may take (`timeout`) and how often to try again (`retry`):
//!
//! | step | timeout | retries | undone by |
//! |---|---|---|---|
//! | [`create_user`] | 200 ms | none | [`remove_user`] |
//! | [`create_vm`] | 500 ms | 3, backing off 20–50 ms | [`delete_vm`] (3 retries, from 10 ms) |
//! | [`assign_ip`] | 50 ms | 2, backing off 10–40 ms | [`release_ip`] |
//! | [`check_reachable`] | 100 ms | 2, backing off 10–20 ms | nothing to undo (read-only) |
//!
//! If the network runs out of addresses for good, the VM is deleted and then
//! the user removed. If the machine does not answer at its address, the address
//! is released first, then the VM deleted and the user removed. A compensation
//! runs only when a *later* step fails, so the last step that has an effect
//! needs a step after it that can fail for its compensation to ever run: here
//! that is [`check_reachable`], without which [`release_ip`] could never run (and
//! the saga's graph would show it with no edge into it). If the VM cannot be deleted, the saga still removes the
//! user and ends [`CompensationFailed`](sagaflow::SagaError::CompensationFailed),
//! naming the VM that a person has to clean up.
//!
//! A step whose attempt times out may still have had its effect (the request got
//! through, the answer was lost), and a step may be delivered twice, so every
//! step hands its service its
//! [idempotency key](sagaflow::StepContext::idempotency_key): a retry with the
//! same key gets the same user, VM or address instead of a second one (or, for
//! the user, instead of a "user exists" error).
//!
//! The services are in-memory fakes ([`Directory`], [`Cloud`], [`Network`]) that
//! can be told to misbehave and remember what happened to them; [`Summary`] is
//! a [`Hooks`] that prints each retry and, at the end, the run report.
//!
//! ```
//! use sagaflow::{Phase, Runner};
//! use sagaflow_examples::provision::{Cloud, Directory, Network, ProvisionSaga, Request};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let (directory, network) = (Directory::new(), Network::with_addresses(4));
//! let cloud = Cloud::new().failing_creates(2);
//!
//! let saga = ProvisionSaga::new(&directory, &cloud, &network, Request::new("grace", "small"));
//! let (machine, report) = Runner::new().run_reported(saga).await;
//!
//! assert_eq!(machine.unwrap().ip.to_string(), "10.0.0.1");
//! assert_eq!(report.find("create_vm", Phase::Forward).unwrap().attempts(), 3);
//! # }
//! ```

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sagaflow::{Hooks, RunReport, SagaId, StepContext, saga, step};

mod services;

pub use services::{Cloud, Directory, Network};

/// Locks a fake's state; a panic in another test thread does not make it unusable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The idempotency key of the running step, or a key that is fresh for each call
/// when the step function is called outside a saga.
fn idempotency_key(fallback: &str) -> String {
    match StepContext::current() {
        Some(cx) => cx.idempotency_key().to_string(),
        None => format!("{fallback}-{}", SagaId::random()),
    }
}

// ---------------------------------------------------------------------------
// The request, the results and the error
// ---------------------------------------------------------------------------

/// What a team asked for: an account named `username` with a VM of size `size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The new user's login name.
    pub username: String,
    /// The VM size, such as `small` or `large`.
    pub size: String,
}

impl Request {
    /// A request for user `username` with a VM of size `size`.
    pub fn new(username: &str, size: &str) -> Self {
        Request {
            username: username.to_owned(),
            size: size.to_owned(),
        }
    }
}

/// A user account in the [`Directory`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The directory's numeric id.
    pub uid: u32,
    /// The login name.
    pub name: String,
}

/// A virtual machine in the [`Cloud`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vm {
    /// The cloud's id, such as `vm-1`.
    pub id: String,
    /// The [`User::uid`] of its owner.
    pub owner: u32,
    /// Its size.
    pub size: String,
}

/// What [`provision`] returns: a user with a reachable VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// The user.
    pub user: User,
    /// The user's VM.
    pub vm: Vm,
    /// The VM's address.
    pub ip: Ipv4Addr,
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (uid {}) owns {} ({}) at {}",
            self.user.name, self.user.uid, self.vm.id, self.vm.size, self.ip
        )
    }
}

/// Why an infrastructure service said no.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProvisionError {
    /// The login name is taken.
    UserExists(String),
    /// The cloud API answered 503.
    CloudUnavailable,
    /// The cloud will not delete a VM while a backup of it runs.
    VmLocked(String),
    /// Every address in the pool is in use.
    OutOfAddresses,
    /// The machine did not answer a ping at this address.
    Unreachable(Ipv4Addr),
}

impl fmt::Display for ProvisionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProvisionError::UserExists(name) => write!(f, "user {name} already exists"),
            ProvisionError::CloudUnavailable => f.write_str("cloud API: 503 service unavailable"),
            ProvisionError::VmLocked(id) => write!(f, "{id} is locked by a running backup"),
            ProvisionError::OutOfAddresses => f.write_str("no free IP addresses in the pool"),
            ProvisionError::Unreachable(ip) => write!(f, "no answer from {ip}"),
        }
    }
}

impl std::error::Error for ProvisionError {}

// ---------------------------------------------------------------------------
// The steps and their compensations
// ---------------------------------------------------------------------------

/// Adds the requested user to the directory. Undone by [`remove_user`].
#[step(compensate = remove_user, timeout = "200ms")]
pub async fn create_user(directory: &Directory, request: &Request) -> Result<User, ProvisionError> {
    directory.add(&idempotency_key("create_user"), &request.username)
}

/// Undoes [`create_user`]: removes the user.
pub async fn remove_user(
    directory: &Directory,
    request: &Request,
    user: &User,
) -> Result<(), ProvisionError> {
    let _ = request;
    directory.remove(user);
    Ok(())
}

/// Creates the user's VM. The cloud API is flaky, so each attempt gets 500 ms
/// and up to 3 retries follow a failure. Undone by [`delete_vm`], itself retried
/// up to 3 times.
#[step(
    compensate = delete_vm,
    timeout = "500ms",
    retry(max = 3, backoff = "20ms", max_backoff = "50ms"),
    compensate_retry(max = 3, backoff = "10ms", max_backoff = "50ms")
)]
pub async fn create_vm(
    cloud: &Cloud,
    request: &Request,
    user: &User,
) -> Result<Vm, ProvisionError> {
    cloud
        .create(&idempotency_key("create_vm"), user, &request.size)
        .await
}

/// Undoes [`create_vm`]: deletes the VM.
pub async fn delete_vm(
    cloud: &Cloud,
    request: &Request,
    user: &User,
    vm: &Vm,
) -> Result<(), ProvisionError> {
    let _ = (request, user);
    cloud.delete(vm).await
}

/// Gives the VM an address. Each attempt gets 50 ms, and up to 2 retries follow
/// a failure or a timeout. Undone by [`release_ip`].
#[step(
    compensate = release_ip,
    timeout = "50ms",
    retry(max = 2, backoff = "10ms", max_backoff = "40ms")
)]
pub async fn assign_ip(network: &Network, vm: &Vm) -> Result<Ipv4Addr, ProvisionError> {
    network.assign(&idempotency_key("assign_ip"), vm).await
}

/// Undoes [`assign_ip`]: returns the address to the pool. It runs when
/// [`check_reachable`] fails for good.
pub async fn release_ip(network: &Network, vm: &Vm, ip: &Ipv4Addr) -> Result<(), ProvisionError> {
    let _ = vm;
    network.release(*ip);
    Ok(())
}

/// Checks that the machine answers at its new address. Each attempt gets
/// 100 ms, and up to 2 retries follow (a VM takes a moment to boot).
///
/// It changes nothing, so it has nothing to undo; if it fails for good, the
/// steps before it are undone: the address released, the VM deleted, the user
/// removed.
#[step(
    read_only,
    timeout = "100ms",
    retry(max = 2, backoff = "10ms", max_backoff = "20ms")
)]
pub async fn check_reachable(network: &Network, ip: &Ipv4Addr) -> Result<(), ProvisionError> {
    network.ping(*ip).await
}

/// Provisions a machine: a user, a VM for it, and an address for the VM, at
/// which the machine must answer.
///
/// If a step fails for good, the steps before it are undone in reverse order:
/// the address released, the VM deleted, then the user removed. Run it with a
/// [`Runner`](sagaflow::Runner) through [`ProvisionSaga`] to add hooks such as
/// [`Summary`] or get a report.
#[saga]
pub async fn provision(
    directory: &Directory,
    cloud: &Cloud,
    network: &Network,
    request: Request,
) -> Result<Machine, ProvisionError> {
    let user = create_user(directory, &request).await?;
    let vm = create_vm(cloud, &request, &user).await?;
    let ip = assign_ip(network, &vm).await?;
    check_reachable(network, &ip).await?;
    // A small step written in place (its name is its identity in the journal,
    // the graph and the report): a line in the directory's audit log. Read-only:
    // a later failure has nothing of it to undo.
    let _ = sagaflow::inline!(audit, read_only, async {
        directory.audit(format!("{} owns {} at {}", user.name, vm.id, ip));
        Ok(())
    })?;
    Ok(Machine { user, vm, ip })
}

// ---------------------------------------------------------------------------
// The summary
// ---------------------------------------------------------------------------

/// [`Hooks`] for an operator's terminal: one line for each retry and each
/// failure, and the run report when the saga ends.
#[derive(Debug, Default)]
pub struct Summary;

impl Hooks for Summary {
    fn step_retrying(&self, cx: &StepContext, error: &str, delay: Duration) {
        println!(
            "  {} attempt {} failed ({error}); retrying in {delay:.1?}",
            cx.step(),
            cx.attempt()
        );
    }

    fn step_failed(&self, cx: &StepContext, error: &str) {
        println!(
            "  {} gave up after {} attempt(s) ({error}); undoing",
            cx.step(),
            cx.attempt()
        );
    }

    fn compensation_retrying(&self, cx: &StepContext, error: &str, delay: Duration) {
        println!(
            "  undoing {} attempt {} failed ({error}); retrying in {delay:.1?}",
            cx.step(),
            cx.attempt()
        );
    }

    fn compensation_failed(&self, cx: &StepContext, error: &str) {
        println!(
            "  could not undo {} ({error}); it needs a person",
            cx.step()
        );
    }

    fn saga_finished(&self, report: &RunReport) {
        println!("{report}");
    }
}
