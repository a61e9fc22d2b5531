//! Honest replicas hold the same state digest at every checkpoint seq (taken, stable or
//! installed by state transfer).

use super::Violations;
use phalanx_core::wire::Seq;
use phalanx_crypto::Digest;
use std::collections::BTreeMap;

#[derive(Default)]
pub struct Checkpoints {
    first: BTreeMap<Seq, Digest>,
}

impl Checkpoints {
    pub fn taken(&mut self, v: &mut Violations, at: u64, replica: usize, seq: Seq, d: Digest) {
        match self.first.get(&seq) {
            Some(d0) if *d0 != d => v.push(
                at,
                format!(
                    "state digests differ at checkpoint {seq}: replica {replica} has {d:?}, another honest {d0:?}"
                ),
            ),
            Some(_) => {}
            None => {
                self.first.insert(seq, d);
            }
        }
    }
}
