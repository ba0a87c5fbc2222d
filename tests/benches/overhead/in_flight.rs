//! The in-flight flavour: 1,000 tasks on a 2-worker runtime, each running
//! yielding ten-step sagas one after the other, against the same steps by hand,
//! and against the hand-written ones in a future padded to the saga's size.
//!
//! The padded twin tells the two parts of the gap apart: what a larger future
//! costs by itself (the task's memory, cache lines, the copy into the task at
//! spawn), and what the saga's driver costs per step. Its padding is
//! `MaybeUninit`, kept across the await and never written, as most of a saga's
//! future is never written on a success (its failure paths' room).

use std::hint::black_box;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use super::{NO_FAILURE, Samples, SharedCounter, in_flight};

/// The step of padding sizes, in bytes.
const PAD_STEP: usize = 64;

/// Throughput with many sagas in flight at once, all sides on the same runtime.
pub struct InFlight {
    pub tasks: usize,
    pub per_task: u64,
    pub hand: Samples,
    pub saga: Samples,
    pub padded: Samples,
    /// The futures' sizes: hand-written, padded, the saga's.
    pub sizes: (usize, usize, usize),
}

impl InFlight {
    fn rate(&self, samples: &Samples, best: bool) -> f64 {
        let took = if best {
            samples.best()
        } else {
            samples.median()
        };
        (self.tasks as u64 * self.per_task) as f64 / took.as_secs_f64()
    }
    pub fn hand_rate(&self, best: bool) -> f64 {
        self.rate(&self.hand, best)
    }
    pub fn saga_rate(&self, best: bool) -> f64 {
        self.rate(&self.saga, best)
    }
    pub fn padded_rate(&self, best: bool) -> f64 {
        self.rate(&self.padded, best)
    }
}

/// The hand-written saga in a future `N` bytes larger.
async fn padded<const N: usize>(c: &SharedCounter, x: u64) -> Result<u64, super::BenchError> {
    let pad = MaybeUninit::<[u8; N]>::uninit();
    let result = in_flight::hand_ten(c, x).await;
    black_box(&pad);
    result
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Hand,
    Saga,
    Padded,
}

/// One run of `tasks` tasks on `rt`, `per_task` sagas each, on `side`; with
/// the padded side's padding `P` bytes.
fn run<const P: usize>(
    rt: &tokio::runtime::Runtime,
    counter: &'static SharedCounter,
    (tasks, per_task): (usize, u64),
    side: Side,
) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                tokio::spawn(async move {
                    for i in 0..per_task {
                        let x = black_box(t as u64 * per_task + i);
                        let _ = match side {
                            Side::Saga => black_box(in_flight::ten(counter, x).await.ok()),
                            Side::Hand => black_box(in_flight::hand_ten(counter, x).await.ok()),
                            Side::Padded => black_box(padded::<P>(counter, x).await.ok()),
                        };
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("a bench task");
        }
        start.elapsed()
    })
}

/// Every side, `reps` times, interleaved, with padding `P`.
fn measure_with<const P: usize>(tasks: usize, per_task: u64, reps: u64) -> InFlight {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a multi-thread runtime");
    // Leaked: the tasks need a `'static` resource; one per process.
    let counter: &'static SharedCounter = Box::leak(Box::new(SharedCounter::new(NO_FAILURE)));
    let shape = (tasks, per_task);
    let sides = [Side::Hand, Side::Saga, Side::Padded];
    for side in sides {
        run::<P>(&rt, counter, shape, side);
    }
    let (mut hand, mut saga, mut padded_runs) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..reps {
        // A different order each repetition, so that no side always goes first.
        for k in 0..3 {
            let side = sides[(k + rep as usize) % 3];
            let took = run::<P>(&rt, counter, shape, side);
            match side {
                Side::Hand => hand.push(took),
                Side::Saga => saga.push(took),
                Side::Padded => padded_runs.push(took),
            }
        }
    }
    let sizes = (
        std::mem::size_of_val(&in_flight::hand_ten(counter, 0)),
        std::mem::size_of_val(&padded::<P>(counter, 0)),
        std::mem::size_of_val(&in_flight::ten(counter, 0)),
    );
    InFlight {
        tasks,
        per_task,
        hand: Samples(hand),
        saga: Samples(saga),
        padded: Samples(padded_runs),
        sizes,
    }
}

/// The in-flight flavour, its hand-written twin padded to the saga's size
/// (rounded up to `PAD_STEP` bytes).
pub fn measure(tasks: usize, per_task: u64, reps: u64) -> InFlight {
    let counter = SharedCounter::new(NO_FAILURE);
    let gap = std::mem::size_of_val(&in_flight::ten(&counter, 0))
        .saturating_sub(std::mem::size_of_val(&in_flight::hand_ten(&counter, 0)));
    macro_rules! by_gap {
        ($($k:literal)*) => {
            match gap.div_ceil(PAD_STEP) {
                $($k => measure_with::<{ $k * PAD_STEP }>(tasks, per_task, reps),)*
                _ => measure_with::<{ 24 * PAD_STEP }>(tasks, per_task, reps),
            }
        };
    }
    by_gap!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23)
}

/// The flavour's lines of the table.
pub fn print(flight: &InFlight, reps: u64) {
    println!();
    println!(
        "{} sagas in flight on a 2-worker multi-thread runtime, yielding steps, {} each \
         (best of {reps}; median in brackets):",
        flight.tasks, flight.per_task
    );
    let (hand, padded, saga) = flight.sizes;
    println!(
        "  hand {:.0} [{:.0}] sagas/s ({hand} B), hand padded {:.0} [{:.0}] sagas/s ({padded} B), \
         sagaflow {:.0} [{:.0}] sagas/s ({saga} B)",
        flight.hand_rate(true),
        flight.hand_rate(false),
        flight.padded_rate(true),
        flight.padded_rate(false),
        flight.saga_rate(true),
        flight.saga_rate(false),
    );
    println!(
        "  of hand-written: sagaflow {:.2} [{:.2}], hand padded to the saga's size {:.2} [{:.2}]; \
         sagaflow of the padded twin {:.2} [{:.2}]",
        flight.saga_rate(true) / flight.hand_rate(true),
        flight.saga_rate(false) / flight.hand_rate(false),
        flight.padded_rate(true) / flight.hand_rate(true),
        flight.padded_rate(false) / flight.hand_rate(false),
        flight.saga_rate(true) / flight.padded_rate(true),
        flight.saga_rate(false) / flight.padded_rate(false),
    );
}
