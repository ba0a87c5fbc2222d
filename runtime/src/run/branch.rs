//! Branches in a `#[saga]` body: the arm each `if` or `match` takes, chosen
//! once and recorded, so that recovery takes it again without evaluating the
//! condition.

use super::Run;
use crate::durable::Entry;
use crate::durable::journal::Journal;
use crate::hooks::Hooks;

impl<H: Hooks, J: Journal> Run<'_, H, J> {
    /// The arm branch `branch` (of `arms`) takes: the one the journal recorded
    /// before a restart, else `choose`'s, recorded with the next transition (the
    /// first intent inside the arm, or whatever comes next).
    ///
    /// A recorded arm this code has no arm for (past `arms`) refuses the run:
    /// nothing more runs or is written, and the saga stays for a person.
    #[inline]
    pub fn arm(&mut self, branch: u32, arms: u32, choose: impl FnOnce() -> u32) -> u32 {
        if !J::DURABLE {
            return choose();
        }
        if let Some(arm) = self.journal.arm(branch) {
            if arm >= arms {
                let reason = format!(
                    "saga `{}` cannot be resumed: its journal says branch {} took arm {}, but the code has {} arms there; its record is left as it is",
                    self.saga,
                    branch + 1,
                    arm + 1,
                    arms
                );
                tracing::error!(parent: &self.span, %reason, "the saga cannot be resumed; it stops here, its record untouched");
                self.journal.refuse(reason);
                return arms - 1;
            }
            return arm;
        }
        let arm = choose();
        self.journal.defer(Entry::Arm { branch, arm });
        arm
    }
}
