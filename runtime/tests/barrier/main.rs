//! The TCC participant's barrier on real databases: a repeated phase does
//! nothing, an empty cancel records itself and refuses the late try, a phase
//! rolled back leaves nothing, and a try racing its cancel (separate
//! connections, many keys) ends either with both run or with both skipped,
//! never with a hold left behind or released twice.
//!
//! The participant holds a seat: its try inserts a row into `holds`, its
//! cancel deletes it, its confirm marks it confirmed, each in the transaction
//! of its barrier call. SQLite runs on a file in a tempdir; PostgreSQL on the
//! server at `SAGAFLOW_PG_URL`, each test with tables of its own.

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
#[path = "../support/mod.rs"]
mod support;

use sagaflow::barrier::{Proceed, SkipReason};

/// How many keys a race test races for.
const RACED_KEYS: usize = 200;

/// What one phase of one key did: its answer, and the holds its work
/// touched (inserted, confirmed or deleted; 0 when skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Done {
    proceed: Proceed,
    touched: u64,
}

/// A phase that ran and touched one hold.
const fn run() -> Done {
    Done {
        proceed: Proceed::Run,
        touched: 1,
    }
}

/// A phase skipped for `reason`, that touched nothing.
const fn skip(reason: SkipReason) -> Done {
    Done {
        proceed: Proceed::Skip(reason),
        touched: 0,
    }
}

/// Checks the outcome of a try raced against its cancel, for one key.
fn check_race(key: &str, tried: Done, cancelled: Done) {
    match (tried.proceed, cancelled.proceed) {
        (Proceed::Run, Proceed::Run) => {
            assert_eq!(tried.touched, 1, "{key}: the try held nothing");
            assert_eq!(cancelled.touched, 1, "{key}: the cancel released no hold");
        }
        (Proceed::Skip(SkipReason::TryAfterCancel), Proceed::Skip(SkipReason::EmptyCancel)) => {}
        other => panic!("{key}: try and cancel ended as {other:?}"),
    }
}
