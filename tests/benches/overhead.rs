//! What declaring a saga costs at run time, against the same steps written by hand.
//!
//! Run with `cargo bench -p sagaflow-tests --bench overhead`. It is a measurement,
//! not a test: it prints a table and whether the targets of DESIGN.md ("Cost") are
//! met, and always exits 0.
//!
//! The saga has ten steps, each `#[step(compensate = undo_i)]`, taking a `&Counter`
//! resource and a `u64`, returning `Result<u64, BenchError>`. The baseline is one
//! hand-written `async fn` that awaits the same ten step functions (the very same
//! bodies: `#[step]` leaves the function as it is) and, on an error, awaits the undo
//! functions in reverse order by hand.
//!
//! The flavours:
//! - `trivial`: each step does a little arithmetic behind `black_box` and never
//!   suspends; the figure of merit is the overhead in ns per step.
//! - `yielding`: each step suspends once (`tokio::task::yield_now`), so every step
//!   costs a trip through the scheduler; the figure of merit is the ratio saga/hand.
//! - `failure`: both of the above with step 8 of 10 failing, so that seven
//!   compensations run; the ratio, and allocations per saga and per compensation.
//! - `in_flight`: 1,000 tasks on a 2-worker multi-thread runtime running yielding
//!   sagas at once; sagas per second, as a share of the hand-written rate, and
//!   the hand-written sagas again in a future padded to the saga's size, which
//!   tells the cost of the size from the driver's (see `overhead/in_flight.rs`).
//! - `groups`: the ten steps as five `sagaflow::join!` groups of two, against
//!   five `tokio::join!`s by hand with manual rollback, trivial and with each
//!   step sleeping 1 ms; the ratio saga/hand (see `overhead/groups.rs`).
//! - `trivial, methods`: the trivial steps as methods (`#[sagaflow::steps]`),
//!   against the same hand-written code; its ratio to `trivial` is the cost of a
//!   method step over a free one.
//!
//! The size of each future is printed beside the trivial rows.
//!
//! Both run on a current-thread tokio runtime, many sagas per measurement, the
//! measurements of each side interleaved (so that both see the same machine noise),
//! best and median of several repetitions. The saga runs in its default
//! configuration: awaiting the generated function, in memory, report built and
//! tracing spans created, no tracing subscriber installed.
//!
//! A counting global allocator gives heap allocations per saga run on the success
//! path. Allocations per step are the slope between a one-step and the ten-step
//! saga: (allocs(10 steps) - allocs(1 step)) / 9, so a constant per saga shows as 0.
//!
//! Environment:
//! - `OVERHEAD_ITERS`: sagas per measurement in the trivial flavour (default
//!   200000); the yielding flavour runs a quarter of that.
//! - `OVERHEAD_REPS`: repetitions per side (default 9).
//! - `OVERHEAD_ONLY`: `trivial`, `methods` (trivial with it), `yielding`, `failure`, `in_flight` or `groups` to run one
//!   flavour (for profiling).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sagaflow::{Runner, saga, step};

// ---------------------------------------------------------------------------
// Counting allocator
// ---------------------------------------------------------------------------

struct CountingAlloc;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A growing realloc is an allocation as far as cost goes.
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocs() -> (u64, u64) {
    (
        ALLOCS.load(Ordering::Relaxed),
        ALLOC_BYTES.load(Ordering::Relaxed),
    )
}

// ---------------------------------------------------------------------------
// The resource, the error, and the step bodies shared by both sides
// ---------------------------------------------------------------------------

const NO_FAILURE: u64 = u64::MAX;

/// The resource every step and compensation is handed: a running sum, the number
/// of compensations that ran, and which step (if any) is made to fail.
pub struct Counter {
    sum: Cell<u64>,
    undone: Cell<u64>,
    fail_at: Cell<u64>,
}

impl Counter {
    fn new(fail_at: u64) -> Self {
        Counter {
            sum: Cell::new(0),
            undone: Cell::new(0),
            fail_at: Cell::new(fail_at),
        }
    }
}

/// The same resource for sagas in flight on a multi-thread runtime: relaxed
/// loads and stores (each a plain `mov` on x86, as `Cell`'s are), so the sum
/// is only a sink there; the single-threaded flavours check the arithmetic.
pub struct SharedCounter {
    sum: AtomicU64,
    undone: AtomicU64,
    fail_at: AtomicU64,
}

impl SharedCounter {
    fn new(fail_at: u64) -> Self {
        SharedCounter {
            sum: AtomicU64::new(0),
            undone: AtomicU64::new(0),
            fail_at: AtomicU64::new(fail_at),
        }
    }
}

