//! The fake services: a directory, a cloud and a network that can be told to
//! misbehave and remember what happened to them.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Duration;

use super::{ProvisionError, User, Vm, lock};

/// A user directory that remembers who was added and who removed.
///
/// Adding is idempotent: a second add with the same key returns the user the
/// first one made.
#[derive(Debug, Default)]
pub struct Directory {
    state: Mutex<DirectoryState>,
}

#[derive(Debug, Default)]
struct DirectoryState {
    audit: Vec<String>,
    users: Vec<User>,
    removed: Vec<User>,
    by_key: HashMap<String, User>,
    next_uid: u32,
}

impl Directory {
    /// An empty directory.
    pub fn new() -> Self {
        Directory::default()
    }

    /// Adds `line` to the audit log.
    pub fn audit(&self, line: String) {
        lock(&self.state).audit.push(line);
    }

    /// The audit log, oldest line first.
    pub fn audit_log(&self) -> Vec<String> {
        lock(&self.state).audit.clone()
    }

    /// The users that exist now.
    pub fn users(&self) -> Vec<User> {
        lock(&self.state).users.clone()
    }

    /// The users that were removed, in the order they were.
    pub fn removed(&self) -> Vec<User> {
        lock(&self.state).removed.clone()
    }

    /// Adds a user named `name`, or returns the one added before under `key`.
    pub fn add(&self, key: &str, name: &str) -> Result<User, ProvisionError> {
        let mut state = lock(&self.state);
        if let Some(user) = state.by_key.get(key) {
            return Ok(user.clone());
        }
        if state.users.iter().any(|u| u.name == name) {
            return Err(ProvisionError::UserExists(name.to_owned()));
        }
        state.next_uid += 1;
        let user = User {
            uid: 1000 + state.next_uid,
            name: name.to_owned(),
        };
        state.users.push(user.clone());
        state.by_key.insert(key.to_owned(), user.clone());
        Ok(user)
    }

    /// Removes `user`; removing one that is gone does nothing.
    pub fn remove(&self, user: &User) {
        let mut state = lock(&self.state);
        if let Some(i) = state.users.iter().position(|u| u == user) {
            let removed = state.users.remove(i);
            state.removed.push(removed);
        }
    }
}

/// A cloud API that creates and deletes VMs, and can be flaky.
///
/// Creation is idempotent: a second create with the same key returns the VM the
/// first one made.
#[derive(Debug, Default)]
pub struct Cloud {
    state: Mutex<CloudState>,
}

#[derive(Debug, Default)]
struct CloudState {
    failing_creates: u32,
    refusing_deletes: bool,
    create_calls: u32,
    delete_calls: u32,
    by_key: HashMap<String, Vm>,
    vms: Vec<Vm>,
    deleted: Vec<Vm>,
    next: u32,
}

impl Cloud {
    /// A cloud that works.
    pub fn new() -> Self {
        Cloud::default()
    }

    /// The same cloud, answering the next `calls` creates with
    /// [`ProvisionError::CloudUnavailable`].
    pub fn failing_creates(self, calls: u32) -> Self {
        lock(&self.state).failing_creates = calls;
        self
    }

    /// The same cloud, refusing every delete with [`ProvisionError::VmLocked`].
    pub fn refusing_deletes(self) -> Self {
        lock(&self.state).refusing_deletes = true;
        self
    }

    /// The VMs that exist now.
    pub fn vms(&self) -> Vec<Vm> {
        lock(&self.state).vms.clone()
    }

    /// The VMs that were deleted, in the order they were.
    pub fn deleted(&self) -> Vec<Vm> {
        lock(&self.state).deleted.clone()
    }

    /// How many creates were asked for, failed ones included.
    pub fn create_calls(&self) -> u32 {
        lock(&self.state).create_calls
    }

    /// How many deletes were asked for, refused ones included.
    pub fn delete_calls(&self) -> u32 {
        lock(&self.state).delete_calls
    }

    /// Creates a VM of `size` for `owner`, or returns the one created before under `key`.
    pub async fn create(&self, key: &str, owner: &User, size: &str) -> Result<Vm, ProvisionError> {
        // A control plane takes a moment.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut state = lock(&self.state);
        state.create_calls += 1;
        if state.failing_creates > 0 {
            state.failing_creates -= 1;
            return Err(ProvisionError::CloudUnavailable);
        }
        if let Some(vm) = state.by_key.get(key) {
            return Ok(vm.clone());
        }
        state.next += 1;
        let vm = Vm {
            id: format!("vm-{}", state.next),
            owner: owner.uid,
            size: size.to_owned(),
        };
        state.by_key.insert(key.to_owned(), vm.clone());
        state.vms.push(vm.clone());
        Ok(vm)
    }

