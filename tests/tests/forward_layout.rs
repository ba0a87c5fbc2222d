//! The forward path as straight-line code: what a saga still holds between its
//! steps, where it lets go of a value (on success and on failure, relative to the
//! compensations), that compensations still see what they need, and that the
//! saga's future stays `Send` and runs the same in memory, durably and under the
//! test kit.

use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use sagaflow::durable::{Durability, Executor, SagaStatus, SqliteStore, Store};
use sagaflow::testing::SagaTest;
use sagaflow::{Runner, saga, step};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Oops(String);

impl fmt::Display for Oops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Oops {}

#[derive(Default)]
struct Inner {
    log: Mutex<Vec<String>>,
    /// The step made to fail, and how many more times it fails (`u32::MAX`: always).
    fail_at: Mutex<Option<(&'static str, u32)>>,
    /// Effects of the compensatable steps still in place, by step name.
    held: Mutex<BTreeSet<&'static str>>,
}

/// What the steps, compensations and dropped values saw, in order. A handle:
/// clones share it, so it can be a durable executor's resource.
#[derive(Clone, Default)]
struct World(Arc<Inner>);

impl World {
    fn failing(step: &'static str) -> Self {
        Self::failing_times(step, u32::MAX)
    }
    fn failing_times(step: &'static str, times: u32) -> Self {
        let w = World::default();
        *w.0.fail_at.lock().unwrap() = Some((step, times));
        w
    }
    fn log(&self, entry: impl Into<String>) {
        self.0.log.lock().unwrap().push(entry.into());
    }
    fn entries(&self) -> Vec<String> {
        self.0.log.lock().unwrap().clone()
    }
    fn held(&self) -> Vec<&'static str> {
        self.0.held.lock().unwrap().iter().copied().collect()
    }
    fn maybe_fail(&self, step: &'static str) -> Result<(), Oops> {
        let mut fail_at = self.0.fail_at.lock().unwrap();
        match &mut *fail_at {
            Some((name, left)) if *name == step && *left > 0 => {
                if *left != u32::MAX {
                    *left -= 1;
                }
                Err(Oops(format!("{step} refused")))
            }
            _ => Ok(()),
        }
    }
    /// A value that logs its drop into this world.
    fn tracked(&self, name: &'static str, value: u64) -> Tracked {
        Tracked {
            world: self.clone(),
            name,
            value,
        }
    }
}

/// A value that logs when it is dropped, so a test sees how long the saga held it.
struct Tracked {
    world: World,
    name: &'static str,
    value: u64,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.world.log(format!("drop {}", self.name));
    }
}

#[step(compensate = unnote)]
async fn note(world: &World, name: &'static str, value: u64) -> Result<u64, Oops> {
    world.maybe_fail(name)?;
    world.log(format!("{name} {value}"));
    world.0.held.lock().unwrap().insert(name);
    Ok(value + 1)
}

async fn unnote(world: &World, name: &'static str, value: u64, out: &u64) -> Result<(), Oops> {
    world.log(format!("undo {name} {value}->{out}"));
    world.0.held.lock().unwrap().remove(name);
    Ok(())
}

/// Reads a tracked value by reference; undone like `note`.
#[step(compensate = unweigh)]
async fn weigh(world: &World, tracked: &Tracked) -> Result<u64, Oops> {
    world.maybe_fail("weigh")?;
    world.log(format!("weigh {} {}", tracked.name, tracked.value));
    Ok(tracked.value)
}

async fn unweigh(world: &World, tracked: &Tracked, _: &u64) -> Result<(), Oops> {
    world.log(format!("undo weigh {}", tracked.name));
    Ok(())
}

#[step(read_only)]
async fn peek(world: &World, value: u64) -> Result<u64, Oops> {
    world.maybe_fail("peek")?;
    world.log(format!("peek {value}"));
    Ok(value * 2)
}

#[step(pivot)]
async fn seal(world: &World, value: u64) -> Result<u64, Oops> {
    world.maybe_fail("seal")?;
    world.log(format!("seal {value}"));
    Ok(value + 100)
}

#[step(retriable, retry(backoff = "10ms", max_backoff = "40ms"))]
async fn announce(world: &World, tracked: &Tracked, value: u64) -> Result<(), Oops> {
    world.maybe_fail("announce")?;
    world.log(format!("announce {} {value}", tracked.name));
    Ok(())
}

#[saga]
async fn late_input(world: &World, ticket: Tracked) -> Result<u64, Oops> {
    // `ticket` is read only by the final `Ok(..)`: no compensation needs it.
    let first = note(world, "first", 1).await?;
    let second = note(world, "second", first).await?;
    Ok(second + ticket.value)
}