/// What the step bodies read and write, on either counter.
pub trait Tally {
    fn fail_at(&self) -> u64;
    fn sum(&self) -> u64;
    fn set_sum(&self, v: u64);
    fn undone(&self) -> u64;
    fn set_undone(&self, v: u64);
}

impl Tally for Counter {
    #[inline(always)]
    fn fail_at(&self) -> u64 {
        self.fail_at.get()
    }
    #[inline(always)]
    fn sum(&self) -> u64 {
        self.sum.get()
    }
    #[inline(always)]
    fn set_sum(&self, v: u64) {
        self.sum.set(v)
    }
    #[inline(always)]
    fn undone(&self) -> u64 {
        self.undone.get()
    }
    #[inline(always)]
    fn set_undone(&self, v: u64) {
        self.undone.set(v)
    }
}

impl Tally for SharedCounter {
    #[inline(always)]
    fn fail_at(&self) -> u64 {
        self.fail_at.load(Ordering::Relaxed)
    }
    #[inline(always)]
    fn sum(&self) -> u64 {
        self.sum.load(Ordering::Relaxed)
    }
    #[inline(always)]
    fn set_sum(&self, v: u64) {
        self.sum.store(v, Ordering::Relaxed)
    }
    #[inline(always)]
    fn undone(&self) -> u64 {
        self.undone.load(Ordering::Relaxed)
    }
    #[inline(always)]
    fn set_undone(&self, v: u64) {
        self.undone.store(v, Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchError {
    step: u64,
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {} failed", self.step)
    }
}

impl std::error::Error for BenchError {}

/// The body of step `k`: a little arithmetic, one write to the resource, and a
/// failure only when the resource says so (which keeps the error paths alive).
#[inline(always)]
fn work(c: &impl Tally, x: u64, k: u64) -> Result<u64, BenchError> {
    if c.fail_at() == k {
        return Err(BenchError { step: k });
    }
    let v = black_box(x)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(k as u32 + 1)
        ^ k;
    c.set_sum(c.sum().wrapping_add(v));
    Ok(black_box(v))
}

/// The body of undo `k`: takes back what step `k` added.
#[inline(always)]
fn unwork(c: &impl Tally, _x: u64, out: u64, _k: u64) -> Result<(), BenchError> {
    c.set_sum(c.sum().wrapping_sub(black_box(out)));
    c.set_undone(c.undone() + 1);
    Ok(())
}

/// One flavour: ten steps with their undos, the ten-step and one-step sagas, and
/// the same two written by hand. `$($suspend)*` is what each step does before its
/// work: nothing, or one `yield_now().await`.
macro_rules! flavour {
    ($module:ident, $counter:ident, $($suspend:tt)*) => {
        pub mod $module {
            #[allow(unused_imports)]
            use super::{BenchError, Counter, SharedCounter, saga, step, unwork, work};
            type Resource = $counter;

            #[step(compensate = undo0)]
            pub async fn s0(c: &Resource, x: u64) -> Result<u64, BenchError> { $($suspend)* work(c, x, 0) }
            #[step(compensate = undo1)]
            pub async fn s1(c: &Resource, x: u64) -> Result<u64, BenchError> { $($suspend)* work(c, x, 1) }
            #[step(compensate = undo2)]
            pub async fn s2(c: &Resource, x: u64) -> Result<u64, BenchError> { $($suspend)* work(c, x, 2) }
            #[step(compensate = undo3)]
            pub async fn s3(c: &Resource, x: u64) -> Result<u64, BenchError> { $($suspend)* work(c, x, 3) }
            #[step(compensate = undo4)]
            pub async fn s4(c: &Resource, x: u64) -> Result<u64, BenchError> { $($suspend)* work(c, x, 4) }
            #[step(compensate = undo5)]
            pub async fn s5(c: &Resource, x: u64) -> Result<u64, BenchError> { $($suspend)* work(c, x, 5) }
            #[step(compensate = undo6)]
            pub async fn s6(c: &Resource, x: u64) -> Result<u64, BenchError> { $($suspend)* work(c, x, 6) }
            #[step(compensate = undo7)]
            pub async fn s7(c: &Resource, x: u64) -> Result<u64, BenchError> { $($suspend)* work(c, x, 7) }
            #[step(compensate = undo8)]
            pub async fn s8(c: &Resource, x: u64) -> Result<u64, BenchError> { $($suspend)* work(c, x, 8) }
            #[step(compensate = undo9)]
            pub async fn s9(c: &Resource, x: u64) -> Result<u64, BenchError> { $($suspend)* work(c, x, 9) }

            pub async fn undo0(c: &Resource, x: u64, out: &u64) -> Result<(), BenchError> { $($suspend)* unwork(c, x, *out, 0) }
            pub async fn undo1(c: &Resource, x: u64, out: &u64) -> Result<(), BenchError> { $($suspend)* unwork(c, x, *out, 1) }
            pub async fn undo2(c: &Resource, x: u64, out: &u64) -> Result<(), BenchError> { $($suspend)* unwork(c, x, *out, 2) }
            pub async fn undo3(c: &Resource, x: u64, out: &u64) -> Result<(), BenchError> { $($suspend)* unwork(c, x, *out, 3) }
            pub async fn undo4(c: &Resource, x: u64, out: &u64) -> Result<(), BenchError> { $($suspend)* unwork(c, x, *out, 4) }
            pub async fn undo5(c: &Resource, x: u64, out: &u64) -> Result<(), BenchError> { $($suspend)* unwork(c, x, *out, 5) }
            pub async fn undo6(c: &Resource, x: u64, out: &u64) -> Result<(), BenchError> { $($suspend)* unwork(c, x, *out, 6) }
            pub async fn undo7(c: &Resource, x: u64, out: &u64) -> Result<(), BenchError> { $($suspend)* unwork(c, x, *out, 7) }
            pub async fn undo8(c: &Resource, x: u64, out: &u64) -> Result<(), BenchError> { $($suspend)* unwork(c, x, *out, 8) }
            pub async fn undo9(c: &Resource, x: u64, out: &u64) -> Result<(), BenchError> { $($suspend)* unwork(c, x, *out, 9) }

            #[saga]
            pub async fn ten(c: &Resource, x: u64) -> Result<u64, BenchError> {
                let a0 = s0(c, x).await?;
                let a1 = s1(c, a0).await?;
                let a2 = s2(c, a1).await?;
                let a3 = s3(c, a2).await?;
                let a4 = s4(c, a3).await?;
                let a5 = s5(c, a4).await?;
                let a6 = s6(c, a5).await?;
                let a7 = s7(c, a6).await?;
                let a8 = s8(c, a7).await?;
                let a9 = s9(c, a8).await?;
                Ok(a9)
            }

            #[saga]
            pub async fn one(c: &Resource, x: u64) -> Result<u64, BenchError> {
                let a0 = s0(c, x).await?;
                Ok(a0)
            }

            /// The ten steps by hand: on an error, undo the completed steps in
            /// reverse order (each undo called with its step's arguments and output,
            /// as the saga does), then return the error.
            pub async fn hand_ten(c: &Resource, x: u64) -> Result<u64, BenchError> {
                let a0 = s0(c, x).await?;
                let a1 = match s1(c, a0).await {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = undo0(c, x, &a0).await;
                        return Err(e);
                    }
                };
                let a2 = match s2(c, a1).await {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = undo1(c, a0, &a1).await;
                        let _ = undo0(c, x, &a0).await;
                        return Err(e);
                    }
                };
                let a3 = match s3(c, a2).await {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = undo2(c, a1, &a2).await;
                        let _ = undo1(c, a0, &a1).await;
                        let _ = undo0(c, x, &a0).await;
                        return Err(e);
                    }
                };
                let a4 = match s4(c, a3).await {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = undo3(c, a2, &a3).await;
                        let _ = undo2(c, a1, &a2).await;
                        let _ = undo1(c, a0, &a1).await;
                        let _ = undo0(c, x, &a0).await;
                        return Err(e);
                    }
                };
                let a5 = match s5(c, a4).await {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = undo4(c, a3, &a4).await;
                        let _ = undo3(c, a2, &a3).await;
                        let _ = undo2(c, a1, &a2).await;
                        let _ = undo1(c, a0, &a1).await;
                        let _ = undo0(c, x, &a0).await;
                        return Err(e);
                    }
                };
                let a6 = match s6(c, a5).await {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = undo5(c, a4, &a5).await;
                        let _ = undo4(c, a3, &a4).await;
                        let _ = undo3(c, a2, &a3).await;
                        let _ = undo2(c, a1, &a2).await;
                        let _ = undo1(c, a0, &a1).await;
                        let _ = undo0(c, x, &a0).await;
                        return Err(e);
                    }
                };
                let a7 = match s7(c, a6).await {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = undo6(c, a5, &a6).await;
                        let _ = undo5(c, a4, &a5).await;
                        let _ = undo4(c, a3, &a4).await;
                        let _ = undo3(c, a2, &a3).await;
                        let _ = undo2(c, a1, &a2).await;
                        let _ = undo1(c, a0, &a1).await;
                        let _ = undo0(c, x, &a0).await;
                        return Err(e);
                    }
                };
                let a8 = match s8(c, a7).await {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = undo7(c, a6, &a7).await;
                        let _ = undo6(c, a5, &a6).await;
                        let _ = undo5(c, a4, &a5).await;
                        let _ = undo4(c, a3, &a4).await;
                        let _ = undo3(c, a2, &a3).await;
                        let _ = undo2(c, a1, &a2).await;
                        let _ = undo1(c, a0, &a1).await;
                        let _ = undo0(c, x, &a0).await;
                        return Err(e);
                    }
                };
                let a9 = match s9(c, a8).await {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = undo8(c, a7, &a8).await;
                        let _ = undo7(c, a6, &a7).await;
                        let _ = undo6(c, a5, &a6).await;
                        let _ = undo5(c, a4, &a5).await;
                        let _ = undo4(c, a3, &a4).await;
                        let _ = undo3(c, a2, &a3).await;
                        let _ = undo2(c, a1, &a2).await;
                        let _ = undo1(c, a0, &a1).await;
                        let _ = undo0(c, x, &a0).await;
                        return Err(e);
                    }
                };
                Ok(a9)
            }

            pub async fn hand_one(c: &Resource, x: u64) -> Result<u64, BenchError> {
                let a0 = s0(c, x).await?;
                Ok(a0)
            }
        }
    };
}

