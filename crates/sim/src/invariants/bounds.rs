//! Whatever peers send, an honest replica's memory stays bounded: its log and its buffers of
//! early messages never outgrow what its parameters allow.

use super::Violations;

pub struct Bounds {
    /// Slots in the log, at most (the log window, plus slack for slots being collected).
    pub log_slots: usize,
    /// Early messages buffered over all senders, at most.
    pub buffered: usize,
}

impl Bounds {
    pub fn check(&self, v: &mut Violations, at: u64, replica: usize, log_slots: usize, buffered: usize) {
        if log_slots > self.log_slots || buffered > self.buffered {
            v.push(at, format!("memory: replica {replica} holds {log_slots} slots, {buffered} buffered"));
        }
    }
}
