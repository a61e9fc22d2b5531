//! Only what clients signed executes, and at most one operation per (client, nonce): a forged
//! request never executes, and a nonce is never spent twice.

use super::Violations;
use phalanx_core::wire::{Batch, Outcome, ReplyEntry, Seq};
use phalanx_crypto::{Digest, PublicKey};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Default)]
pub struct Requests {
    /// Requests known to carry an invalid signature.
    pub forged: BTreeSet<Digest>,
    /// The operation applied under each (client, nonce).
    applied: BTreeMap<(PublicKey, u64), Digest>,
}

impl Requests {
    pub fn executed(
        &mut self,
        v: &mut Violations,
        at: u64,
        replica: usize,
        seq: Seq,
        batch: &Batch,
        entries: &[ReplyEntry],
    ) {
        if batch.requests.iter().any(|r| self.forged.contains(&r.digest())) {
            v.push(
                at,
                format!(
                    "validity: replica {replica} executed a request with a forged signature at seq {seq}"
                ),
            );
        }
        for e in entries.iter().filter(|e| e.outcome == Outcome::Applied) {
            match self.applied.get(&(e.client, e.nonce)) {
                Some(op) if *op != e.op => v.push(
                    at,
                    format!(
                        "double spend: two operations applied for one nonce {} of {:?}",
                        e.nonce, e.client
                    ),
                ),
                Some(_) => {}
                None => {
                    self.applied.insert((e.client, e.nonce), e.op);
                }
            }
        }
    }
}
