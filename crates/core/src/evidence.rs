//! Provable misbehaviour: self-contained objects anyone holding the epoch's keys can verify.

use crate::new_view::plan_new_view;
use crate::wire::{
    Batch, Checkpoint, ClientRequest, EpochNo, Message, NewView, Operation, PrePrepare, ReplicaId, Signed,
    Vote, WireError, check_batch, decode_value, to_bytes,
};
use phalanx_crypto::{Digest, PublicKey, digest, verify_one};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Evidence {
    /// Two signed PRE-PREPAREs for one (epoch, view, seq) with different digests.
    ProposalEquivocation(Signed<PrePrepare>, Signed<PrePrepare>),
    /// Two signed PREPAREs (or two COMMITs) from one member for one slot, different digests.
    VoteEquivocation(Signed<Vote>, Signed<Vote>),
    /// Two signed CHECKPOINTs for one (epoch, seq) with different state digests.
    CheckpointEquivocation(Signed<Checkpoint>, Signed<Checkpoint>),
    /// A signed pre-prepare whose batch no replica may order: over the batch size limit, or
    /// holding a request with an invalid client signature, or an unsigned opaque payload in a
    /// cluster that orders none.
    InvalidProposal(Signed<PrePrepare>, Batch),
    /// A signed NEW-VIEW whose re-proposals do not follow from the VIEW-CHANGEs it carries.
    /// Its signature covers everything inside, so its signer answers for all of it.
    InvalidNewView(Signed<NewView>),
    /// Two requests signed by one client with the same nonce and different content.
    DoubleSpend(ClientRequest, ClientRequest),
    /// Two ballots signed by one voter for one decision, choosing differently.
    DoubleVote(ClientRequest, ClientRequest),
}

/// Who the evidence accuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Culprit {
    Member(ReplicaId),
    Client(PublicKey),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EvidenceError {
    #[error("the two messages are not from the same signer")]
    DifferentSigners,
    #[error("the two messages are for different slots")]
    DifferentSlots,
    #[error("the two messages do not conflict")]
    NoConflict,
    #[error("signer {0} is not a member of the epoch")]
    UnknownSigner(ReplicaId),
    #[error("a signature in the evidence is invalid")]
    BadSignature,
    #[error("the proposal's batch does not match its digest")]
    BatchMismatch,
    #[error("every request in the proposal is validly signed")]
    ProposalValid,
    #[error("the new view follows from its view changes")]
    NewViewValid,
    #[error("epoch {0} is not in the cluster's history")]
    UnknownEpoch(EpochNo),
    #[error("the evidence exceeds a size limit")]
    TooLarge,
}

impl Evidence {
    pub fn culprit(&self) -> Culprit {
        match self {
            Evidence::ProposalEquivocation(a, _) => Culprit::Member(a.from),
            Evidence::VoteEquivocation(a, _) => Culprit::Member(a.from),
            Evidence::CheckpointEquivocation(a, _) => Culprit::Member(a.from),
            Evidence::InvalidProposal(p, _) => Culprit::Member(p.from),
            Evidence::InvalidNewView(nv) => Culprit::Member(nv.from),
            Evidence::DoubleSpend(a, _) => Culprit::Client(a.body.client),
            Evidence::DoubleVote(a, _) => Culprit::Client(a.body.client),
        }
    }