#[tokio::test(start_paused = true)]
async fn an_input_only_the_final_ok_reads_is_let_go_before_compensating() {
    let world = World::default();
    let ticket = world.tracked("ticket", 10);
    assert_eq!(late_input(&world, ticket).await.unwrap(), 13);
    assert_eq!(world.entries(), ["first 1", "second 2", "drop ticket"]);

    // The failing step's state holds only what the compensations read: `ticket`
    // is dropped when the saga turns back, before the first compensation runs.
    let world = World::failing("second");
    let ticket = world.tracked("ticket", 10);
    let err = late_input(&world, ticket).await.unwrap_err();
    assert_eq!(err.failed_step(), "note");
    assert_eq!(err.undone(), ["note"]);
    assert_eq!(
        world.entries(),
        ["first 1", "drop ticket", "undo first 1->2"]
    );
}

#[saga]
async fn early_local(world: &World, n: u64) -> Result<u64, Oops> {
    // A local before the first step, read only by the last step.
    let tag: Tracked = world.tracked("tag", n);
    let first = note(world, "first", n).await?;
    let second = note(world, "second", first).await?;
    let weight = weigh(world, &tag).await?;
    Ok(second + weight)
}

#[tokio::test(start_paused = true)]
async fn a_local_read_only_by_a_later_step_is_let_go_before_compensating() {
    let world = World::default();
    assert_eq!(early_local(&world, 5).await.unwrap(), 12);
    assert_eq!(
        world.entries(),
        ["first 5", "second 6", "weigh tag 5", "drop tag"]
    );

    // `second` fails: undoing `first` does not read `tag`, so it goes first.
    let world = World::failing("second");
    let err = early_local(&world, 5).await.unwrap_err();
    assert!(err.is_compensated());
    assert_eq!(world.entries(), ["first 5", "drop tag", "undo first 5->6"]);

    // `weigh` fails: its own compensation never runs, `tag` goes before the others.
    let world = World::failing("weigh");
    let err = early_local(&world, 5).await.unwrap_err();
    assert_eq!(err.undone(), ["note", "note"]);
    assert_eq!(
        world.entries(),
        [
            "first 5",
            "second 6",
            "drop tag",
            "undo second 6->7",
            "undo first 5->6"
        ]
    );
}

#[saga]
async fn between_steps(world: &World, n: u64) -> Result<u64, Oops> {
    let first = note(world, "first", n).await?;
    // Read only by the next local: let go right after it, before `second`.
    let label: Tracked = world.tracked("label", first);
    let release: u64 = label.value * 10;
    let second = note(world, "second", release).await?;
    // Read by nothing.
    let spare: Tracked = world.tracked("spare", second);
    let third = note(world, "third", second).await?;
    Ok(third)
}

#[tokio::test(start_paused = true)]
async fn values_nothing_reads_any_more_are_dropped_where_they_were_last_needed() {
    let world = World::default();
    assert_eq!(between_steps(&world, 1).await.unwrap(), 22);
    assert_eq!(
        world.entries(),
        [
            "first 1",
            "drop label",
            "second 20",
            "drop spare",
            "third 21"
        ]
    );

    // Failing, the compensations still see the local `release` they read again.
    let world = World::failing("third");
    let err = between_steps(&world, 1).await.unwrap_err();
    assert_eq!(err.undone(), ["note", "note"]);
    assert_eq!(
        world.entries(),
        [
            "first 1",
            "drop label",
            "second 20",
            "drop spare",
            "undo second 20->21",
            "undo first 1->2"
        ]
    );
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    name: String,
    label: String,
    last: u64,
}

#[saga]
async fn unnamed_outputs(world: &World, name: String, n: u64) -> Result<Outcome, Oops> {
    let _ = note(world, "first", n).await?;
    note(world, "second", n + 1).await?;
    let label: String = format!("{name}-{n}");
    let last = note(world, "third", n + 2).await?;
    // Moves an input, a local and nothing else.
    Ok(Outcome { name, label, last })
}

#[tokio::test(start_paused = true)]
async fn unnamed_step_outputs_reach_their_compensations_and_the_final_ok_moves_values() {
    let world = World::default();
    let out = unnamed_outputs(&world, "ann".into(), 1).await.unwrap();
    assert_eq!(
        out,
        Outcome {
            name: "ann".into(),
            label: "ann-1".into(),
            last: 4
        }
    );
    assert_eq!(world.entries(), ["first 1", "second 2", "third 3"]);

    let world = World::failing("third");
    let err = unnamed_outputs(&world, "ann".into(), 1).await.unwrap_err();
    assert_eq!(err.failed_step(), "note");
    assert_eq!(err.undone(), ["note", "note"]);
    // `let _ =` and a bare call keep their outputs for their compensations.
    assert_eq!(
        world.entries(),
        ["first 1", "second 2", "undo second 2->3", "undo first 1->2"]
    );
    assert!(world.held().is_empty());
}