flavour!(trivial, Counter,);
flavour!(yielding, Counter, tokio::task::yield_now().await;);
flavour!(in_flight, SharedCounter, tokio::task::yield_now().await;);
flavour!(sleeping, Counter, tokio::time::sleep(std::time::Duration::from_millis(1)).await;);

// In a directory of its own: a file beside this one would be a bench of its own.
#[path = "overhead/groups.rs"]
pub mod groups;
#[path = "overhead/in_flight.rs"]
mod in_flight_run;

/// The trivial flavour's ten steps as methods of the resource
/// (`#[sagaflow::steps] impl Counter`), called as `c.m0(x).await?`: the
/// comparison with `trivial` is the cost of a method step over a free one.
pub mod methods {
    pub use super::trivial::{hand_one, hand_ten};
    use super::{BenchError, Counter, saga, unwork, work};

    #[sagaflow::steps]
    impl Counter {
        #[step(compensate = Self::undo0)]
        pub async fn m0(&self, x: u64) -> Result<u64, BenchError> {
            work(self, x, 0)
        }
        #[step(compensate = Self::undo1)]
        pub async fn m1(&self, x: u64) -> Result<u64, BenchError> {
            work(self, x, 1)
        }
        #[step(compensate = Self::undo2)]
        pub async fn m2(&self, x: u64) -> Result<u64, BenchError> {
            work(self, x, 2)
        }
        #[step(compensate = Self::undo3)]
        pub async fn m3(&self, x: u64) -> Result<u64, BenchError> {
            work(self, x, 3)
        }
        #[step(compensate = Self::undo4)]
        pub async fn m4(&self, x: u64) -> Result<u64, BenchError> {
            work(self, x, 4)
        }
        #[step(compensate = Self::undo5)]
        pub async fn m5(&self, x: u64) -> Result<u64, BenchError> {
            work(self, x, 5)
        }
        #[step(compensate = Self::undo6)]
        pub async fn m6(&self, x: u64) -> Result<u64, BenchError> {
            work(self, x, 6)
        }
        #[step(compensate = Self::undo7)]
        pub async fn m7(&self, x: u64) -> Result<u64, BenchError> {
            work(self, x, 7)
        }
        #[step(compensate = Self::undo8)]
        pub async fn m8(&self, x: u64) -> Result<u64, BenchError> {
            work(self, x, 8)
        }
        #[step(compensate = Self::undo9)]
        pub async fn m9(&self, x: u64) -> Result<u64, BenchError> {
            work(self, x, 9)
        }

