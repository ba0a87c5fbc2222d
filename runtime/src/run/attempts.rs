//! One step's attempts: each attempt guarded against panics, timed out when the
//! step has a timeout, retried with jittered backoff.

use super::*;

pin_project_lite::pin_project! {
    /// Polls a step's future with its context current, and turns a panic into a value.
    pub(super) struct Guarded<'c, F> {
        #[pin]
        pub(super) future: F,
        // Borrowed, not owned: copying a 64-byte context into each step's future
        // costs more than the rest of a trivial step's overhead together.
        pub(super) cx: &'c StepContext,
    }
}

impl<F: Future> Future for Guarded<'_, F> {
    type Output = Result<F::Output, String>;

    // Always: a thin layer around the step's own poll, which rustc stopped
    // inlining into a saga of steps in a row (31 instructions a step) once
    // the same steps were also polled, inline, by `sagaflow::join!` groups.
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let future = this.future;
        // `cx` outlives the future, so the thread-local may point at it for the
        // duration of this poll instead of copying it in and out.
        let polled = StepContext::enter(this.cx, || {
            std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(task)))
        });
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    }
}

pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

pub(super) fn settle<T, E>(outcome: Result<Result<T, E>, String>) -> Result<T, StepFailure<E>> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(StepFailure::Error(error)),
        Err(message) => Err(StepFailure::Panicked { message }),
    }
}

/// One attempt: the future, guarded, under a timeout only if the step has one, in
/// a span only if someone listens.
pub(super) async fn attempt<Fut, T, E>(
    future: Fut,
    cx: &StepContext,
    timeout: Option<Duration>,
    span: Option<tracing::Span>,
) -> Result<T, StepFailure<E>>
where
    Fut: Future<Output = Result<T, E>>,
{
    let guarded = Guarded { future, cx };
    let outcome = match (timeout, span) {
        (None, None) => guarded.await,
        (None, Some(span)) => guarded.instrument(span).await,
        (Some(after), span) => {
            let limited = tokio::time::timeout(after, guarded);
            let result = match span {
                None => limited.await,
                Some(span) => limited.instrument(span).await,
            };
            match result {
                Ok(outcome) => outcome,
                Err(_elapsed) => return Err(StepFailure::TimedOut { after }),
            }
        }
    };
    settle(outcome)
}

/// The wait before retry number `retry`, with equal jitter: between half of the
/// policy's [`base_delay`](RetryPolicy::base_delay) and all of it, so that sagas
/// failing together do not retry in lock step.
pub(super) fn jittered_delay(policy: RetryPolicy, retry: u32) -> Duration {
    let base = policy.base_delay(retry);
    let half = base / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(fastrand::u64(0..=nanos))
}

/// `value`'s `Display` in one allocation of its length: formatted on the
/// stack first when it is short, as error texts are. `to_string` grows its
/// `String` as it writes, two or three allocations for a short error text.
pub(super) fn text_of(value: &impl Display) -> String {
    use core::fmt::Write as _;
    struct Short {
        bytes: [u8; 120],
        len: usize,
    }
    impl core::fmt::Write for Short {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self.len + s.len();
            let room = self.bytes.get_mut(self.len..end).ok_or(core::fmt::Error)?;
            room.copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }
    let mut short = Short {
        bytes: [0; 120],
        len: 0,
    };
    // Whole `str`s only were copied in, so the bytes are UTF-8.
    match write!(short, "{value}") {
        Ok(()) => match core::str::from_utf8(&short.bytes[..short.len]) {
            Ok(text) => text.to_owned(),
            Err(_) => value.to_string(),
        },
        // Longer than the room (or a `Display` that fails, which
        // `to_string` reports as it always did).
        Err(_) => value.to_string(),
    }
}

pub(super) fn outcome_of<E>(failure: &StepFailure<E>) -> Outcome {
    match failure {
        StepFailure::TimedOut { .. } => Outcome::TimedOut,
        StepFailure::Panicked { .. } => Outcome::Panicked,
        _ => Outcome::Failed,
    }
}

/// What a step returns once its saga's store has failed: nothing more runs.
pub(super) fn halted<E>() -> StepFailure<E> {
    StepFailure::Recovered {
        message: "not run: the saga's store failed, so the saga stopped where it was".to_owned(),
    }
}

