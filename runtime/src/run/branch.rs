//! Branches in a `#[saga]` body: the arm each `if` or `match` takes, chosen
//! once and recorded, so that recovery takes it again without evaluating the
//! condition.

use crate::ArmInfo;
use crate::durable::Entry;
use crate::durable::journal::Journal;
use crate::hooks::Hooks;

use super::Run;

impl<H: Hooks, J: Journal> Run<'_, H, J> {
    /// The arm branch `branch` takes among `arms` (its `Saga::BRANCHES`
    /// entry's): the one the journal recorded before a restart, else
    /// `choose`'s, recorded with the next transition (the first intent inside
    /// the arm, or whatever comes next).
    ///
    /// A recorded arm this code has no arm for refuses the run: nothing more
    /// runs or is written, and the saga stays for a person.
    #[inline]
    pub fn arm(
        &mut self,
        branch: u32,
        arms: &'static [ArmInfo],
        choose: impl FnOnce() -> u32,
    ) -> u32 {
        let count = arms.len() as u32;
        let arm = if !J::DURABLE {
            let arm = choose();
            if J::FAULTS {
                self.journal.chose(branch, arm);
            }
            arm
        } else if let Some(arm) = self.journal.arm(branch) {
            if arm >= count {
                self.unknown_arm(branch, arm, count);
                return count.saturating_sub(1);
            }
            arm
        } else {
            let arm = choose();
            self.journal.defer(Entry::Arm { branch, arm });
            arm
        };
        self.skip_other_arms(arms, arm);
        arm
    }

    /// Notes the steps of the arms not taken, for the report.
    #[inline]
    fn skip_other_arms(&mut self, arms: &'static [ArmInfo], taken: u32) {
        for (a, info) in arms.iter().enumerate() {
            let steps = info.steps();
            if a as u32 != taken && !steps.is_empty() {
                self.skipped
                    .get_or_insert_with(Default::default)
                    .push(steps);
            }
        }
    }

    #[cold]
    fn unknown_arm(&mut self, branch: u32, arm: u32, count: u32) {
        let reason = format!(
            "saga {} (`{}`) cannot be resumed: its journal says branch {} took arm {}, but the code has {count} arms there; its record is left as it is",
            self.id,
            self.saga,
            branch + 1,
            arm + 1,
        );
        tracing::error!(parent: &self.span, %reason, "the saga cannot be resumed; it stops here, its record untouched");
        self.journal.refuse(reason);
    }
}