        pub async fn undo0(&self, x: u64, out: &u64) -> Result<(), BenchError> {
            unwork(self, x, *out, 0)
        }
        pub async fn undo1(&self, x: u64, out: &u64) -> Result<(), BenchError> {
            unwork(self, x, *out, 1)
        }
        pub async fn undo2(&self, x: u64, out: &u64) -> Result<(), BenchError> {
            unwork(self, x, *out, 2)
        }
        pub async fn undo3(&self, x: u64, out: &u64) -> Result<(), BenchError> {
            unwork(self, x, *out, 3)
        }
        pub async fn undo4(&self, x: u64, out: &u64) -> Result<(), BenchError> {
            unwork(self, x, *out, 4)
        }
        pub async fn undo5(&self, x: u64, out: &u64) -> Result<(), BenchError> {
            unwork(self, x, *out, 5)
        }
        pub async fn undo6(&self, x: u64, out: &u64) -> Result<(), BenchError> {
            unwork(self, x, *out, 6)
        }
        pub async fn undo7(&self, x: u64, out: &u64) -> Result<(), BenchError> {
            unwork(self, x, *out, 7)
        }
        pub async fn undo8(&self, x: u64, out: &u64) -> Result<(), BenchError> {
            unwork(self, x, *out, 8)
        }
        pub async fn undo9(&self, x: u64, out: &u64) -> Result<(), BenchError> {
            unwork(self, x, *out, 9)
        }
    }

