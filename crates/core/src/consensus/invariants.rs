//! What must hold between any two inputs, asserted in debug builds after every one.

use super::replica::EVIDENCE_MEMORY;
use super::replica::Replica;
use crate::application::Application;

impl<A: Application> Replica<A> {
    /// What must hold between any two inputs, checked in debug builds after every one (the
    /// habit of TigerBeetle's `invariants()`): the simulator's debug runs drive every protocol
    /// path through these. Release builds skip them.
    pub(super) fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let h = self.stable.seq;
        debug_assert!(
            h <= self.last_executed,
            "stable checkpoint {h} above execution {}",
            self.last_executed
        );
        debug_assert!(
            self.checkpoints.snapshots.get(&h).is_some_and(|(d, _)| *d == self.stable.state),
            "no snapshot of the stable checkpoint {h} under its certified digest"
        );
        debug_assert!(
            self.log.keys().next().is_none_or(|s| *s > h),
            "a slot at or below the stable checkpoint {h}"
        );
        debug_assert!(
            self.active || self.vc_target > self.view,
            "changing views, yet the target {} is not above view {}",
            self.vc_target,
            self.view
        );
        for (from, b) in &self.future {
            debug_assert!(
                b.queue.len() <= self.params.max_buffered_per_sender
                    && b.bytes <= self.params.max_buffered_bytes_per_sender,
                "member {from}'s early messages outgrew their bound"
            );
        }
        debug_assert!(self.reports.accused.len() <= EVIDENCE_MEMORY + 1, "accusations outgrew their bound");
    }
}
