//! What a running step can learn about itself: saga id, step name, attempt, idempotency key.

use core::cell::Cell;
use core::fmt;

use crate::outbox::SendError;

/// Identifies one run of a saga. Stable for the life of that run, across retries.
///
/// Shown as 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SagaId {
    // Two halves, high first (so that the derived order is the number's), not
    // one `u128`: a `u128` is aligned to 16 bytes, and every future that holds
    // an id (each step's, through its context) would be padded to match.
    high: u64,
    low: u64,
}

impl SagaId {
    /// A fresh random id.
    pub fn random() -> Self {
        SagaId::from_u128(fastrand::u128(..))
    }

    /// A fresh id that sorts by creation time: the milliseconds since the Unix
    /// epoch in the top 48 bits, then 80 random bits (the layout of a UUIDv7).
    /// The durable executor uses these, so that a store's indexes grow at one end
    /// instead of being written all over.
    pub fn time_ordered() -> Self {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        SagaId::from_u128(((millis & 0xffff_ffff_ffff) << 80) | (fastrand::u128(..) >> 48))
    }

    /// The id with this numeric value.
    pub const fn from_u128(value: u128) -> Self {
        SagaId {
            high: (value >> 64) as u64,
            low: value as u64,
        }
    }

    /// The numeric value.
    pub const fn as_u128(&self) -> u128 {
        ((self.high as u128) << 64) | self.low as u128
    }
}

impl fmt::Display for SagaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}{:016x}", self.high, self.low)
    }
}

/// Reads back what [`Display`](fmt::Display) writes: 32 hexadecimal digits
/// (either case), as a log line or the store shows an id.
///
/// ```
/// use sagaflow::SagaId;
///
/// let id = SagaId::time_ordered();
/// assert_eq!(id.to_string().parse::<SagaId>(), Ok(id));
/// let bad = "not-an-id".parse::<SagaId>().unwrap_err();
/// assert_eq!(
///     bad.to_string(),
///     "`not-an-id` is not a saga id: a saga id is 32 hexadecimal digits, as in `0192f0c1a2b37c4d8e9fa0b1c2d3e4f5`"
/// );
/// ```
impl core::str::FromStr for SagaId {
    type Err = ParseSagaIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let well_formed = text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit());
        match u128::from_str_radix(text, 16) {
            Ok(value) if well_formed => Ok(SagaId::from_u128(value)),
            _ => Err(ParseSagaIdError {
                text: text.chars().take(64).collect(),
            }),
        }
    }
}

/// A text that is not a [`SagaId`]; says what was given and what an id looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseSagaIdError {
    /// What was given (its first 64 characters).
    text: String,
}

impl fmt::Display for ParseSagaIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a saga id: a saga id is 32 hexadecimal digits, as in \
             `0192f0c1a2b37c4d8e9fa0b1c2d3e4f5`",
            self.text
        )
    }
}

impl std::error::Error for ParseSagaIdError {}

/// Whether a step is being done or undone, or, for a try-confirm-cancel step,
/// confirmed or cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// The step itself runs (for a TCC step, its try).
    Forward,
    /// The step's compensation runs.
    Compensation,
    /// A TCC step's confirm runs: its saga decided to commit.
    Confirm,
    /// A TCC step's cancel runs: its saga rolls back.
    Cancel,
}

/// The context of the step (or compensation) that is running now.
///
/// Read it from inside a step with [`StepContext::current`]:
///
/// ```
/// use sagaflow::{step, StepContext};
///
/// #[step(retriable)]
/// async fn send_receipt(email: &str) -> Result<(), std::io::Error> {
///     if let Some(cx) = StepContext::current() {
///         // The same key on every retry of this step in this saga run:
///         // hand it to the mail service so that it sends the receipt once.
///         let _key = cx.idempotency_key().to_string();
///         let _ = (cx.saga_id(), cx.step(), cx.attempt());
///     }
///     let _ = email;
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepContext {
    pub(crate) saga: &'static str,
    pub(crate) saga_id: SagaId,
    pub(crate) step: &'static str,
    pub(crate) index: u32,
    pub(crate) attempt: u32,
    pub(crate) phase: Phase,
}