impl<'h, H: Hooks, J: Journal> Run<'h, H, J> {
    /// Every attempt of a step after a failed first one, every attempt of a step
    /// with a timeout, and every attempt of a durable step; numbered from
    /// `attempt_no`, with `spent` attempts made before (by a process before a
    /// restart) counted against the retry budget. `first` is the failure of an
    /// attempt already made (number `attempt_no`), if one was.
    ///
    /// In a durable run each attempt's intent is written before the attempt
    /// starts, its output is deferred into the next commit, and a failure for
    /// good is written before the saga turns back.
    pub(super) async fn step_attempts<S, F, Fut>(
        &mut self,
        index: u32,
        mut call: F,
        (mut attempt_no, spent): (u32, u32),
        first: Option<StepFailure<S::Error>>,
        started: Option<Instant>,
    ) -> Result<S::Output, StepFailure<S::Error>>
    where
        S: Step,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<S::Output, S::Error>>,
        J: Keep<S::Output>,
    {
        let name = S::INFO.name();
        let policy = S::INFO.retry();
        let mut last_error = None;
        // Attempts that count against the budget, across restarts. After a
        // restart the loop makes its first attempt before it looks at the
        // budget: the attempt a crash cut short may or may not have failed.
        let mut tries = spent.saturating_add(u32::from(first.is_some()));
        let mut pending = first;
        loop {
            if let Some(failure) = pending.take() {
                if !policy.allows_attempt_after(tries) {
                    return self
                        .step_failed::<S>(index, attempt_no, failure, started)
                        .await;
                }
                let cx = self.context(name, index, attempt_no, Phase::Forward);
                let text = failure.to_string();
                let delay = self.step_will_retry(&cx, policy, tries, &text);
                last_error = Some(text);
                tokio::time::sleep(delay).await;
                attempt_no = attempt_no.saturating_add(1);
            }
            tries = tries.saturating_add(1);
            if J::DURABLE {
                let entry = Entry::StepStarted {
                    index,
                    attempt: attempt_no,
                };
                if let Err(e) = self.write(entry).await {
                    self.halt(e);
                    return Err(halted());
                }
            }
            let cx = self.context(name, index, attempt_no, Phase::Forward);
            if let Some(outgoing) = &self.outgoing {
                outgoing.discard(index, Phase::Forward);
            }
            self.hooks.step_started(&cx);
            let span = self.span_for(Phase::Forward, name, "", attempt_no);
            let outcome = self
                .one_attempt(&mut call, cx, Phase::Forward, S::INFO.timeout(), span)
                .await;
            match outcome {
                Ok(output) => {
                    if J::DURABLE {
                        match J::encode(&output) {
                            Ok(bytes) => self.journal.defer(Entry::StepSucceeded {
                                index,
                                output: bytes,
                            }),
                            Err(message) => {
                                let failure = StepFailure::NotPersisted { message };
                                return self
                                    .step_failed::<S>(index, attempt_no, failure, started)
                                    .await;
                            }
                        }
                    }
                    if let Err(message) = self.hand_over(index, Phase::Forward).await {
                        let failure = StepFailure::NotSent { message };
                        return self
                            .step_failed::<S>(index, attempt_no, failure, started)
                            .await;
                    }
                    self.record_success::<S>(&cx, index, attempt_no, started, last_error);
                    return Ok(output);
                }
                Err(failure) => pending = Some(failure),
            }
        }
    }

    /// One attempt of a step or a compensation after the first, or under the
    /// test kit; the test kit's plan may change it.
    pub(super) async fn one_attempt<F, Fut, T, E>(
        &self,
        call: &mut F,
        cx: StepContext,
        phase: Phase,
        timeout: Option<Duration>,
        span: Option<tracing::Span>,
    ) -> Result<T, StepFailure<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if J::FAULTS {
            Box::pin(self.faulty_attempt(call, cx, phase, timeout)).await
        } else {
            attempt(call(), &cx, timeout, span).await
        }
    }

    /// One attempt under the test kit's plan: a fault instead of the attempt, or
    /// the attempt run twice (the first result dropped), or the attempt as is.
    pub(super) async fn faulty_attempt<F, Fut, T, E>(
        &self,
        call: &mut F,
        cx: StepContext,
        phase: Phase,
        timeout: Option<Duration>,
    ) -> Result<T, StepFailure<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let index = cx.index;
        match self.journal.fault(index, phase, cx.attempt) {
            Some(Fault::Error) => Err(StepFailure::Injected {
                message: format!("an error injected into `{}`", cx.step),
            }),
            Some(Fault::Timeout) => Err(StepFailure::TimedOut {
                after: timeout.unwrap_or_default(),
            }),
            Some(Fault::Panic) => {
                let step = cx.step;
                let panicking = core::future::poll_fn(move |_| -> Poll<Result<T, E>> {
                    panic!("a panic injected into `{step}`")
                });
                attempt(panicking, &cx, None, None).await
            }
            None => {
                if self.journal.repeats(index, phase) {
                    // At-least-once delivery: the same attempt arrives twice.
                    let _first = attempt(call(), &cx, timeout, None).await;
                }
                attempt(call(), &cx, timeout, None).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_between_half_and_whole() {
        let p = RetryPolicy::retries(3).with_backoff(Duration::from_millis(100));
        for _ in 0..1000 {
            let d = jittered_delay(p, 2);
            assert!(
                d >= Duration::from_millis(100) && d <= Duration::from_millis(200),
                "{d:?}"
            );
        }
    }
}