    /// Deletes `vm`; deleting one that is gone does nothing.
    pub async fn delete(&self, vm: &Vm) -> Result<(), ProvisionError> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let mut state = lock(&self.state);
        state.delete_calls += 1;
        if state.refusing_deletes {
            return Err(ProvisionError::VmLocked(vm.id.clone()));
        }
        if let Some(i) = state.vms.iter().position(|v| v == vm) {
            let deleted = state.vms.remove(i);
            state.deleted.push(deleted);
        }
        Ok(())
    }
}

/// An IP address manager with a pool of addresses `10.0.0.1`, `10.0.0.2`, …
///
/// Assignment is idempotent: a second assignment with the same key returns the
/// address of the first. The manager can be told to stall: it assigns the
/// address and then does not answer for a minute, as when a reply is lost.
#[derive(Debug, Default)]
pub struct Network {
    state: Mutex<NetworkState>,
}

#[derive(Debug, Default)]
struct NetworkState {
    free: Vec<Ipv4Addr>,
    assigned: Vec<(String, Ipv4Addr)>,
    by_key: HashMap<String, Ipv4Addr>,
    stalling: u32,
    calls: u32,
    dropping_pings: bool,
    pings: u32,
}

impl Network {
    /// A network with `count` free addresses, from `10.0.0.1` up (at most 254).
    pub fn with_addresses(count: u8) -> Self {
        let free = (1..=count.min(254))
            .rev()
            .map(|i| Ipv4Addr::new(10, 0, 0, i))
            .collect();
        Network {
            state: Mutex::new(NetworkState {
                free,
                ..NetworkState::default()
            }),
        }
    }

    /// A network with no free address: every assignment fails with
    /// [`ProvisionError::OutOfAddresses`].
    pub fn exhausted() -> Self {
        Network::with_addresses(0)
    }

    /// The same network, stalling on the next `calls` assignments after making them.
    pub fn stalling(self, calls: u32) -> Self {
        lock(&self.state).stalling = calls;
        self
    }

    /// The same network, dropping every ping: no machine answers at its address.
    pub fn dropping_pings(self) -> Self {
        lock(&self.state).dropping_pings = true;
        self
    }

    /// How many pings were sent, unanswered ones included.
    pub fn pings(&self) -> u32 {
        lock(&self.state).pings
    }

    /// The addresses in use, with the VM each is assigned to.
    pub fn assigned(&self) -> Vec<(String, Ipv4Addr)> {
        lock(&self.state).assigned.clone()
    }

    /// How many addresses are free.
    pub fn free(&self) -> usize {
        lock(&self.state).free.len()
    }

    /// How many assignments were asked for, failed and stalled ones included.
    pub fn calls(&self) -> u32 {
        lock(&self.state).calls
    }

    /// Assigns a free address to `vm`, or returns the one assigned before under `key`.
    pub async fn assign(&self, key: &str, vm: &Vm) -> Result<Ipv4Addr, ProvisionError> {
        let (ip, stall) = {
            let mut state = lock(&self.state);
            state.calls += 1;
            let ip = match state.by_key.get(key) {
                Some(ip) => *ip,
                None => {
                    let ip = state.free.pop().ok_or(ProvisionError::OutOfAddresses)?;
                    state.by_key.insert(key.to_owned(), ip);
                    state.assigned.push((vm.id.clone(), ip));
                    ip
                }
            };
            let stall = state.stalling > 0;
            if stall {
                state.stalling -= 1;
            }
            (ip, stall)
        };
        if stall {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Ok(ip)
    }

    /// Pings `ip`: answers once the machine there does, or fails with
    /// [`ProvisionError::Unreachable`] if the network drops pings.
    pub async fn ping(&self, ip: Ipv4Addr) -> Result<(), ProvisionError> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let mut state = lock(&self.state);
        state.pings += 1;
        if state.dropping_pings {
            return Err(ProvisionError::Unreachable(ip));
        }
        Ok(())
    }

    /// Returns `ip` to the pool; releasing a free address does nothing.
    pub fn release(&self, ip: Ipv4Addr) {
        let mut state = lock(&self.state);
        if let Some(i) = state.assigned.iter().position(|(_, a)| *a == ip) {
            state.assigned.remove(i);
            state.by_key.retain(|_, a| *a != ip);
            state.free.push(ip);
        }
    }
}
