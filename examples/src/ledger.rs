//! An append-only file in which fake services write down what they did, so that
//! their effects outlive the process: what a real bank or airline keeps in its
//! own database.
//!
//! A service call writes one, two or three lines of plain text, each
//! `<what> <saga id> <idempotency key> [<JSON details>]`:
//!
//! ```text
//! call:debit 01a23385005dccae7433410b9bee7adf 01a23385005dccae7433410b9bee7adf-0
//! debit 01a23385005dccae7433410b9bee7adf 01a23385005dccae7433410b9bee7adf-0 {"reference":"PAY-1","customer":"ada","amount":90000}
//! ```
//!
//! where `<what>` is
//!
//! - an effect, such as `debit` or `flight`, with the JSON of its result: the
//!   service did something (took money, booked a seat). The line is written, and
//!   flushed to the disk with `sync_data` unless the ledger was opened without
//!   syncing, before the service answers;
//! - `call:<effect>`: the service was asked to do it (written for every call,
//!   refused ones included, before the service decides), with no details;
//! - `again:<effect>`: the service was asked again with a key it had already
//!   done, and answered with what it did the first time instead of doing it
//!   twice, with no details. This is how a step re-run after a crash stays
//!   exactly-once.
//!
//! The idempotency key is the step's (`<saga id>-<step index>`, with `-undo` for
//! its compensation).
//!
//! A service call made outside a saga (no [`StepContext`]) is written with `-`
//! for the saga id and the key, and is never matched by key.
//!
//! ```
//! use sagaflow_examples::ledger::Ledger;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let ledger = Ledger::open(dir.path().join("ledger"), true).unwrap();
//! assert!(ledger.lines().is_empty());
//! ```

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use sagaflow::StepContext;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One line of a [`Ledger`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// What happened: an effect (`debit`), `call:<effect>` or `again:<effect>`.
    pub what: String,
    /// The saga run the call came from, or `-`.
    pub saga: String,
    /// The idempotency key the call came with, or `-`.
    pub key: String,
    /// The effect's result as JSON; empty for `call:` and `again:` lines.
    pub details: String,
}

impl Line {
    /// Parses one line (without its newline); `None` if it has fewer than three fields.
    pub fn parse(text: &str) -> Option<Line> {
        let mut fields = text.splitn(4, ' ');
        let what = fields.next().filter(|s| !s.is_empty())?.to_owned();
        let saga = fields.next()?.to_owned();
        let key = fields.next()?.to_owned();
        let details = fields.next().unwrap_or("").to_owned();
        Some(Line {
            what,
            saga,
            key,
            details,
        })
    }

    /// The effect this line is about: `debit` for `debit`, `call:debit` and `again:debit`.
    pub fn effect(&self) -> &str {
        self.what
            .strip_prefix("call:")
            .or_else(|| self.what.strip_prefix("again:"))
            .unwrap_or(&self.what)
    }

    /// Whether the line records an effect (not a `call:` or an `again:`).
    pub fn is_effect(&self) -> bool {
        self.effect() == self.what
    }

    /// The details decoded as a `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_str(&self.details).map_err(|e| {
            format!(
                "ledger line `{} {} {}` has unreadable details: {e}",
                self.what, self.saga, self.key
            )
        })
    }
}

/// Where a service call comes from: the saga run and idempotency key of the
/// step (or compensation) that made it, read from [`StepContext::current`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The saga run's id, or `-` outside a saga.
    pub saga: String,
    /// The idempotency key, or `-` outside a saga.
    pub key: String,
}

impl Caller {
    /// The step or compensation running now, or `-` `-` outside a saga.
    pub fn current() -> Caller {
        match StepContext::current() {
            Some(cx) => Caller {
                saga: cx.saga_id().to_string(),
                key: cx.idempotency_key().to_string(),
            },
            None => Caller {
                saga: "-".to_owned(),
                key: "-".to_owned(),
            },
        }
    }

    /// Whether the call has a key that can be matched.
    pub fn is_keyed(&self) -> bool {
        self.key != "-"
    }
}

