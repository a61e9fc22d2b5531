//! Verification of certificates carried inside messages (checkpoint certificates, prepared
//! certificates, view changes, commit certificates). Structural checks come first and are cheap;
//! every signature of a message is then checked in one batch.

use super::{Epoch, Params, SignatureVerifier};
use crate::quorum::Quorum;
use crate::wire::{CheckpointCert, CommitCert, Phase, PreparedCert, ReplicaId, Seq, Signed, ViewChange};
use phalanx_crypto::{Digest, VerifyItem};
use std::collections::BTreeSet;

/// What a replica knows to judge certificates: its current epoch for the normal case and view
/// changes, every epoch it knows for checkpoint certificates (a checkpoint is certified by the
/// epoch that ordered its seq, which may have ended since).
pub struct CertContext<'a> {
    pub cluster: &'a Digest,
    pub epoch: &'a Epoch,
    pub history: &'a [Epoch],
    pub quorum: Quorum,
    pub params: &'a Params,
    pub genesis_state: Digest,
}

impl CertContext<'_> {
    fn key_item<T: crate::wire::Body>(&self, m: &Signed<T>) -> Option<VerifyItem> {
        voter_item(self.epoch, m, self.cluster)
    }

    /// The epoch that ordered `seq`: the newest known one that starts below it.
    pub fn epoch_for(&self, seq: Seq) -> &Epoch {
        epoch_for(self.history, self.epoch, seq)
    }

    /// Structure of a checkpoint certificate; pushes its signatures onto `items`.
    pub fn checkpoint_cert(&self, c: &CheckpointCert, items: &mut Vec<VerifyItem>) -> bool {
        if c.seq == 0 {
            return c.state == self.genesis_state && c.proofs.is_empty();
        }
        if !c.seq.is_multiple_of(self.params.checkpoint_interval) {
            return false;
        }
        let epoch = self.epoch_for(c.seq);
        let Ok(quorum) = epoch.quorum() else { return false };
        let mut senders = BTreeSet::new();
        for p in &c.proofs {
            if p.body.seq != c.seq || p.body.state != c.state || !senders.insert(p.from) {
                return false;
            }
            match voter_item(epoch, p, self.cluster) {
                Some(it) => items.push(it),
                None => return false,
            }
        }
        senders.len() >= quorum.quorum()
    }

    /// Structure of a prepared certificate; pushes its signatures onto `items`.
    pub fn prepared_cert(&self, p: &PreparedCert, items: &mut Vec<VerifyItem>) -> bool {
        let pp = &p.pre_prepare.body;
        let primary = self.epoch.primary(pp.view);
        if p.pre_prepare.from != primary {
            return false;
        }
        let mut senders = BTreeSet::new();
        for v in &p.prepares {
            let b = &v.body;
            if b.phase != Phase::Prepare
                || (b.view, b.seq, b.digest) != (pp.view, pp.seq, pp.digest)
                || v.from == primary
                || !senders.insert(v.from)
            {
                return false;
            }
            match self.key_item(v) {
                Some(it) => items.push(it),
                None => return false,
            }
        }
        match self.key_item(&p.pre_prepare) {
            Some(it) => items.push(it),
            None => return false,
        }
        senders.len() >= self.quorum.prepares()
    }

    /// A VIEW-CHANGE is valid when it is signed by a member, its stable checkpoint is certified,
    /// and every prepared certificate is well formed, from an earlier view, above the checkpoint
    /// and inside the log window, at most one per seq.
    pub fn view_change(&self, vc: &Signed<ViewChange>, verifier: &mut dyn SignatureVerifier) -> bool {
        let mut items = Vec::new();
        match self.key_item(vc) {
            Some(it) => items.push(it),
            None => return false,
        }
        let b = &vc.body;
        if !self.checkpoint_cert(&b.stable, &mut items) {
            return false;
        }
        let mut last_seq = b.stable.seq;
        for p in &b.prepared {
            let pp = &p.pre_prepare.body;
            if pp.seq <= last_seq
                || pp.seq > b.stable.seq.saturating_add(self.params.log_window)
                || pp.view >= b.new_view
                || !self.prepared_cert(p, &mut items)
            {
                return false;
            }
            last_seq = pp.seq;
        }
        all_valid(verifier, &items)
    }

    /// A commit certificate: a quorum of matching COMMITs from distinct members, and the batch
    /// they name.
    pub fn commit_cert(&self, c: &CommitCert, verifier: &mut dyn SignatureVerifier) -> bool {
        let Some(first) = c.commits.first() else { return false };
        let f = &first.body;
        if f.phase != Phase::Commit || c.batch.digest() != f.digest {
            return false;
        }
        let mut senders: BTreeSet<ReplicaId> = BTreeSet::new();
        let mut items = Vec::new();
        for v in &c.commits {
            if v.body != *f || !senders.insert(v.from) {
                return false;
            }
            match self.key_item(v) {
                Some(it) => items.push(it),
                None => return false,
            }
        }
        senders.len() >= self.quorum.quorum() && all_valid(verifier, &items)
    }
}

/// The verification item of a message signed by a voter of `epoch` in that epoch.
pub(crate) fn voter_item<T: crate::wire::Body>(
    epoch: &Epoch,
    m: &Signed<T>,
    cluster: &Digest,
) -> Option<VerifyItem> {
    if m.body.epoch() != epoch.number {
        return None;
    }
    Some(m.verify_item(epoch.voter_key(m.from)?, cluster))
}

/// Among the epochs in `history` and `current`, the newest that starts below `seq`.
pub(crate) fn epoch_for<'a>(history: &'a [Epoch], current: &'a Epoch, seq: Seq) -> &'a Epoch {
    history
        .iter()
        .chain(std::iter::once(current))
        .filter(|e| e.start < seq || e.number == 0)
        .max_by_key(|e| e.number)
        .unwrap_or(current)
}

pub(crate) fn all_valid(verifier: &mut dyn SignatureVerifier, items: &[VerifyItem]) -> bool {
    verifier.verify(items).iter().all(|ok| *ok)
}

/// Whether `c` certifies its batch under `epoch`: a quorum of that epoch's voters sent matching
/// COMMITs, signed in that epoch, for the digest of the batch it carries. For clients, which hold
/// no replica: what they check before they believe a committed reconfiguration.
pub fn commits_certify(cluster: &Digest, epoch: &Epoch, c: &CommitCert) -> bool {
    let Some(first) = c.commits.first() else { return false };
    let f = &first.body;
    let Ok(quorum) = epoch.quorum() else { return false };
    if f.phase != Phase::Commit || f.epoch != epoch.number || c.batch.digest() != f.digest {
        return false;
    }
    let mut senders: BTreeSet<ReplicaId> = BTreeSet::new();
    for v in &c.commits {
        if v.body != *f || !senders.insert(v.from) {
            return false;
        }
        let Some(item) = voter_item(epoch, v, cluster) else { return false };
        if !phalanx_crypto::verify_one(&item.key, &item.message, &item.signature) {
            return false;
        }
    }
    senders.len() >= quorum.quorum()
}
