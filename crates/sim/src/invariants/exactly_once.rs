//! Exactly once, in order: each honest replica executes seq after seq, and a state transfer
//! only ever moves it forward.

use super::Violations;
use phalanx_core::wire::Seq;
use std::collections::BTreeMap;

#[derive(Default)]
pub struct ExactlyOnce {
    /// The last seq each replica executed or installed.
    last: BTreeMap<usize, Seq>,
}

impl ExactlyOnce {
    pub fn executed(&mut self, v: &mut Violations, at: u64, replica: usize, seq: Seq) {
        let last = self.last.entry(replica).or_default();
        if seq != *last + 1 {
            v.push(at, format!("exactly-once: replica {replica} executed seq {seq} after {last}"));
        }
        *last = seq;
    }

    pub fn installed(&mut self, v: &mut Violations, at: u64, replica: usize, seq: Seq) {
        let last = self.last.entry(replica).or_default();
        if seq <= *last {
            v.push(at, format!("state transfer moved replica {replica} back from {last} to {seq}"));
        }
        *last = seq;
    }

    /// A restart resumes from what the replica recovered from its disk.
    pub fn recovered(&mut self, replica: usize, seq: Seq) {
        self.last.insert(replica, seq);
    }
}
