//! What replicas send each other: the PBFT messages, the certificates inside them, and the
//! envelope every message travels in.

use super::*;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrePrepare {
    pub epoch: EpochNo,
    pub view: View,
    pub seq: Seq,
    pub digest: Digest,
}

impl Body for PrePrepare {
    fn kind(&self) -> Kind {
        Kind::PrePrepare
    }
    fn epoch(&self) -> EpochNo {
        self.epoch
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Phase {
    Prepare,
    Commit,
}

/// A PREPARE or COMMIT vote for (epoch, view, seq, digest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub phase: Phase,
    pub epoch: EpochNo,
    pub view: View,
    pub seq: Seq,
    pub digest: Digest,
}

impl Body for Vote {
    fn kind(&self) -> Kind {
        match self.phase {
            Phase::Prepare => Kind::Prepare,
            Phase::Commit => Kind::Commit,
        }
    }
    fn epoch(&self) -> EpochNo {
        self.epoch
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub epoch: EpochNo,
    pub seq: Seq,
    pub state: Digest,
}

impl Body for Checkpoint {
    fn kind(&self) -> Kind {
        Kind::Checkpoint
    }
    fn epoch(&self) -> EpochNo {
        self.epoch
    }
}

/// A quorum of matching signed CHECKPOINTs (empty for the genesis checkpoint at seq 0).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointCert {
    pub seq: Seq,
    pub state: Digest,
    pub proofs: Vec<Signed<Checkpoint>>,
}

/// Proof that a batch prepared at a replica: the primary's pre-prepare and 2f matching prepares
/// from distinct backups. The batch itself is named by the pre-prepare's digest and does not
/// travel with the proof, so a VIEW-CHANGE stays small however full the batches are; a replica
/// that lacks a re-proposed batch asks for it (`BatchRequest`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedCert {
    pub pre_prepare: Signed<PrePrepare>,
    pub prepares: Vec<Signed<Vote>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewChange {
    pub epoch: EpochNo,
    pub new_view: View,
    pub stable: CheckpointCert,
    pub prepared: Vec<PreparedCert>,
}

impl Body for ViewChange {
    fn kind(&self) -> Kind {
        Kind::ViewChange
    }
    fn epoch(&self) -> EpochNo {
        self.epoch
    }
}

/// The new primary's proof of its view: a quorum of VIEW-CHANGEs and, for every slot between
/// their highest stable checkpoint and highest prepared seq, its signed re-proposal. Backups
/// recompute the re-proposals from the view changes and reject a NEW-VIEW that differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewView {
    pub epoch: EpochNo,
    pub view: View,
    pub view_changes: Vec<Signed<ViewChange>>,
    pub pre_prepares: Vec<Signed<PrePrepare>>,
}

impl Body for NewView {
    fn kind(&self) -> Kind {
        Kind::NewView
    }
    fn epoch(&self) -> EpochNo {
        self.epoch
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRequest {
    pub epoch: EpochNo,
    pub seq: Seq,
}

impl Body for StateRequest {
    fn kind(&self) -> Kind {
        Kind::StateRequest
    }
    fn epoch(&self) -> EpochNo {
        self.epoch
    }
}

/// A snapshot with the certificate that proves its digest; self-verifying.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateResponse {
    pub epoch: EpochNo,
    pub cert: CheckpointCert,
    #[serde(with = "serde_bytes")]
    pub snapshot: Vec<u8>,
}

impl Body for StateResponse {
    fn kind(&self) -> Kind {
        Kind::StateResponse
    }
    fn epoch(&self) -> EpochNo {
        self.epoch
    }
}

/// "Send me commit certificates for the slots after `after`": how a replica that lost messages
/// catches up without waiting for the next checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetch {
    pub epoch: EpochNo,
    pub after: Seq,
    /// The requester's view: a responder in a later view also sends the NEW-VIEW that started
    /// it, so a restarted or isolated replica can rejoin without waiting for another view change.
    pub view: View,
}