    pub fn fault_type(&self) -> &'static str {
        match self {
            Evidence::ProposalEquivocation(..) => "proposal-equivocation",
            Evidence::VoteEquivocation(..) => "vote-equivocation",
            Evidence::CheckpointEquivocation(..) => "checkpoint-equivocation",
            Evidence::InvalidProposal(..) => "invalid-proposal",
            Evidence::InvalidNewView(..) => "invalid-new-view",
            Evidence::DoubleSpend(..) => "double-spend",
            Evidence::DoubleVote(..) => "double-vote",
        }
    }

    /// The epoch whose member keys verify this evidence (`None`: signed by a client key).
    pub fn epoch(&self) -> Option<EpochNo> {
        match self {
            Evidence::ProposalEquivocation(a, _) => Some(a.body.epoch),
            Evidence::VoteEquivocation(a, _) => Some(a.body.epoch),
            Evidence::CheckpointEquivocation(a, _) => Some(a.body.epoch),
            Evidence::InvalidProposal(p, _) => Some(p.body.epoch),
            Evidence::InvalidNewView(nv) => Some(nv.body.epoch),
            Evidence::DoubleSpend(..) | Evidence::DoubleVote(..) => None,
        }
    }

    /// Collection limits of the carried messages.
    pub fn check_limits(&self) -> Result<(), WireError> {
        match self {
            Evidence::InvalidProposal(_, batch) => check_batch(batch),
            Evidence::InvalidNewView(nv) => crate::wire::check_limits(&Message::NewView(nv.clone())),
            Evidence::DoubleSpend(a, b) | Evidence::DoubleVote(a, b) => {
                crate::wire::check_limits(&crate::wire::Message::Request(a.clone()))?;
                crate::wire::check_limits(&crate::wire::Message::Request(b.clone()))
            }
            _ => Ok(()),
        }
    }

    /// Canonical identity of this exact evidence.
    pub fn id(&self) -> Digest {
        digest(&to_bytes(self))
    }

    /// Identity of the fault it proves: (kind, culprit, slot). Two different pairs of conflicting
    /// messages for one culprit and slot prove the same fault, so a replica reports it once and a
    /// faulty member cannot flood it with fresh variants.
    pub fn slot_key(&self) -> Digest {
        let slot: (u64, u64, u64) = match self {
            Evidence::ProposalEquivocation(a, _) => (a.body.epoch, a.body.view, a.body.seq),
            Evidence::VoteEquivocation(a, _) => (a.body.epoch, a.body.view, a.body.seq),
            Evidence::CheckpointEquivocation(a, _) => (a.body.epoch, 0, a.body.seq),
            Evidence::InvalidProposal(p, _) => (p.body.epoch, p.body.view, p.body.seq),
            Evidence::InvalidNewView(nv) => (nv.body.epoch, nv.body.view, 0),
            Evidence::DoubleSpend(a, _) => (0, 0, a.body.nonce),
            // One fault per decision: the first 8 bytes of its id's digest name the slot.
            Evidence::DoubleVote(a, _) => {
                let id = ballot_of(a).map_or("", |(id, _)| id);
                let d = digest(id.as_bytes());
                (0, 0, u64::from_le_bytes(d.as_bytes()[..8].try_into().unwrap_or([0; 8])))
            }
        };
        let culprit = match self.culprit() {
            Culprit::Member(m) => to_bytes(&(0u8, m)),
            Culprit::Client(k) => to_bytes(&(1u8, k)),
        };
        let phase = match self {
            Evidence::VoteEquivocation(a, _) => a.body.phase as u8,
            _ => 0,
        };
        digest(&to_bytes(&(self.fault_type(), culprit, phase, slot)))
    }

    /// Checks the evidence against the members' keys of its epoch (`members[i]` is replica i);
    /// `accepts_opaque` says whether the cluster orders unsigned opaque payloads (testing only).
    pub fn verify(
        &self,
        cluster: &Digest,
        members: &[PublicKey],
        accepts_opaque: bool,
    ) -> Result<(), EvidenceError> {
        let key = |id: ReplicaId| members.get(id as usize).copied().ok_or(EvidenceError::UnknownSigner(id));
        let check = |item: phalanx_crypto::VerifyItem| {
            if verify_one(&item.key, &item.message, &item.signature) {
                Ok(())
            } else {
                Err(EvidenceError::BadSignature)
            }
        };
        match self {
            Evidence::ProposalEquivocation(a, b) => {
                pair_shape(a.from, b.from, a.body.digest != b.body.digest)?;
                let (x, y) = (&a.body, &b.body);
                if (x.epoch, x.view, x.seq) != (y.epoch, y.view, y.seq) {
                    return Err(EvidenceError::DifferentSlots);
                }
                check(a.verify_item(key(a.from)?, cluster))?;
                check(b.verify_item(key(b.from)?, cluster))
            }
            Evidence::VoteEquivocation(a, b) => {
                pair_shape(a.from, b.from, a.body.digest != b.body.digest)?;
                let (x, y) = (&a.body, &b.body);
                if (x.phase, x.epoch, x.view, x.seq) != (y.phase, y.epoch, y.view, y.seq) {
                    return Err(EvidenceError::DifferentSlots);
                }
                check(a.verify_item(key(a.from)?, cluster))?;
                check(b.verify_item(key(b.from)?, cluster))
            }
            Evidence::CheckpointEquivocation(a, b) => {
                pair_shape(a.from, b.from, a.body.state != b.body.state)?;
                if (a.body.epoch, a.body.seq) != (b.body.epoch, b.body.seq) {
                    return Err(EvidenceError::DifferentSlots);
                }
                check(a.verify_item(key(a.from)?, cluster))?;
                check(b.verify_item(key(b.from)?, cluster))
            }
            Evidence::InvalidProposal(p, batch) => {
                if batch.digest() != p.body.digest {
                    return Err(EvidenceError::BatchMismatch);
                }
                check(p.verify_item(key(p.from)?, cluster))?;
                if !batch.oversized() && batch.requests.iter().all(|r| admissible(r, cluster, accepts_opaque))
                {
                    Err(EvidenceError::ProposalValid)
                } else {
                    Ok(())
                }
            }
            Evidence::InvalidNewView(nv) => {
                check(nv.verify_item(key(nv.from)?, cluster))?;
                if new_view_follows(nv, cluster, members) { Err(EvidenceError::NewViewValid) } else { Ok(()) }
            }
            Evidence::DoubleSpend(a, b) => {
                if a.body.client != b.body.client {
                    return Err(EvidenceError::DifferentSigners);
                }
                if a.body.nonce != b.body.nonce {
                    return Err(EvidenceError::DifferentSlots);
                }
                if a.op_digest() == b.op_digest() {
                    return Err(EvidenceError::NoConflict);
                }
                // Only signed operations can prove a double spend.
                check(a.verify_item(cluster).ok_or(EvidenceError::BadSignature)?)?;
                check(b.verify_item(cluster).ok_or(EvidenceError::BadSignature)?)
            }
            Evidence::DoubleVote(a, b) => {
                if a.body.client != b.body.client {
                    return Err(EvidenceError::DifferentSigners);
                }
                let (Some((x, p)), Some((y, q))) = (ballot_of(a), ballot_of(b)) else {
                    return Err(EvidenceError::NoConflict);
                };
                if x != y {
                    return Err(EvidenceError::DifferentSlots);
                }
                if p.choice() == q.choice() {
                    return Err(EvidenceError::NoConflict);
                }
                check(a.verify_item(cluster).ok_or(EvidenceError::BadSignature)?)?;
                check(b.verify_item(cluster).ok_or(EvidenceError::BadSignature)?)
            }
        }
    }
}

