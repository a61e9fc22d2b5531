//! No false positives: honest replicas quarantine and accuse only faulty parties, and every
//! piece of evidence they report verifies on its own.

use super::Violations;
use phalanx_core::evidence::{Culprit, Evidence};
use phalanx_core::wire::ReplicaId;
use phalanx_crypto::{Digest, PublicKey};
use std::collections::BTreeSet;

pub struct Accountability {
    pub faulty: BTreeSet<ReplicaId>,
    pub byzantine_keys: BTreeSet<PublicKey>,
    pub cluster: Digest,
    pub members: Vec<PublicKey>,
    pub testing: bool,
}

impl Accountability {
    /// The committed accountability state of an honest replica.
    pub fn executed(
        &self,
        v: &mut Violations,
        at: u64,
        replica: usize,
        acc: &phalanx_core::state::Accountability,
    ) {
        if acc.quarantined.keys().any(|k| !self.byzantine_keys.contains(k)) {
            v.push(at, format!("false positive: replica {replica} quarantined an honest agent"));
        }
        for (accused, by) in &acc.accusations {
            if !self.byzantine_keys.contains(accused) && by.keys().any(|k| !self.byzantine_keys.contains(k)) {
                v.push(at, "false accusation: an honest agent accused an honest one of bad signatures");
            }
        }
    }

    /// Evidence an honest replica reported.
    pub fn evidence(&self, v: &mut Violations, at: u64, replica: usize, ev: &Evidence) {
        if let Err(e) = ev.verify(&self.cluster, &self.members, self.testing) {
            v.push(at, format!("replica {replica} emitted invalid evidence: {e}"));
        }
        let guilty = match ev.culprit() {
            Culprit::Member(m) => self.faulty.contains(&m),
            Culprit::Client(k) => self.byzantine_keys.contains(&k),
        };
        if !guilty {
            v.push(
                at,
                format!("false accusation: replica {replica} accused an honest party of {}", ev.fault_type()),
            );
        }
    }
}
