//! How a relay claims, delivers and retries.

use core::time::Duration;

#[cfg(doc)]
use super::Relay;

/// How a [`Relay`] claims, delivers and retries.
///
/// Out-of-range values are read as the nearest sensible one: a `batch`,
/// `concurrency` or `max_attempts` of 0 as 1, a `jitter` outside `0.0..=1.0`
/// as the nearest end, a `max_backoff` below `backoff` as `backoff`.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayConfig {
    /// The most messages claimed in one round.
    pub batch: usize,
    /// How long a claim is leased. A transition not acknowledged by the sink
    /// within the lease counts as a failed delivery: another relay may have
    /// the messages by then.
    pub lease: Duration,
    /// Failed deliveries of a message before it is dead: its last failure
    /// makes it [`Dead`](crate::outbox::Settlement::Dead) instead of retried.
    pub max_attempts: u32,
    /// The pause before the second try; it doubles with every further
    /// failure, up to `max_backoff`.
    pub backoff: Duration,
    /// The longest pause between two tries.
    pub max_backoff: Duration,
    /// The part of each pause drawn at random, from 0.0 (none) to 1.0 (a pause
    /// anywhere between zero and the full backoff), so that messages that
    /// failed together are not all tried again at the same instant.
    pub jitter: f64,
    /// How long [`Relay::run`] waits before claiming again when a round found
    /// less than a full batch.
    pub poll: Duration,
    /// How long [`Relay::run`] waits after the store failed.
    pub error_pause: Duration,
    /// The most sagas whose messages are being delivered at once. A saga's own
    /// transitions always go one after the other.
    pub concurrency: usize,
}

impl Default for RelayConfig {
    /// Batches of 256 under a 30 s lease, 32 sagas at once, dead after 10
    /// failures, backoff from 100 ms doubling to 1 min with half of it random,
    /// a poll every 100 ms when idle, a 1 s pause after a store error.
    fn default() -> Self {
        RelayConfig {
            batch: 256,
            lease: Duration::from_secs(30),
            max_attempts: 10,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(60),
            jitter: 0.5,
            poll: Duration::from_millis(100),
            error_pause: Duration::from_secs(1),
            concurrency: 32,
        }
    }
}

impl RelayConfig {
    /// The pause, before jitter, after a message's `failures`th failed
    /// delivery: `backoff × 2^(failures − 1)`, at most `max_backoff`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use sagaflow::outbox::RelayConfig;
    /// let config = RelayConfig {
    ///     backoff: Duration::from_millis(100),
    ///     max_backoff: Duration::from_secs(1),
    ///     ..RelayConfig::default()
    /// };
    /// assert_eq!(config.backoff_after(1), Duration::from_millis(100));
    /// assert_eq!(config.backoff_after(3), Duration::from_millis(400));
    /// assert_eq!(config.backoff_after(30), Duration::from_secs(1));
    /// ```
    pub fn backoff_after(&self, failures: u32) -> Duration {
        let max = self.max_backoff.max(self.backoff);
        let doublings = failures.saturating_sub(1).min(31);
        self.backoff.saturating_mul(1u32 << doublings).min(max)
    }

    /// [`backoff_after`](Self::backoff_after) with its `jitter` part drawn at
    /// random.
    pub(super) fn jittered_backoff(&self, failures: u32) -> Duration {
        let full = self.backoff_after(failures);
        let jitter = self.jitter.clamp(0.0, 1.0);
        full.mul_f64(1.0 - jitter * fastrand::f64())
    }

    pub(super) fn normalized(mut self) -> Self {
        self.batch = self.batch.max(1);
        self.concurrency = self.concurrency.max(1);
        self.max_attempts = self.max_attempts.max(1);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_jitter_only_shortens_it() {
        let config = RelayConfig {
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(70),
            jitter: 0.5,
            ..RelayConfig::default()
        };
        let full: Vec<u128> = (1..=5)
            .map(|n| config.backoff_after(n).as_millis())
            .collect();
        assert_eq!(full, vec![10, 20, 40, 70, 70]);
        assert_eq!(config.backoff_after(u32::MAX), Duration::from_millis(70));
        for _ in 0..200 {
            let pause = config.jittered_backoff(3);
            assert!(pause <= Duration::from_millis(40) && pause >= Duration::from_millis(20));
        }
        let none = RelayConfig {
            jitter: -3.0,
            ..config
        };
        assert_eq!(none.jittered_backoff(2), Duration::from_millis(20));
    }
}