/// Whether a request may be ordered at all: signed by its client, or an unsigned opaque payload in
/// a cluster that orders them. A primary proposing anything else proposes an invalid batch.
pub fn admissible(r: &crate::wire::ClientRequest, cluster: &Digest, accepts_opaque: bool) -> bool {
    match r.verify_item(cluster) {
        Some(it) => verify_one(&it.key, &it.message, &it.signature),
        None => accepts_opaque,
    }
}

fn pair_shape(a: ReplicaId, b: ReplicaId, conflict: bool) -> Result<(), EvidenceError> {
    if a != b {
        return Err(EvidenceError::DifferentSigners);
    }
    if !conflict {
        return Err(EvidenceError::NoConflict);
    }
    Ok(())
}

/// Whether a NEW-VIEW is one an honest primary could have sent: every VIEW-CHANGE inside asks for
/// its view, comes from a distinct member and is validly signed, and its pre-prepares are exactly
/// the re-proposals those VIEW-CHANGEs determine, signed by the NEW-VIEW's signer. Only what an
/// honest primary always ensures is checked (not, say, the quorum size, which depends on the
/// epoch's voters), so an honest primary's NEW-VIEW always passes: no false accusation.
fn new_view_follows(nv: &Signed<NewView>, cluster: &Digest, members: &[PublicKey]) -> bool {
    let body = &nv.body;
    let valid = |key: Option<&PublicKey>, item: &dyn Fn(PublicKey) -> phalanx_crypto::VerifyItem| {
        key.is_some_and(|k| {
            let it = item(*k);
            verify_one(&it.key, &it.message, &it.signature)
        })
    };
    let mut senders = std::collections::BTreeSet::new();
    for vc in &body.view_changes {
        if vc.body.new_view != body.view
            || !senders.insert(vc.from)
            || !valid(members.get(vc.from as usize), &|k| vc.verify_item(k, cluster))
        {
            return false;
        }
    }
    let Some(plan) = plan_new_view(&body.view_changes) else { return false };
    body.pre_prepares.len() == plan.proposals.len()
        && body.pre_prepares.iter().zip(&plan.proposals).all(|(pp, p)| {
            let b = &pp.body;
            pp.from == nv.from
                && (b.epoch, b.view, b.seq, b.digest) == (body.epoch, body.view, p.seq, p.digest)
                && valid(members.get(pp.from as usize), &|k| pp.verify_item(k, cluster))
        })
}

