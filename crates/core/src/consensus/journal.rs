//! What a replica must keep of what it persisted, compacted at each stable checkpoint. Shared
//! by the simulator's disk and the node's store so both keep exactly the same records.

use super::Record;

#[derive(Clone, Debug, Default)]
pub struct Journal {
    records: Vec<Record>,
}

impl Journal {
    /// Appends a record. Returns true when it compacted the journal (a stable checkpoint made
    /// older records useless), so a store must rewrite rather than append.
    pub fn push(&mut self, r: Record) -> bool {
        let compacted = if let Record::Stable { cert, .. } = &r {
            let h = cert.seq;
            self.records.retain(|old| match old {
                Record::Stable { .. } => false,
                Record::PrePrepare(p, _) => p.body.seq > h,
                Record::Prepared(c, _) => c.pre_prepare.body.seq > h,
                Record::Vote(v) => v.body.seq > h,
                Record::View(_) | Record::ViewChange(_) | Record::OwnNonce(_) => true,
            });
            // Only the latest view records matter.
            let last_view = self.records.iter().rev().find_map(|r| match r {
                Record::View(v) => Some(*v),
                _ => None,
            });
            let last_target = self.records.iter().rev().find_map(|r| match r {
                Record::ViewChange(v) => Some(*v),
                _ => None,
            });
            let last_nonce = self.records.iter().rev().find_map(|r| match r {
                Record::OwnNonce(n) => Some(*n),
                _ => None,
            });
            self.records.retain(|r| match r {
                Record::View(v) => Some(*v) == last_view,
                Record::ViewChange(v) => Some(*v) == last_target,
                Record::OwnNonce(n) => Some(*n) == last_nonce,
                _ => true,
            });
            true
        } else {
            false
        };
        self.records.push(r);
        compacted
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    pub fn from_records(records: Vec<Record>) -> Self {
        Journal { records }
    }
}