    #[saga]
    pub async fn ten(c: &Counter, x: u64) -> Result<u64, BenchError> {
        let a0 = c.m0(x).await?;
        let a1 = c.m1(a0).await?;
        let a2 = c.m2(a1).await?;
        let a3 = c.m3(a2).await?;
        let a4 = c.m4(a3).await?;
        let a5 = c.m5(a4).await?;
        let a6 = c.m6(a5).await?;
        let a7 = c.m7(a6).await?;
        let a8 = c.m8(a7).await?;
        let a9 = c.m9(a8).await?;
        Ok(a9)
    }

    #[saga]
    pub async fn one(c: &Counter, x: u64) -> Result<u64, BenchError> {
        let a0 = c.m0(x).await?;
        Ok(a0)
    }
}

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime")
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.trim().replace('_', "").parse().unwrap_or_else(|_| {
            eprintln!("{name}={v:?} is not a number; using {default}");
            default
        }),
        Err(_) => default,
    }
}

/// Runs `n` sagas one after the other inside one `block_on`, and times the loop.
fn time_loop<'c, F, Fut, T>(rt: &tokio::runtime::Runtime, n: u64, f: &F) -> Duration
where
    F: Fn(u64) -> Fut + 'c,
    Fut: Future<Output = T> + 'c,
{
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..n {
            black_box(f(black_box(i)).await);
        }
        start.elapsed()
    })
}

/// Heap allocations (count, bytes) per run, over `n` runs after a warm-up.
fn allocs_per_run<'c, F, Fut, T>(rt: &tokio::runtime::Runtime, n: u64, f: &F) -> (f64, f64)
where
    F: Fn(u64) -> Fut + 'c,
    Fut: Future<Output = T> + 'c,
{
    rt.block_on(async {
        for i in 0..n.min(1000) {
            black_box(f(black_box(i)).await);
        }
        let (c0, b0) = allocs();
        for i in 0..n {
            black_box(f(black_box(i)).await);
        }
        let (c1, b1) = allocs();
        ((c1 - c0) as f64 / n as f64, (b1 - b0) as f64 / n as f64)
    })
}

struct Samples(Vec<Duration>);

impl Samples {
    fn best(&self) -> Duration {
        self.0.iter().copied().min().unwrap_or_default()
    }

    fn median(&self) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    }
}

fn ns_per(d: Duration, n: u64) -> f64 {
    d.as_nanos() as f64 / n as f64
}

struct Row {
    flavour: &'static str,
    /// The step made to fail (from 0), or `NO_FAILURE`.
    fail_at: u64,
    iters: u64,
    hand: Samples,
    saga: Samples,
    runner: Samples,
    hand_allocs: (f64, f64),
    saga_allocs: (f64, f64),
    runner_allocs: (f64, f64),
    hand_step_allocs: f64,
    saga_step_allocs: f64,
    hand_size: usize,
    saga_size: usize,
}