// ---------------------------------------------------------------------------------------------
// Reports: how a member hands evidence, or an accusation nobody else can check, to the state.

impl Report {
    /// The operation that carries this report to the replicated state (kept encoded: see
    /// [`Operation::Report`]).
    pub fn operation(&self) -> Operation {
        Operation::Report(to_bytes(self))
    }

    /// Decodes a report carried by an operation; nested reports inside stay encoded.
    pub fn decode(bytes: &[u8]) -> Result<Report, WireError> {
        let r: Report = decode_value(bytes)?;
        if let Report::Evidence(ev) = &r {
            ev.check_limits()?;
        }
        Ok(r)
    }
}

/// What a member can report about another.
#[allow(clippy::large_enum_variant)] // short-lived: decoded once when the report executes
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Report {
    /// Provable misbehaviour: once committed and verified, the culprit is quarantined.
    Evidence(Evidence),
    /// An observation nobody else can check. It lowers the accused's reputation; only
    /// `BadSignature` accusations from f+1 distinct members quarantine.
    Accusation { epoch: EpochNo, accused: ReplicaId, fault: Accusation },
}

/// Unprovable faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Accusation {
    /// A message on the accused's own authenticated link failed signature verification. Honest
    /// members never sign badly, so f+1 distinct accusers (one of them honest) quarantine.
    BadSignature,
    /// As primary, the accused did not order waiting requests within the view-change timeout.
    /// Slow or partitioned honest primaries look the same: reputation only, never quarantine.
    Censorship,
    /// As the new primary, the accused did not complete a view change in time. Reputation only.
    Silence,
}

impl Accusation {
    pub fn as_str(&self) -> &'static str {
        match self {
            Accusation::BadSignature => "signature-corruption",
            Accusation::Censorship => "censorship",
            Accusation::Silence => "silence",
        }
    }
}

/// The decision id and ballot of a vote request.
fn ballot_of(r: &ClientRequest) -> Option<(&str, &crate::wire::Ballot)> {
    match &r.body.op {
        crate::wire::Operation::Decision(crate::wire::DecisionOp::Vote(v)) => Some((&v.id, &v.ballot)),
        _ => None,
    }
}
