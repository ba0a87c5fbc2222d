//! The `groups` flavours: the ten steps as five `sagaflow::join!` groups of
//! two, against the same ten steps as five `tokio::join!`s by hand with
//! manual rollback; with trivial steps (the cost of a group) and with steps
//! that sleep 1 ms (whether the members really overlap: the saga should take
//! about as long as the hand-written join, half as long as ten steps in a row).

use std::hint::black_box;

use super::{Counter, Samples, allocs_per_run, ns_per, time_loop};

/// Five groups of two over the steps of one flavour, and the same by hand.
macro_rules! paired {
    ($module:ident, $steps:ident) => {
        pub mod $module {
            use super::super::$steps::{
                s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, undo0, undo1, undo2, undo3, undo4, undo5,
                undo6, undo7, undo8, undo9,
            };
            use super::super::{BenchError, Counter, saga};

            #[saga]
            pub async fn five_pairs(c: &Counter, x: u64) -> Result<u64, BenchError> {
                let (a0, a1) = sagaflow::join!(s0(c, x), s1(c, x))?;
                let (a2, a3) = sagaflow::join!(s2(c, a0), s3(c, a1))?;
                let (a4, a5) = sagaflow::join!(s4(c, a2), s5(c, a3))?;
                let (a6, a7) = sagaflow::join!(s6(c, a4), s7(c, a5))?;
                let (a8, a9) = sagaflow::join!(s8(c, a6), s9(c, a7))?;
                Ok(a8 ^ a9)
            }

            /// Undoes step `k`, called with its argument and output.
            async fn undo(c: &Counter, k: usize, x: u64, out: u64) {
                let _ = match k {
                    0 => undo0(c, x, &out).await,
                    1 => undo1(c, x, &out).await,
                    2 => undo2(c, x, &out).await,
                    3 => undo3(c, x, &out).await,
                    4 => undo4(c, x, &out).await,
                    5 => undo5(c, x, &out).await,
                    6 => undo6(c, x, &out).await,
                    7 => undo7(c, x, &out).await,
                    8 => undo8(c, x, &out).await,
                    _ => undo9(c, x, &out).await,
                };
            }

            /// Undoes a failed pair's member that succeeded, then every pair
            /// before it, each pair's two at once.
            async fn roll_back(
                c: &Counter,
                done: &[(u64, u64); 10],
                pair: usize,
                (a, b): (Result<u64, BenchError>, Result<u64, BenchError>),
                (xa, xb): (u64, u64),
            ) -> BenchError {
                let undo_a = async {
                    if let Ok(out) = a {
                        undo(c, 2 * pair, xa, out).await
                    }
                };
                let undo_b = async {
                    if let Ok(out) = b {
                        undo(c, 2 * pair + 1, xb, out).await
                    }
                };
                tokio::join!(undo_a, undo_b);
                for p in (0..pair).rev() {
                    let ((xa, a), (xb, b)) = (done[2 * p], done[2 * p + 1]);
                    tokio::join!(undo(c, 2 * p, xa, a), undo(c, 2 * p + 1, xb, b));
                }
                match (a, b) {
                    (Err(e), _) | (_, Err(e)) => e,
                    (Ok(_), Ok(_)) => unreachable!("a pair rolled back without a failure"),
                }
            }

            /// The same by hand: each pair by `tokio::join!`, and on a failure
            /// the rollback above, from the arguments and outputs kept so far.
            // The last pair's record is never read, but kept as the others'.
            #[allow(unused_assignments)]
            pub async fn hand_pairs(c: &Counter, x: u64) -> Result<u64, BenchError> {
                let mut done = [(0u64, 0u64); 10];
                macro_rules! pair {
                    ($p:expr, $sa:ident($xa:expr), $sb:ident($xb:expr)) => {{
                        let (xa, xb) = ($xa, $xb);
                        match tokio::join!($sa(c, xa), $sb(c, xb)) {
                            (Ok(a), Ok(b)) => {
                                done[2 * $p] = (xa, a);
                                done[2 * $p + 1] = (xb, b);
                                (a, b)
                            }
                            results => return Err(roll_back(c, &done, $p, results, (xa, xb)).await),
                        }
                    }};
                }
                let (a0, a1) = pair!(0, s0(x), s1(x));
                let (a2, a3) = pair!(1, s2(a0), s3(a1));
                let (a4, a5) = pair!(2, s4(a2), s5(a3));
                let (a6, a7) = pair!(3, s6(a4), s7(a5));
                let (a8, a9) = pair!(4, s8(a6), s9(a7));
                Ok(a8 ^ a9)
            }
        }
    };
}

paired!(trivial_pairs, trivial);
paired!(sleeping_pairs, sleeping);

/// One groups row: hand-written joins, the grouped saga, and the ten steps in
/// a row as a saga.
pub(crate) struct GroupRow {
    pub(crate) flavour: &'static str,
    pub(crate) iters: u64,
    pub(crate) hand: Samples,
    pub(crate) saga: Samples,
    pub(crate) sequential: Samples,
    pub(crate) hand_size: usize,
    pub(crate) saga_size: usize,
    /// Heap allocations per saga: hand-written, grouped saga.
    pub(crate) allocs: (f64, f64),
}