/// An append-only, line-per-call record of what fake services did, in a file.
///
/// Cheap to share behind an [`Arc`](std::sync::Arc); every method takes `&self`.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    sync: bool,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    file: File,
    lines: Vec<Line>,
    /// `(effect, key)` → index in `lines` of the effect line.
    effects: HashMap<(String, String), usize>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Ledger {
    /// Opens the ledger in the file at `path`, creating it if needed, and reads
    /// what it holds. A last line cut short (the process died while writing it)
    /// is dropped from the file.
    ///
    /// With `sync`, each effect line is flushed to the disk (`sync_data`) before
    /// the service answers, so that it survives a power loss; without it, a line
    /// survives the death of the process but perhaps not of the machine.
    pub fn open(path: impl AsRef<Path>, sync: bool) -> io::Result<Ledger> {
        let path = path.as_ref().to_owned();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| with_path(&path, "cannot open", e))?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| with_path(&path, "cannot read", e))?;
        let whole = text.rfind('\n').map_or(0, |i| i + 1);
        if whole < text.len() {
            file.set_len(whole as u64)
                .map_err(|e| with_path(&path, "cannot repair", e))?;
        }
        let lines: Vec<Line> = text[..whole].lines().filter_map(Line::parse).collect();
        let mut effects = HashMap::new();
        for (i, line) in lines.iter().enumerate() {
            if line.is_effect() && line.key != "-" {
                effects.insert((line.what.clone(), line.key.clone()), i);
            }
        }
        Ok(Ledger {
            path,
            sync,
            state: Mutex::new(State {
                file,
                lines,
                effects,
            }),
        })
    }

    /// Reads the ledger in the file at `path` without opening it for writing;
    /// a missing file reads as empty.
    pub fn read(path: impl AsRef<Path>) -> io::Result<Vec<Line>> {
        let path = path.as_ref();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(with_path(path, "cannot read", e)),
        };
        let whole = text.rfind('\n').map_or(0, |i| i + 1);
        Ok(text[..whole].lines().filter_map(Line::parse).collect())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every line, in the order written.
    pub fn lines(&self) -> Vec<Line> {
        lock(&self.state).lines.clone()
    }

    /// The lines whose effect is `effect` (effects only, not calls).
    pub fn effects(&self, effect: &str) -> Vec<Line> {
        lock(&self.state)
            .lines
            .iter()
            .filter(|l| l.what == effect)
            .cloned()
            .collect()
    }

    /// Records a call to `effect` from `caller`; if that caller's key already did
    /// it, records `again:<effect>` too and returns the earlier result.
    ///
    /// The caller of this method holds its service's lock until it has also
    /// called [`done`](Ledger::done), so that two calls with one key cannot
    /// both do the effect.
    pub fn call<T: DeserializeOwned>(
        &self,
        effect: &str,
        caller: &Caller,
    ) -> Result<Option<T>, String> {
        let mut state = lock(&self.state);
        state.write(&self.path, &format!("call:{effect}"), caller, "", false)?;
        if !caller.is_keyed() {
            return Ok(None);
        }
        let Some(&i) = state.effects.get(&(effect.to_owned(), caller.key.clone())) else {
            return Ok(None);
        };
        let earlier = state.lines[i].decode::<T>()?;
        state.write(&self.path, &format!("again:{effect}"), caller, "", false)?;
        Ok(Some(earlier))
    }

    /// Records that `caller` did `effect`, with this result; durable (to the
    /// ledger's level) when it returns.
    pub fn done<T: Serialize>(
        &self,
        effect: &str,
        caller: &Caller,
        result: &T,
    ) -> Result<(), String> {
        let details = serde_json::to_string(result)
            .map_err(|e| format!("cannot write `{effect}` to the ledger: {e}"))?;
        let mut state = lock(&self.state);
        state.write(&self.path, effect, caller, &details, self.sync)?;
        if caller.is_keyed() {
            let i = state.lines.len() - 1;
            state
                .effects
                .insert((effect.to_owned(), caller.key.clone()), i);
        }
        Ok(())
    }
}

impl State {
    fn write(
        &mut self,
        path: &Path,
        what: &str,
        caller: &Caller,
        details: &str,
        sync: bool,
    ) -> Result<(), String> {
        let mut text = format!("{what} {} {}", caller.saga, caller.key);
        if !details.is_empty() {
            text.push(' ');
            text.push_str(details);
        }
        text.push('\n');
        // One write per line: a process killed mid-call leaves whole lines.
        self.file
            .write_all(text.as_bytes())
            .map_err(|e| with_path(path, "cannot append to", e).to_string())?;
        if sync {
            self.file
                .sync_data()
                .map_err(|e| with_path(path, "cannot sync", e).to_string())?;
        }
        self.lines.extend(Line::parse(text.trim_end()));
        Ok(())
    }
}

fn with_path(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("ledger {}: {what} the file: {e}", path.display()),
    )
}
