//! A replica's simulated disk: what it persisted survives a crash, nothing else does.

use phalanx_core::consensus::Record;

#[derive(Default)]
pub struct Disk {
    records: Vec<Record>,
}

impl Disk {
    pub fn write(&mut self, r: Record) {
        if let Record::Stable { cert, .. } = &r {
            // Compaction: what lies at or below a stable checkpoint is no longer needed.
            let h = cert.seq;
            self.records.retain(|old| match old {
                Record::Stable { .. } => false,
                Record::PrePrepare(p, _) => p.body.seq > h,
                Record::Prepared(c) => c.pre_prepare.body.seq > h,
                Record::Vote(v) => v.body.seq > h,
                Record::View(_) | Record::ViewChange(_) => true,
            });
        }
        self.records.push(r);
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }
}