thread_local! {
    // A pointer rather than a copy: the context lives, pinned, beside the step's
    // future, and setting a pointer per poll is cheaper than moving 64 bytes in and out.
    static CURRENT: Cell<*const StepContext> = const { Cell::new(core::ptr::null()) };
}

impl StepContext {
    /// The context of the step whose future is being polled on this thread, if any.
    ///
    /// `None` outside a saga, for example when a step function is called directly in a
    /// unit test, or in a task that the step spawned.
    pub fn current() -> Option<StepContext> {
        let current = CURRENT.with(Cell::get);
        // SAFETY: the pointer is non-null only inside `enter`, whose caller keeps
        // the context borrowed (and so alive and unmoved) until `enter` returns and
        // the previous pointer is restored, on unwind too.
        unsafe { current.as_ref() }.copied()
    }

    /// Makes `cx` current while `f` runs; restores what was there before, even on panic.
    // Always: two thread-local writes around every poll of a step, which
    // rustc sometimes left as a call (36 instructions a step) in a saga
    // whose steps were also polled by `sagaflow::join!` groups.
    #[inline(always)]
    pub(crate) fn enter<R>(cx: &StepContext, f: impl FnOnce() -> R) -> R {
        struct Restore(*const StepContext);
        impl Drop for Restore {
            #[inline]
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(CURRENT.with(|c| c.replace(cx)));
        f()
    }

    /// The saga's name (its function's name).
    pub fn saga(&self) -> &'static str {
        self.saga
    }

    /// The saga run's id.
    pub fn saga_id(&self) -> SagaId {
        self.saga_id
    }

    /// The step function's name.
    pub fn step(&self) -> &'static str {
        self.step
    }

    /// The step's position in the saga, from 0.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The attempt number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether the step or its compensation is running.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Sends `message` to `destination` through the saga's outbox, from inside
    /// a running step or compensation.
    ///
    /// The message is committed with this step's outcome: it leaves only if
    /// the step succeeds (a failed attempt's messages are dropped, and its retry
    /// sends its own), and then even if the saga later compensates. A
    /// compensation sends its "cancelled" message the same way, committed
    /// with the compensation's success. In a durable run the message is
    /// stored in the same commit as the outcome and a relay delivers it (see
    /// [`crate::outbox`]); in memory it goes to the runner's sink once the step
    /// has succeeded.
    ///
    /// Errors: called outside a running step ([`SendError::NotInStep`]), in
    /// memory on a runner without a sink ([`SendError::NoOutbox`]), or with a
    /// message serde cannot serialize to JSON ([`SendError::Serialize`]).
    /// Give your error type a `From<SendError>` to write `?`.
    ///
    /// ```
    /// use sagaflow::{step, StepContext, outbox::SendError};
    ///
    /// #[derive(Debug)]
    /// enum StockError { Sold, Outbox(SendError) }
    /// impl From<SendError> for StockError {
    ///     fn from(e: SendError) -> Self { StockError::Outbox(e) }
    /// }
    /// impl std::fmt::Display for StockError {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    ///         write!(f, "{self:?}")
    ///     }
    /// }
    ///
    /// #[step(compensate = release)]
    /// async fn reserve(sku: &str) -> Result<u32, StockError> {
    ///     StepContext::send("inventory", &format!("reserved {sku}"))?;
    ///     Ok(7)
    /// }
    ///
    /// async fn release(sku: &str, _hold: &u32) -> Result<(), StockError> {
    ///     StepContext::send("inventory", &format!("released {sku}"))?;
    ///     Ok(())
    /// }
    /// ```
    pub fn send<T: serde::Serialize + ?Sized>(
        destination: &str,
        message: &T,
    ) -> Result<(), SendError> {
        crate::outbox::sending::send_from_step(destination, None, message)
    }

    /// Like [`send`](Self::send), with a key for sinks that partition or
    /// order by key.
    pub fn send_keyed<T: serde::Serialize + ?Sized>(
        destination: &str,
        key: impl fmt::Display,
        message: &T,
    ) -> Result<(), SendError> {
        crate::outbox::sending::send_from_step(destination, Some(key.to_string()), message)
    }

    /// A key that is the same for every attempt of this step (or of its compensation)
    /// in this saga run, and different for any other step or run.
    pub fn idempotency_key(&self) -> IdempotencyKey {
        IdempotencyKey {
            saga_id: self.saga_id,
            index: self.index,
            phase: self.phase,
        }
    }
}