#[saga]
async fn one_step(world: &World, ticket: Tracked) -> Result<u64, Oops> {
    let only = note(world, "only", ticket.value).await?;
    Ok(only)
}

#[tokio::test(start_paused = true)]
async fn a_saga_of_one_step_runs_and_fails_with_nothing_to_undo() {
    let world = World::default();
    let ticket = world.tracked("ticket", 3);
    assert_eq!(one_step(&world, ticket).await.unwrap(), 4);
    assert_eq!(world.entries(), ["only 3", "drop ticket"]);

    let world = World::failing("only");
    let ticket = world.tracked("ticket", 3);
    let err = one_step(&world, ticket).await.unwrap_err();
    assert_eq!(err.failed_step(), "note");
    assert!(err.undone().is_empty());
    assert_eq!(world.entries(), ["drop ticket"]);
}

#[saga]
async fn borrowed<'w>(world: &'w World, names: &'w [&'static str], n: u64) -> Result<u64, Oops> {
    let first = note(world, names[0], n).await?;
    let doubled: u64 = first * 2;
    let second = note(world, names[1], doubled).await?;
    let third = note(world, names[2], second).await?;
    Ok(third)
}

#[tokio::test(start_paused = true)]
async fn a_saga_with_a_lifetime_parameter_runs_forward_and_back() {
    let names = ["a", "b", "c"];
    let world = World::default();
    assert_eq!(borrowed(&world, &names, 1).await.unwrap(), 6);
    assert_eq!(world.entries(), ["a 1", "b 4", "c 5"]);

    let world = World::failing("c");
    let err = borrowed(&world, &names, 1).await.unwrap_err();
    assert_eq!(err.undone(), ["note", "note"]);
    assert_eq!(
        world.entries(),
        ["a 1", "b 4", "undo b 4->5", "undo a 1->2"]
    );
}

#[saga]
async fn kinds(world: &World, ticket: Tracked, n: u64) -> Result<u64, Oops> {
    let held = note(world, "held", n).await?;
    let seen = peek(world, held).await?;
    let total: u64 = seen + held;
    let sealed = seal(world, total).await?;
    // `ticket` is read only by the retriable step after the pivot.
    announce(world, &ticket, sealed).await?;
    Ok(sealed)
}

#[tokio::test(start_paused = true)]
async fn read_only_pivot_and_retriable_steps_keep_their_meaning() {
    // The pivot fails: the read-only step is skipped, the compensatable one undone.
    // (When `ticket` is dropped is the business of the tests above.)
    let world = World::failing("seal");
    let ticket = world.tracked("ticket", 0);
    let err = kinds(&world, ticket, 1).await.unwrap_err();
    assert_eq!(err.failed_step(), "seal");
    assert_eq!(err.undone(), ["note"]);
    let entries: Vec<String> = world
        .entries()
        .into_iter()
        .filter(|e| !e.starts_with("drop"))
        .collect();
    assert_eq!(entries, ["held 1", "peek 2", "undo held 1->2"]);
    assert!(world.entries().contains(&"drop ticket".to_owned()));

    // After the pivot, the retriable step is retried until it succeeds, still
    // seeing `ticket`, which goes when the saga ends.
    let world = World::failing_times("announce", 3);
    let ticket = world.tracked("ticket", 0);
    let (result, report) = Runner::new()
        .run_reported(KindsSaga::new(&world, ticket, 1))
        .await;
    assert_eq!(result.unwrap(), 106);
    assert_eq!(
        report
            .find("announce", sagaflow::Phase::Forward)
            .unwrap()
            .attempts(),
        4
    );
    assert_eq!(
        world.entries(),
        [
            "held 1",
            "peek 2",
            "seal 6",
            "announce ticket 106",
            "drop ticket"
        ]
    );
}

#[saga]
async fn rc_between(world: &World, n: u64) -> Result<u64, Oops> {
    let first = note(world, "first", n).await?;
    // Not `Send`, and gone before the next step starts.
    let shared: Rc<u64> = Rc::new(first);
    let doubled: u64 = *shared * 2;
    let second = note(world, "second", doubled).await?;
    Ok(second)
}

/// Whether a type is `Send`, answered at run time (autoref specialisation), so
/// that a `!Send` future fails this test instead of the whole file's build.
struct Probe<T>(PhantomData<T>);

trait IsSend {
    fn is_send(&self) -> bool {
        true
    }
}

impl<T: Send> IsSend for Probe<T> {}

trait NotSend {
    fn is_send(&self) -> bool {
        false
    }
}

