//! A replica's simulated disk: what it persisted survives a crash, nothing else does.

use phalanx_core::consensus::{Journal, Record};

#[derive(Default)]
pub struct Disk {
    journal: Journal,
}

impl Disk {
    pub fn write(&mut self, r: Record) {
        self.journal.push(r);
    }

    pub fn records(&self) -> &[Record] {
        self.journal.records()
    }
}