impl GroupRow {
    pub(crate) fn print(&self) {
        let n = self.iters;
        let (h, s, q) = (
            ns_per(self.hand.best(), n),
            ns_per(self.saga.best(), n),
            ns_per(self.sequential.best(), n),
        );
        let (hm, sm, qm) = (
            ns_per(self.hand.median(), n),
            ns_per(self.saga.median(), n),
            ns_per(self.sequential.median(), n),
        );
        println!(
            "{:<23} {:>9} {:>12.1} [{:>10.1}] {:>12.1} [{:>10.1}] {:>6.2} [{:>5.2}] {:>12.1} [{:>10.1}]   {}/{}   {:.2}/{:.2}",
            self.flavour,
            n,
            h,
            hm,
            s,
            sm,
            s / h,
            sm / hm,
            q,
            qm,
            self.hand_size,
            self.saga_size,
            self.allocs.0,
            self.allocs.1,
        );
    }
}

pub fn print_header(reps: u64) {
    println!();
    println!(
        "5 groups of 2 (sagaflow::join!) vs 5 tokio::join! by hand with manual rollback, and the \
         10 steps in a row as a saga (ns/saga, best of {reps}; median in brackets)"
    );
    println!(
        "{:<23} {:>9} {:>25} {:>25} {:>14} {:>25}   future B   allocs/saga",
        "flavour", "sagas", "hand tokio::join!", "sagaflow::join!", "ratio", "10 in a row"
    );
}

/// Measures `rows` of the groups flavours, interleaving the three sides.
pub(crate) fn measure(rt: &tokio::runtime::Runtime, iters: u64, reps: u64) -> Vec<GroupRow> {
    let counter = Counter::new(super::NO_FAILURE);
    let c = &counter;
    let mut rows = Vec::new();
    {
        let (mut hand, mut saga, mut seq) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..reps {
            hand.push(time_loop(rt, iters, &|x| trivial_pairs::hand_pairs(c, x)));
            saga.push(time_loop(rt, iters, &|x| trivial_pairs::five_pairs(c, x)));
            seq.push(time_loop(rt, iters, &|x| super::trivial::ten(c, x)));
        }
        rows.push(GroupRow {
            flavour: "trivial, 5 groups of 2",
            iters,
            hand: Samples(hand),
            saga: Samples(saga),
            sequential: Samples(seq),
            hand_size: size_of_val(&trivial_pairs::hand_pairs(c, 1)),
            saga_size: size_of_val(&trivial_pairs::five_pairs(c, 1)),
            allocs: (
                allocs_per_run(rt, 1000, &|x| trivial_pairs::hand_pairs(c, x)).0,
                allocs_per_run(rt, 1000, &|x| trivial_pairs::five_pairs(c, x)).0,
            ),
        });
    }
    {
        // Each saga sleeps five times 1 ms (ten times in a row): few sagas.
        let n = 20;
        let (mut hand, mut saga, mut seq) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..reps.min(5) {
            hand.push(time_loop(rt, n, &|x| sleeping_pairs::hand_pairs(c, x)));
            saga.push(time_loop(rt, n, &|x| sleeping_pairs::five_pairs(c, x)));
            seq.push(time_loop(rt, n, &|x| super::sleeping::ten(c, x)));
        }
        rows.push(GroupRow {
            flavour: "sleeping 1 ms, 5 x 2",
            iters: n,
            hand: Samples(hand),
            saga: Samples(saga),
            sequential: Samples(seq),
            hand_size: size_of_val(&sleeping_pairs::hand_pairs(c, 1)),
            saga_size: size_of_val(&sleeping_pairs::five_pairs(c, 1)),
            allocs: (
                allocs_per_run(rt, 5, &|x| sleeping_pairs::hand_pairs(c, x)).0,
                allocs_per_run(rt, 5, &|x| sleeping_pairs::five_pairs(c, x)).0,
            ),
        });
    }
    // The sums are a sink; the sleeping steps' arithmetic is checked by the
    // saga's own result in `check`.
    black_box(&counter);
    rows
}

/// The grouped saga and the hand-written joins compute the same.
pub fn check(rt: &tokio::runtime::Runtime) {
    let (a, b) = (
        Counter::new(super::NO_FAILURE),
        Counter::new(super::NO_FAILURE),
    );
    let hand = rt.block_on(trivial_pairs::hand_pairs(&a, 7));
    let saga = rt.block_on(trivial_pairs::five_pairs(&b, 7));
    assert_eq!(
        hand.ok(),
        saga.ok(),
        "the grouped saga computes what the hand-written joins do"
    );
    // A failing member: both roll back to nothing.
    let (a, b) = (Counter::new(5), Counter::new(5));
    let hand = rt.block_on(trivial_pairs::hand_pairs(&a, 7));
    let saga = rt.block_on(trivial_pairs::five_pairs(&b, 7));
    assert!(hand.is_err() && saga.is_err());
    assert_eq!(
        a.sum.get(),
        0,
        "the hand-written rollback undid every step that ran"
    );
    assert_eq!(b.sum.get(), 0, "the saga undid every step that ran");
}