/// Everything one flavour needs, as closures over one `Counter`.
macro_rules! measure {
    ($flavour:ident, $name:literal, $fail_at:expr, $iters:expr, $reps:expr, $rt:expr) => {{
        let rt = $rt;
        let iters: u64 = $iters;
        let reps: u64 = $reps;
        let fail_at: u64 = $fail_at;
        let counter = Counter::new(fail_at);
        let c = &counter;
        let hand = move |x: u64| $flavour::hand_ten(c, x);
        let saga = move |x: u64| $flavour::ten(c, x);
        // `Runner::new()` is a zero-sized value; borrowing one is what a caller that
        // keeps a runner does.
        let the_runner = Runner::new();
        let rn = &the_runner;
        let runner = move |x: u64| rn.run($flavour::TenSaga::new(c, x));
        let hand_one = move |x: u64| $flavour::hand_one(c, x);
        let saga_one = move |x: u64| $flavour::one(c, x);

        let hand_size = std::mem::size_of_val(&hand(0));
        let saga_size = std::mem::size_of_val(&saga(0));

        // Allocations first (not timed).
        let alloc_n = (iters / 20).max(1000);
        let hand_allocs = allocs_per_run(rt, alloc_n, &hand);
        let saga_allocs = allocs_per_run(rt, alloc_n, &saga);
        let runner_allocs = allocs_per_run(rt, alloc_n, &runner);
        let hand_one_allocs = allocs_per_run(rt, alloc_n, &hand_one);
        let saga_one_allocs = allocs_per_run(rt, alloc_n, &saga_one);
        // Per step on success: the slope from one step to ten. On failure, per
        // compensation: the slope from failing at step 3 (two compensations) to
        // failing where this row fails.
        let (hand_step_allocs, saga_step_allocs) = if fail_at == NO_FAILURE {
            (
                (hand_allocs.0 - hand_one_allocs.0) / 9.0,
                (saga_allocs.0 - saga_one_allocs.0) / 9.0,
            )
        } else {
            let early = Counter::new(2);
            let e = &early;
            let hand_early = allocs_per_run(rt, alloc_n, &move |x: u64| $flavour::hand_ten(e, x));
            let saga_early = allocs_per_run(rt, alloc_n, &move |x: u64| $flavour::ten(e, x));
            let more = (fail_at - 2) as f64;
            (
                (hand_allocs.0 - hand_early.0) / more,
                (saga_allocs.0 - saga_early.0) / more,
            )
        };
        let _ = (hand_one_allocs, saga_one_allocs);

        // Warm-up: caches, branch predictors, CPU frequency.
        let warm = (iters / 10).max(1);
        for _ in 0..2 {
            time_loop(rt, warm, &hand);
            time_loop(rt, warm, &saga);
            time_loop(rt, warm, &runner);
        }

        // Interleaved repetitions, rotating the order so that no side is always first.
        let (mut h, mut s, mut r) = (Vec::new(), Vec::new(), Vec::new());
        for rep in 0..reps {
            for k in 0..3 {
                match (rep + k) % 3 {
                    0 => h.push(time_loop(rt, iters, &hand)),
                    1 => s.push(time_loop(rt, iters, &saga)),
                    _ => r.push(time_loop(rt, iters, &runner)),
                }
            }
        }
        black_box(counter.sum());
        Row {
            flavour: $name,
            fail_at,
            iters,
            hand: Samples(h),
            saga: Samples(s),
            runner: Samples(r),
            hand_allocs,
            saga_allocs,
            runner_allocs,
            hand_step_allocs,
            saga_step_allocs,
            hand_size,
            saga_size,
        }
    }};
}

