//! Telling the story: hooks that narrate a saga.

use std::sync::Mutex;
use std::time::Duration;

use sagaflow::{Hooks, RunOutcome, RunReport, SagaId, StepContext};

use super::lock;

/// [`Hooks`] that tell what a saga does, one plain sentence per event.
///
/// Each line is kept (see [`lines`](Narrator::lines)) and, unless the narrator
/// is [`quiet`](Narrator::quiet), printed to standard output as it happens.
#[derive(Debug, Default)]
pub struct Narrator {
    quiet: bool,
    lines: Mutex<Vec<String>>,
}

impl Narrator {
    /// A narrator that prints as it goes.
    pub fn new() -> Self {
        Narrator::default()
    }

    /// A narrator that only keeps its lines, for tests.
    pub fn quiet() -> Self {
        Narrator {
            quiet: true,
            lines: Mutex::default(),
        }
    }

    /// Everything said so far, in order.
    pub fn lines(&self) -> Vec<String> {
        lock(&self.lines).clone()
    }

    fn say(&self, line: String) {
        if !self.quiet {
            println!("{line}");
        }
        lock(&self.lines).push(line);
    }
}

fn attempt_note(cx: &StepContext) -> String {
    if cx.attempt() > 1 {
        format!(" (attempt {})", cx.attempt())
    } else {
        String::new()
    }
}

impl Hooks for Narrator {
    fn saga_started(&self, saga: &'static str, id: SagaId) {
        self.say(format!("saga `{saga}` starts, run {id}"));
    }

    fn step_started(&self, cx: &StepContext) {
        self.say(format!("  `{}` starts{}", cx.step(), attempt_note(cx)));
    }

    fn step_succeeded(&self, cx: &StepContext, elapsed: Duration) {
        self.say(format!("  `{}` succeeded in {elapsed:.1?}", cx.step()));
    }

    fn step_retrying(&self, cx: &StepContext, error: &str, delay: Duration) {
        self.say(format!(
            "  `{}` failed: {error}; trying again in {delay:.1?}",
            cx.step()
        ));
    }

    fn step_failed(&self, cx: &StepContext, error: &str) {
        // The first step failing means nothing was done before it.
        let then = if cx.index() == 0 {
            "nothing was done before it, so nothing needs undoing"
        } else {
            "undoing what was done before it"
        };
        self.say(format!(
            "  `{}` failed for good: {error}; {then}",
            cx.step()
        ));
    }

    fn compensation_started(&self, cx: &StepContext) {
        self.say(format!("  undoing `{}`{}", cx.step(), attempt_note(cx)));
    }

    fn compensation_succeeded(&self, cx: &StepContext, elapsed: Duration) {
        self.say(format!("  `{}` undone in {elapsed:.1?}", cx.step()));
    }

    fn compensation_retrying(&self, cx: &StepContext, error: &str, delay: Duration) {
        self.say(format!(
            "  undoing `{}` failed: {error}; trying again in {delay:.1?}",
            cx.step()
        ));
    }

    fn compensation_failed(&self, cx: &StepContext, error: &str) {
        self.say(format!(
            "  could not undo `{}`: {error}; a person has to repair it",
            cx.step()
        ));
    }

    fn saga_finished(&self, report: &RunReport) {
        let how = match report.outcome() {
            RunOutcome::Committed => "committed",
            RunOutcome::Compensated if report.compensations().next().is_none() => {
                "gave up; nothing had been done, so nothing needed undoing"
            }
            RunOutcome::Compensated => "gave up; everything that was done was undone",
            RunOutcome::CompensationFailed => "gave up; some of it could not be undone",
        };
        self.say(format!("saga `{}` {how}", report.saga()));
    }
}