impl<T> NotSend for &Probe<T> {}

fn probe<T>(_: &T) -> Probe<T> {
    Probe(PhantomData)
}

// The `&` in `(&probe(..)).is_send()` picks between the two traits.
#[allow(clippy::needless_borrow)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saga_future_is_send_when_nothing_it_holds_across_a_step_is_not() {
    // Spawnable (checked by the compiler): values let go between steps included.
    let world: &'static World = Box::leak(Box::default());
    let out = tokio::spawn(between_steps(world, 1)).await.unwrap();
    assert_eq!(out.unwrap(), 22);
    assert_eq!(world.entries()[..2], ["first 1", "drop label"]);

    // A `!Send` local that is gone before the next step starts does not make
    // the saga `!Send`: a hand-written body, or the explicit forward states
    // before, would be `Send` here.
    // The probe tells the two apart.
    assert!((&probe(&async {})).is_send());
    assert!(!(&probe(&Rc::new(0u8))).is_send());

    let world = World::default();
    let fut = rc_between(&world, 1);
    let send = (&probe(&fut)).is_send();
    assert_eq!(fut.await.unwrap(), 5);
    assert_eq!(world.entries(), ["first 1", "second 4"]);
    assert!(
        send,
        "the future of `rc_between` is not `Send`: the released `Rc` local is held across the next step"
    );
}

#[saga]
async fn durable_order(world: &World, item: String, qty: u32) -> Result<String, Oops> {
    let first = note(world, "first", u64::from(qty)).await?;
    let total: u64 = first * 10;
    let second = note(world, "second", total).await?;
    let seen = peek(world, second).await?;
    // Not `{item}`: a name read only inside a format string is not seen as read.
    let label: String = format!("{}:{}", item, seen);
    Ok(label)
}

#[tokio::test]
async fn the_durable_executor_runs_the_straight_line_body_forward_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("sagas.db"), Durability::Full).unwrap();
    let world = World::default();
    let executor = Executor::new(store.clone())
        .resource(world.clone())
        .register::<DurableOrderSaga>();
    let started = executor
        .start(DurableOrderSaga::new(&world, "lamp".into(), 2))
        .await
        .unwrap();
    let out = started.outcome().await.unwrap().unwrap();
    assert_eq!(out, "lamp:62");
    assert_eq!(world.entries(), ["first 2", "second 30", "peek 31"]);

    let world = World::failing("peek");
    let executor = Executor::new(store.clone())
        .resource(world.clone())
        .register::<DurableOrderSaga>();
    let started = executor
        .start(DurableOrderSaga::new(&world, "lamp".into(), 2))
        .await
        .unwrap();
    let id = started.id();
    let err = started.outcome().await.unwrap().unwrap_err();
    assert_eq!(err.failed_step(), "peek");
    assert_eq!(err.undone(), ["note", "note"]);
    assert_eq!(
        world.entries(),
        [
            "first 2",
            "second 30",
            "undo second 30->31",
            "undo first 2->3"
        ]
    );
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.status, SagaStatus::Compensated);
}

#[test]
fn the_test_kit_sweeps_a_saga_with_locals_and_unnamed_outputs() {
    let world = World::default();
    let mut test = SagaTest::new(|| {
        *world.0.held.lock().unwrap() = BTreeSet::new();
        DurableOrderSaga::new(&world, "lamp".into(), 2)
    })
    .invariant(|run| {
        let held = world.held();
        let want: Vec<&str> = if run.committed() {
            vec!["first", "second"]
        } else {
            vec![]
        };
        if held == want {
            Ok(())
        } else {
            Err(format!("{held:?} held, expected {want:?}"))
        }
    });
    let failures = test.failure_sweep().unwrap();
    // A clean run, then 3 steps × 3 faults.
    assert_eq!(failures.runs(), 10, "{failures}");
    let repeats = test.repeat_sweep().unwrap();
    assert!(repeats.runs() >= 3, "{repeats}");
    let crashes = test
        .crash_sweep(|store| {
            Executor::new(store)
                .resource(world.clone())
                .register::<DurableOrderSaga>()
        })
        .unwrap();
    assert!(crashes.runs() >= 4, "{crashes}");
}

#[saga]
async fn two_unread(world: &World, first: Tracked, second: Tracked) -> Result<u64, Oops> {
    let out = note(world, "only", 1).await?;
    Ok(out)
}

#[tokio::test]
async fn values_let_go_at_the_same_point_go_latest_first_as_a_scope_drops_them() {
    let world = World::default();
    let (first, second) = (world.tracked("first", 1), world.tracked("second", 2));
    two_unread(&world, first, second).await.unwrap();
    assert_eq!(&world.entries()[..2], ["drop second", "drop first"]);
}
