//! Who votes: the members of each epoch, its voters and its fault bound.
//!
//! An epoch is data the replicated state commits (a reconfiguration creates the next one) and
//! that evidence, certificates and clients check signatures against, so it sits below all of
//! them.

use crate::quorum::{Quorum, QuorumError};
use crate::wire::{CheckpointCert, EpochNo, ReplicaId, Seq, View};
use phalanx_crypto::{Digest, PublicKey};
use serde::{Deserialize, Serialize};

/// A member of an epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub key: PublicKey,
}

/// One configuration of the cluster: who votes, and how many may be faulty.
///
/// `members` is the directory of every agent ever admitted, in admission order: an agent's
/// index there is its [`ReplicaId`] for good, so ids in signed messages, evidence and
/// reputation never shift when the membership changes. `voters` are the members that order
/// requests in this epoch; quorums count only them. Every signed message names its epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epoch {
    pub number: EpochNo,
    pub members: Vec<Member>,
    /// Ids of this epoch's voters, ascending.
    pub voters: Vec<ReplicaId>,
    pub f: usize,
    /// The last seq ordered by the previous epoch: this one orders `start + 1` onwards. It is
    /// a checkpoint boundary, so the previous epoch's checkpoint there hands over the state.
    pub start: Seq,
}

impl Epoch {
    /// The first epoch: every member votes.
    pub fn genesis(members: Vec<Member>, f: usize) -> Self {
        let voters = (0..members.len() as ReplicaId).collect();
        Epoch { number: 0, members, voters, f, start: 0 }
    }

    pub fn quorum(&self) -> Result<Quorum, QuorumError> {
        Quorum::new(self.voters.len(), self.f)
    }

    /// The epoch after this one that a reconfiguration committed at `seq` creates, if allowed:
    /// known names, n >= 3f+1, and at most f members leaving and f joining (so at least a quorum
    /// of the old voters stays, and a quorum of the new ones has state already), and a worst-case
    /// NEW-VIEW that still fits a frame with the cluster's log window. It starts at the next
    /// checkpoint boundary. Pure, so clients derive the same epoch from the committed
    /// request as the replicas do.
    pub fn reconfigured(
        &self,
        seq: Seq,
        (checkpoint_interval, log_window): (u64, u64),
        remove: &[String],
        add: &[crate::wire::Joiner],
        f: Option<u32>,
    ) -> Option<Epoch> {
        if remove.is_empty() && add.is_empty() && f.is_none() {
            return None;
        }
        let f = f.map_or(self.f, |f| f as usize);
        if remove.len() > self.f || add.len() > f {
            return None;
        }
        let mut members = self.members.clone();
        let mut voters: std::collections::BTreeSet<ReplicaId> = self.voters.iter().copied().collect();
        for name in remove {
            let id = members.iter().position(|m| &m.name == name)?;
            if !voters.remove(&(id as ReplicaId)) {
                return None;
            }
        }
        for j in add {
            match members.iter().position(|m| m.name == j.name || m.key == j.key) {
                // A former member may come back with its own key.
                Some(id) if members[id].name == j.name && members[id].key == j.key => {
                    if !voters.insert(id as ReplicaId) {
                        return None;
                    }
                }
                Some(_) => return None,
                None => {
                    if members.len() >= crate::wire::limits::MAX_MEMBERS {
                        return None;
                    }
                    voters.insert(members.len() as ReplicaId);
                    members.push(Member { name: j.name.clone(), key: j.key });
                }
            }
        }
        let voters: Vec<ReplicaId> = voters.into_iter().collect();
        Quorum::new(voters.len(), f).ok()?;
        // Growing is refused where a view change could no longer fit a frame.
        if worst_new_view_bytes(voters.len(), f, log_window) > crate::wire::limits::MAX_MESSAGE_BYTES {
            return None;
        }
        let k = checkpoint_interval.max(1);
        let start = (seq / k).saturating_add(1).saturating_mul(k);
        Some(Epoch { number: self.number + 1, members, voters, f, start })
    }

    /// Every member's key, indexed by id (voters or not: old evidence names former members).
    pub fn keys(&self) -> Vec<PublicKey> {
        self.members.iter().map(|m| m.key).collect()
    }

    pub fn is_voter(&self, id: ReplicaId) -> bool {
        self.voters.binary_search(&id).is_ok()
    }

    /// The key of a voter of this epoch.
    pub fn voter_key(&self, id: ReplicaId) -> Option<PublicKey> {
        if self.is_voter(id) { self.members.get(id as usize).map(|m| m.key) } else { None }
    }

    pub fn id_of(&self, key: &PublicKey) -> Option<ReplicaId> {
        self.members.iter().position(|m| m.key == *key).map(|i| i as ReplicaId)
    }

    /// The primary of view `v`: the voters in turn.
    pub fn primary(&self, view: View) -> ReplicaId {
        if self.voters.is_empty() {
            return ReplicaId::MAX;
        }
        self.voters[(view % self.voters.len() as u64) as usize]
    }
}

/// The largest NEW-VIEW a replica could have to send: a quorum of VIEW-CHANGEs, each with a
/// stable checkpoint certificate and a prepared certificate (a pre-prepare and 2f PREPAREs) for
/// every slot of the log window, plus a re-proposal per slot; every number at its widest
/// encoding. No message a replica emits may exceed the frame limit, so configurations where this
/// would are refused.
pub fn worst_new_view_bytes(voters: usize, f: usize, log_window: u64) -> usize {
    use crate::wire::{Checkpoint, NewView, Phase, PrePrepare, Signed, ViewChange, Vote, encoded_len};
    let quorum = Quorum::new(voters, f).map_or(voters, |q| q.quorum());
    // Sizes only: a signature encodes to the same length whatever its bytes, so nothing is signed.
    fn signed<T>(body: T) -> Signed<T> {
        Signed { body, from: ReplicaId::MAX, sig: phalanx_crypto::Signature { r: [0; 32], s: [0; 32] } }
    }
    let max = u64::MAX;
    let vote = signed(Vote { phase: Phase::Prepare, epoch: max, view: max, seq: max, digest: Digest::ZERO });
    let pre_prepare = signed(PrePrepare { epoch: max, view: max, seq: max, digest: Digest::ZERO });
    let proof = signed(Checkpoint { epoch: max, seq: max, state: Digest::ZERO });
    let empty_vc = signed(ViewChange {
        epoch: max,
        new_view: max,
        stable: CheckpointCert { seq: max, state: Digest::ZERO, proofs: Vec::new() },
        prepared: Vec::new(),
    });
    let empty_nv =
        signed(NewView { epoch: max, view: max, view_changes: Vec::new(), pre_prepares: Vec::new() });
    // Length prefixes of the collections: at most 10 bytes each.
    let cert = encoded_len(&pre_prepare) + 10 + 2 * f * encoded_len(&vote);
    let window = log_window as usize;
    let view_change = encoded_len(&empty_vc) + 20 + quorum * encoded_len(&proof) + window * cert;
    encoded_len(&empty_nv) + 20 + quorum * view_change + window * encoded_len(&pre_prepare)
}