/// Both sides must do the same thing, on success and on each failure: same result,
/// same steps undone, the resource back where it started after a rollback.
fn sanity_check(rt: &tokio::runtime::Runtime) {
    macro_rules! check {
        ($flavour:ident, $counter:ident) => {
            for fail_at in [NO_FAILURE, 0, 1, 5, 9] {
                let (ch, cs, cr) = (
                    $counter::new(fail_at),
                    $counter::new(fail_at),
                    $counter::new(fail_at),
                );
                let (h, s, r) = rt.block_on(async {
                    (
                        $flavour::hand_ten(&ch, 7).await,
                        $flavour::ten(&cs, 7).await,
                        Runner::new().run($flavour::TenSaga::new(&cr, 7)).await,
                    )
                });
                match (&h, &s, &r) {
                    (Ok(h), Ok(s), Ok(r)) => assert!(h == s && s == r, "results differ"),
                    (Err(h), Err(s), Err(r)) => {
                        assert_eq!(Some(h), s.cause(), "errors differ");
                        assert_eq!(Some(h), r.cause(), "errors differ");
                        assert!(s.is_compensated() && r.is_compensated());
                        assert_eq!(s.undone().len() as u64, fail_at);
                        assert_eq!(ch.sum(), 0, "hand-written rollback left a sum");
                    }
                    _ => panic!(
                        "{}: outcomes differ at fail_at={fail_at}",
                        stringify!($flavour)
                    ),
                }
                assert_eq!(ch.sum(), cs.sum());
                assert_eq!(ch.sum(), cr.sum());
                assert_eq!(ch.undone(), cs.undone());
                assert_eq!(ch.undone(), cr.undone());
            }
        };
    }
    check!(trivial, Counter);
    check!(yielding, Counter);
    check!(in_flight, SharedCounter);
    check!(methods, Counter);
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn main() {
    // `cargo bench` passes `--bench`; filters and other flags are ignored.
    let iters = env_u64("OVERHEAD_ITERS", 200_000).max(1);
    let reps = env_u64("OVERHEAD_REPS", 9).max(1);
    let only = std::env::var("OVERHEAD_ONLY").unwrap_or_default();
    let rt = runtime();
    let started = Instant::now();

    sanity_check(&rt);

    let mut rows = Vec::new();
    // Step 8 of 10 fails (index 7): the seven steps before it are compensated.
    const STEP_8: u64 = 7;
    if only.is_empty() || only == "trivial" || only == "methods" {
        rows.push(measure!(trivial, "trivial", NO_FAILURE, iters, reps, &rt));
    }
    if only.is_empty() || only == "methods" {
        rows.push(measure!(
            methods,
            "trivial, methods",
            NO_FAILURE,
            iters,
            reps,
            &rt
        ));
    }
    if only.is_empty() || only == "yielding" {
        rows.push(measure!(
            yielding,
            "yielding",
            NO_FAILURE,
            (iters / 4).max(1),
            reps,
            &rt
        ));
    }
    if only.is_empty() || only == "failure" {
        rows.push(measure!(
            trivial,
            "trivial, step 8 fails",
            STEP_8,
            (iters / 4).max(1),
            reps,
            &rt
        ));
        rows.push(measure!(
            yielding,
            "yielding, step 8 fails",
            STEP_8,
            (iters / 8).max(1),
            reps,
            &rt
        ));
    }
    // Allocations by where the saga fails: constant if compensating costs a
    // constant number per saga.
    let by_failure: Vec<(u64, f64)> = if only.is_empty() || only == "failure" {
        (1..10)
            .map(|fail_at| {
                let counter = Counter::new(fail_at);
                let c = &counter;
                let saga = move |x: u64| trivial::ten(c, x);
                (fail_at + 1, allocs_per_run(&rt, 1000, &saga).0)
            })
            .collect()
    } else {
        Vec::new()
    };
    let group_rows = if only.is_empty() || only == "groups" {
        groups::check(&rt);
        groups::measure(&rt, (iters / 4).max(1), reps)
    } else {
        Vec::new()
    };
    let in_flight = (only.is_empty() || only == "in_flight")
        .then(|| in_flight_run::measure(1000, (iters / 2000).max(1), reps));

    println!();
    println!(
        "sagaflow overhead: 10-step saga vs the same steps by hand (current-thread tokio, \
         best of {reps}; median in brackets)"
    );
    println!();
    println!(
        "{:<23} {:<22} {:>9} {:>20} {:>20} {:>16} {:>15} {:>10}",
        "flavour",
        "sagaflow entry",
        "sagas",
        "hand ns/saga",
        "sagaflow ns/saga",
        "overhead ns/step",
        "ratio",
        "future B"
    );
    for row in &rows {
        let n = row.iters;
        let hb = ns_per(row.hand.best(), n);
        let hm = ns_per(row.hand.median(), n);
        for (entry, samples) in [
            ("ten(..).await", &row.saga),
            ("Runner::new().run(..)", &row.runner),
        ] {
            let sb = ns_per(samples.best(), n);
            let sm = ns_per(samples.median(), n);
            println!(
                "{:<23} {:<22} {:>9} {:>9.1} [{:>8.1}] {:>9.1} [{:>8.1}] {:>6.1} [{:>7.1}] {:>5.2} [{:>6.2}] {:>5}/{:<4}",
                row.flavour,
                entry,
                n,
                hb,
                hm,
                sb,
                sm,
                (sb - hb) / 10.0,
                (sm - hm) / 10.0,
                sb / hb,
                sm / hm,
                row.hand_size,
                row.saga_size,
            );
        }
    }
    println!();
    println!(
        "{:<23} {:>16} {:>16} {:>16} {:>18} {:>18}",
        "flavour",
        "hand allocs/saga",
        "saga allocs/saga",
        "Runner allocs",
        "hand allocs/step",
        "saga allocs/step"
    );
    for row in &rows {
        println!(
            "{:<23} {:>7.2} ({:>4.0} B) {:>7.2} ({:>4.0} B) {:>7.2} ({:>4.0} B) {:>18.3} {:>18.3}",
            row.flavour,
            row.hand_allocs.0,
            row.hand_allocs.1,
            row.saga_allocs.0,
            row.saga_allocs.1,
            row.runner_allocs.0,
            row.runner_allocs.1,
            row.hand_step_allocs,
            row.saga_step_allocs,
        );
    }
    println!(
        "(allocs/step = (allocs of the 10-step saga - allocs of a 1-step saga) / 9; on the \
         failure rows, per compensation: (allocs failing at step 8 - allocs failing at step 3) / 5)"
    );
    if !by_failure.is_empty() {
        println!();
        let row: Vec<String> = by_failure
            .iter()
            .map(|(step, allocs)| format!("step {step}: {allocs:.1}"))
            .collect();
        println!(
            "heap allocations per saga by the step that fails (trivial steps): {}",
            row.join(", ")
        );
    }
    if !group_rows.is_empty() {
        groups::print_header(reps);
        for row in &group_rows {
            row.print();
        }
    }
    if let Some(flight) = &in_flight {
        in_flight_run::print(flight, reps);
    }
    let saga_ns = |name: &str| {
        rows.iter()
            .find(|r| r.flavour == name)
            .map(|r| ns_per(r.saga.best(), r.iters))
    };
    if let (Some(free), Some(method)) = (saga_ns("trivial"), saga_ns("trivial, methods")) {
        println!();
        println!(
            "method steps: {method:.1} ns/saga against {free:.1} for free steps, ratio {:.3} (issue 11: no cost over a free step)",
            method / free
        );
    }
    println!();
    println!("targets (DESIGN.md, \"Cost\", and issue 18):");
    for row in &rows {
        let n = row.iters;
        let hb = ns_per(row.hand.best(), n);
        let sb = ns_per(row.saga.best(), n);
        let ratio = sb / hb;
        let (failing, trivial) = (
            row.fail_at != NO_FAILURE,
            row.flavour.starts_with("trivial"),
        );
        match (failing, trivial) {
            (false, true) => {
                let per_step = (sb - hb) / 10.0;
                println!(
                    "  trivial steps: overhead {per_step:.1} ns/step <= 25 ns/step: {}",
                    verdict(per_step <= 25.0)
                );
            }
            (false, false) => println!(
                "  suspending steps: ratio {ratio:.2} <= 1.20: {}",
                verdict(ratio <= 1.2)
            ),
            (true, true) => println!(
                "  trivial steps, step 8 fails: ratio {ratio:.2} <= 3.00: {}",
                verdict(ratio <= 3.0)
            ),
            (true, false) => println!(
                "  suspending steps, step 8 fails: ratio {ratio:.2} <= 1.20: {}",
                verdict(ratio <= 1.2)
            ),
        }
        let per = row.saga_step_allocs;
        let unit = if failing { "compensation" } else { "step" };
        println!(
            "  {}: {per:.3} heap allocations per {unit} (want 0; {:.2} per saga): {}",
            row.flavour,
            row.saga_allocs.0,
            verdict(per.abs() < 0.01),
        );
        if !failing && trivial {
            let size = row.saga_size as f64 / row.hand_size as f64;
            println!(
                "  the saga's future: {} bytes, {size:.1}x the hand-written {} <= 2x: {}",
                row.saga_size,
                row.hand_size,
                verdict(size <= 2.0)
            );
        }
    }
    if let Some(flight) = &in_flight {
        let share = flight.saga_rate(true) / flight.hand_rate(true);
        println!(
            "  {} in flight: {share:.2} of hand-written throughput >= 0.85: {}",
            flight.tasks,
            verdict(share >= 0.85)
        );
    }
    for row in &group_rows {
        let ratio = ns_per(row.saga.best(), row.iters) / ns_per(row.hand.best(), row.iters);
        if row.flavour.starts_with("sleeping") {
            println!(
                "  {}: ratio to the hand-written join {ratio:.2} (about 1; ten in a row would be about 2): {}",
                row.flavour,
                verdict(ratio <= 1.2)
            );
        } else {
            let per_step =
                (ns_per(row.saga.best(), row.iters) - ns_per(row.hand.best(), row.iters)) / 10.0;
            let seq = ns_per(row.sequential.best(), row.iters);
            println!(
                "  {}: {per_step:.1} ns/step over the hand-written joins; {:.1} ns/saga against {seq:.1} in a row: {}",
                row.flavour,
                ns_per(row.saga.best(), row.iters),
                verdict(ns_per(row.saga.best(), row.iters) <= seq * 1.1)
            );
        }
    }
    println!();
    println!(
        "(a measurement, not a test: misses are reported, never fatal; took {:.1} s)",
        started.elapsed().as_secs_f64()
    );
}
