//! Agreement and determinism: every honest replica executes the same batch at a seq, and gets
//! the same results from it.

use super::Violations;
use phalanx_core::wire::{Batch, ReplyEntry, Seq};
use phalanx_crypto::Digest;
use std::collections::BTreeMap;

#[derive(Default)]
pub struct Agreement {
    /// The first batch digest and results an honest replica reported at each seq.
    first: BTreeMap<Seq, (Digest, Vec<ReplyEntry>)>,
}

impl Agreement {
    /// Returns whether this is the first execution of `seq` by any honest replica.
    pub fn executed(
        &mut self,
        v: &mut Violations,
        at: u64,
        replica: usize,
        seq: Seq,
        batch: &Batch,
        entries: &[ReplyEntry],
    ) -> bool {
        let d = batch.digest();
        let Some((d0, e0)) = self.first.get(&seq) else {
            self.first.insert(seq, (d, entries.to_vec()));
            return true;
        };
        if *d0 != d {
            v.push(
                at,
                format!(
                    "agreement: replica {replica} executed {d:?} at seq {seq}, another honest replica {d0:?}"
                ),
            );
        } else if e0.as_slice() != entries {
            v.push(at, format!("determinism: replica {replica} got different results at seq {seq}"));
        }
        false
    }
}
