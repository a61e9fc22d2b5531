//! What a NEW-VIEW must contain, computed from the VIEW-CHANGEs it carries.
//!
//! Pure and on its own: the new primary runs it to build its NEW-VIEW, every backup runs it
//! again to check that NEW-VIEW, and evidence of an invalid NEW-VIEW is judged by running it
//! once more.

use crate::wire::{Batch, CheckpointCert, PreparedCert, ReplicaId, Seq, Signed, ViewChange};
use phalanx_crypto::Digest;
use std::collections::BTreeMap;

/// What a NEW-VIEW must contain, computed from a quorum of valid VIEW-CHANGEs: the highest
/// stable checkpoint among them and, for every seq between it and the highest prepared seq, the
/// batch digest of the highest-view prepared certificate, or the null batch's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewViewPlan {
    pub stable: CheckpointCert,
    pub proposals: Vec<Proposal>,
}

/// One re-proposal of a NEW-VIEW.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub seq: Seq,
    pub digest: Digest,
    /// Who signed the chosen certificate (its primary and 2f backups, so at least f+1 honest
    /// members that received the batch): whom to ask for it. Empty for the null batch.
    pub holders: Vec<ReplicaId>,
}

/// Pure: the new primary runs it to build NEW-VIEW, every backup runs it again to check it.
pub fn plan_new_view(view_changes: &[Signed<ViewChange>]) -> Option<NewViewPlan> {
    let stable = view_changes.iter().map(|vc| &vc.body.stable).max_by_key(|c| c.seq)?.clone();
    let mut best: BTreeMap<Seq, &PreparedCert> = BTreeMap::new();
    for vc in view_changes {
        for p in &vc.body.prepared {
            let pp = &p.pre_prepare.body;
            if pp.seq <= stable.seq {
                continue;
            }
            let better = best.get(&pp.seq).is_none_or(|b| pp.view > b.pre_prepare.body.view);
            if better {
                best.insert(pp.seq, p);
            }
        }
    }
    let max_seq = best.keys().next_back().copied().unwrap_or(stable.seq);
    // Certificates inside evidence are not verified before this runs: a made-up one at seq
    // u64::MAX would otherwise have every replica build 2^64 re-proposals. Valid VIEW-CHANGEs
    // keep their certificates within the log window, which is at most MAX_PREPARED_CERTS.
    if max_seq.saturating_sub(stable.seq) > crate::wire::limits::MAX_PREPARED_CERTS as u64 {
        return None;
    }
    let null = Batch::null().digest();
    let first = if max_seq > stable.seq { stable.seq + 1 } else { max_seq.saturating_add(1) };
    let proposals = (first..=max_seq)
        .map(|seq| match best.get(&seq) {
            Some(p) => Proposal {
                seq,
                digest: p.pre_prepare.body.digest,
                holders: std::iter::once(p.pre_prepare.from)
                    .chain(p.prepares.iter().map(|v| v.from))
                    .collect(),
            },
            None => Proposal { seq, digest: null, holders: Vec::new() },
        })
        .collect();
    Some(NewViewPlan { stable, proposals })
}
