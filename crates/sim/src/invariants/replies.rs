//! What clients accept is what happened: every result a client accepted on f+1 matching
//! replies is the one the agreed history executed (checked at the end of the run, when the
//! reference ledger has applied all of it).

use super::Violations;
use phalanx_core::wire::Outcome;
use phalanx_crypto::{Digest, PublicKey};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct Replies {
    accepted: Vec<(u64, PublicKey, u64, Digest, Outcome)>,
}

impl Replies {
    pub fn accepted(&mut self, at: u64, client: PublicKey, nonce: u64, op: Digest, outcome: Outcome) {
        self.accepted.push((at, client, nonce, op, outcome));
    }

    /// `executed`: the reference ledger's outcome of each (client, nonce, operation).
    pub fn finish(&mut self, v: &mut Violations, executed: &BTreeMap<(PublicKey, u64, Digest), Outcome>) {
        for (at, client, nonce, op, outcome) in std::mem::take(&mut self.accepted) {
            match executed.get(&(client, nonce, op)) {
                Some(o) if *o == outcome => {}
                Some(o) => v.push(
                    at,
                    format!("a client accepted {outcome:?} for nonce {nonce} but {o:?} was executed"),
                ),
                None => v.push(
                    at,
                    format!("a client accepted a result for nonce {nonce} that no honest replica executed"),
                ),
            }
        }
    }
}
