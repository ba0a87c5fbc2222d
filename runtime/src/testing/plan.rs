//! The journal of the sweeps' in-memory runs: it stores nothing, and injects
//! the faults, repeats and overlaps that a run's plan asks for.

use super::*;

/// The in-memory journal of a sweep run: records nothing, injects its plan.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct Plan {
    /// Make every attempt of this step fail with this fault (for the first `times`
    /// attempts, or all of them if `None`).
    pub(super) fail: Option<(u32, Fault, Option<u32>)>,
    /// Run this step or compensation twice.
    pub(super) repeat: Option<(u32, Phase)>,
    /// Whether the step made to fail was attempted: a step in an arm the
    /// run did not take never is.
    pub(super) reached: AtomicBool,
    /// The arms the run took, as (branch, arm).
    pub(super) arms: Vec<(u32, u32)>,
    /// Make the first attempts of this TCC step's confirm fail (how many).
    pub(super) fail_confirm: Option<(u32, u32)>,
    /// Group members `(a, b, fails)`: `a` (the member `fail` names) starts
    /// late, and `b`'s first attempt stays in flight until `a` has failed for
    /// good, then ends (with an injected error if `fails`).
    pub(super) overlap: Option<(u32, u32, bool)>,
    /// Whether `b`'s attempt started before `a` had failed.
    pub(super) overlapped: AtomicBool,
}

impl Plan {
    pub(super) fn failing(index: u32, fault: Fault, times: Option<u32>) -> Self {
        Plan {
            fail: Some((index, fault, times)),
            ..Plan::default()
        }
    }
}

impl Journal for Plan {
    const DURABLE: bool = false;
    const FAULTS: bool = true;

    fn replayed(&self, _: u32, _: bool) -> Replayed {
        Replayed::FRESH
    }

    fn record(&self, _: Entry) -> impl Future<Output = Result<(), StoreError>> + Send {
        core::future::ready(Ok(()))
    }

    fn record_all(&self, _: Vec<Entry>) -> impl Future<Output = Result<(), StoreError>> + Send {
        core::future::ready(Ok(()))
    }

    fn chose(&mut self, branch: u32, arm: u32) {
        self.arms.push((branch, arm));
    }

    fn fault(&self, index: u32, phase: Phase, attempt: u32) -> Option<Fault> {
        if self.fail.is_some_and(|(i, ..)| i == index) && phase == Phase::Forward {
            self.reached
                .store(true, core::sync::atomic::Ordering::Relaxed);
        }
        match self.fail {
            Some((i, fault, times))
                if i == index && phase == Phase::Forward && times.is_none_or(|t| attempt <= t) =>
            {
                Some(fault)
            }
            _ => match self.fail_confirm {
                Some((i, times)) if i == index && phase == Phase::Confirm && attempt <= times => {
                    Some(Fault::Error)
                }
                _ => None,
            },
        }
    }

    fn repeats(&self, index: u32, phase: Phase) -> bool {
        self.repeat == Some((index, phase))
    }

    fn overlap(&self, index: u32, attempt: u32) -> Option<Overlap> {
        match self.overlap {
            Some((a, _, _)) if a == index => Some(Overlap::Late),
            Some((_, b, fails)) if b == index && attempt == 1 => Some(Overlap::Held { fails }),
            _ => None,
        }
    }

    fn overlapped(&self, index: u32) {
        if self.overlap.is_some_and(|(_, b, _)| b == index) {
            self.overlapped.store(true, Ordering::Relaxed);
        }
    }
}

impl<T> Keep<T> for Plan {
    fn encode(_: &T) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }
    fn decode(_: &[u8]) -> Result<T, String> {
        Err("a sweep run in memory has nothing stored".to_owned())
    }
}

impl<T: ?Sized> Share<T> for Plan {
    fn get(_: &Resources) -> Result<&T, MissingResource> {
        Err(MissingResource::of::<T>())
    }
}