/// A stable key for one step (or compensation) of one saga run; see
/// [`StepContext::idempotency_key`]. Shown as `<saga id>-<step index>` with a `-undo`
/// suffix for a compensation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    saga_id: SagaId,
    index: u32,
    phase: Phase,
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.phase {
            // A TCC step's try, confirm and cancel share one key: a
            // participant's barrier tells the phases apart itself.
            Phase::Forward | Phase::Confirm | Phase::Cancel => {
                write!(f, "{}-{}", self.saga_id, self.index)
            }
            Phase::Compensation => write!(f, "{}-{}-undo", self.saga_id, self.index),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saga_id_reads_back_as_it_is_shown() {
        for id in [
            SagaId::from_u128(0),
            SagaId::from_u128(u128::MAX),
            SagaId::time_ordered(),
            SagaId::random(),
        ] {
            assert_eq!(id.to_string().parse::<SagaId>(), Ok(id));
            assert_eq!(id.to_string().to_uppercase().parse::<SagaId>(), Ok(id));
        }
        for bad in [
            "",
            "ab",
            "+0000000000000000000000000000000",
            "0000000000000000000000000000000g",
            "000000000000000000000000000000000",
            " 0000000000000000000000000000000",
        ] {
            let error = bad.parse::<SagaId>().unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("`{bad}` is not a saga id"))
            );
        }
    }

    fn cx(attempt: u32, phase: Phase) -> StepContext {
        StepContext {
            saga: "s",
            saga_id: SagaId::from_u128(0xab),
            step: "a",
            index: 2,
            attempt,
            phase,
        }
    }

    #[test]
    fn key_is_stable_across_attempts_and_differs_for_compensation() {
        assert_eq!(
            cx(1, Phase::Forward).idempotency_key(),
            cx(7, Phase::Forward).idempotency_key()
        );
        assert_ne!(
            cx(1, Phase::Forward).idempotency_key(),
            cx(1, Phase::Compensation).idempotency_key()
        );
        assert_eq!(
            cx(1, Phase::Compensation).idempotency_key().to_string(),
            "000000000000000000000000000000ab-2-undo"
        );
    }

    #[test]
    fn time_ordered_ids_sort_by_creation() {
        let a = SagaId::time_ordered();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = SagaId::time_ordered();
        assert!(a < b && a.to_string() < b.to_string());
        assert_ne!(SagaId::time_ordered(), SagaId::time_ordered());
    }

    #[test]
    fn enter_restores_on_panic() {
        assert!(StepContext::current().is_none());
        let outer = cx(1, Phase::Forward);
        let r = std::panic::catch_unwind(|| StepContext::enter(&outer, || panic!("boom")));
        assert!(r.is_err());
        assert!(StepContext::current().is_none());
        let inner = cx(3, Phase::Forward);
        StepContext::enter(&outer, || {
            StepContext::enter(&inner, || {
                assert_eq!(StepContext::current().unwrap().attempt(), 3)
            });
            assert_eq!(StepContext::current().unwrap().attempt(), 1);
        });
        assert!(StepContext::current().is_none());
    }
}