impl Body for Fetch {
    fn kind(&self) -> Kind {
        Kind::Fetch
    }
    fn epoch(&self) -> EpochNo {
        self.epoch
    }
}

/// "Send me the batches with these digests": a replica that entered a view whose re-proposals
/// name batches it never received asks the members that prepared them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRequest {
    pub epoch: EpochNo,
    pub wanted: Vec<(Seq, Digest)>,
}

impl Body for BatchRequest {
    fn kind(&self) -> Kind {
        Kind::BatchRequest
    }
    fn epoch(&self) -> EpochNo {
        self.epoch
    }
}

/// A quorum of matching COMMITs and the batch they commit: proof that the slot is decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitCert {
    pub commits: Vec<Signed<Vote>>,
    pub batch: Batch,
}

/// What a replica keeps of a reconfiguration it executed, for clients that must learn the next
/// epoch without trusting any one node: the operator-signed request, the commit certificate of
/// the batch that ordered it (a quorum of the old epoch's voters), and this replica's signed
/// reply saying it was applied. A client takes the epoch on one certificate and f+1 such
/// replies from distinct voters of the old epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochProof {
    pub request: ClientRequest,
    pub cert: CommitCert,
    pub reply: Signed<Reply>,
}

/// Everything that travels between replicas, and from clients to replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Request(ClientRequest),
    PrePrepare(Signed<PrePrepare>, Batch),
    Vote(Signed<Vote>),
    Checkpoint(Signed<Checkpoint>),
    ViewChange(Signed<ViewChange>),
    NewView(Signed<NewView>),
    StateRequest(Signed<StateRequest>),
    StateResponse(Signed<StateResponse>),
    Fetch(Signed<Fetch>),
    Committed(CommitCert),
    BatchRequest(Signed<BatchRequest>),
    /// A batch for `seq`, answering a `BatchRequest`. It needs no signature: the requester takes
    /// it only if it hashes to the digest its slot is waiting for.
    Batch(Seq, Batch),
}

impl Message {
    /// The member that signed this message's envelope (None: client requests and
    /// self-proving commit certificates, which anyone may relay).
    pub fn signer(&self) -> Option<ReplicaId> {
        match self {
            Message::PrePrepare(pp, _) => Some(pp.from),
            Message::Vote(v) => Some(v.from),
            Message::Checkpoint(c) => Some(c.from),
            Message::ViewChange(v) => Some(v.from),
            Message::NewView(v) => Some(v.from),
            Message::StateRequest(r) => Some(r.from),
            Message::StateResponse(r) => Some(r.from),
            Message::Fetch(f) => Some(f.from),
            Message::BatchRequest(r) => Some(r.from),
            Message::Request(_) | Message::Committed(_) | Message::Batch(..) => None,
        }
    }

    /// Every `name`, in a fixed order (for per-kind counters).
    pub const NAMES: [&'static str; 13] = [
        "request",
        "pre-prepare",
        "prepare",
        "commit",
        "checkpoint",
        "view-change",
        "new-view",
        "state-request",
        "state-response",
        "fetch",
        "commit-certificate",
        "batch-request",
        "batch",
    ];

    /// The position of this message's kind in `NAMES`.
    pub fn name_index(&self) -> usize {
        match self {
            Message::Request(_) => 0,
            Message::PrePrepare(..) => 1,
            Message::Vote(v) if v.body.phase == Phase::Prepare => 2,
            Message::Vote(_) => 3,
            Message::Checkpoint(_) => 4,
            Message::ViewChange(_) => 5,
            Message::NewView(_) => 6,
            Message::StateRequest(_) => 7,
            Message::StateResponse(_) => 8,
            Message::Fetch(_) => 9,
            Message::Committed(_) => 10,
            Message::BatchRequest(_) => 11,
            Message::Batch(..) => 12,
        }
    }

    pub fn name(&self) -> &'static str {
        Self::NAMES[self.name_index()]
    }
}
