//! Every message Phalanx sends, its one canonical encoding (postcard over types without hash
//! maps) and total decoding: any byte string yields a message or an error, never a panic.

use phalanx_crypto::{Digest, Keypair, PublicKey, Signature, VerifyItem, signing_bytes};
use serde::{Deserialize, Serialize};

pub type ReplicaId = u32;
pub type Seq = u64;
pub type View = u64;
pub type EpochNo = u64;

/// Hard limits on what we accept from anyone. Checked after decoding, before any work.
pub mod limits {
    /// One frame on the wire (a state-transfer snapshot is the largest message).
    pub const MAX_MESSAGE_BYTES: usize = 16 << 20;
    pub const MAX_BATCH_REQUESTS: usize = 4096;
    /// One batch, encoded: half a frame, so a batch travels inside any message that carries one
    /// (a pre-prepare, a commit certificate with up to `MAX_MEMBERS` commits, a fetched batch),
    /// and every valid request (a report is the largest, 1 MiB) fits one on its own.
    pub const MAX_BATCH_BYTES: usize = MAX_MESSAGE_BYTES / 2;
    pub const MAX_ACCOUNT_NAME: usize = 64;
    /// Certificates carry at most one signed message per member.
    pub const MAX_MEMBERS: usize = 1024;
    /// A view change carries at most one prepared certificate per slot of the log window.
    pub const MAX_PREPARED_CERTS: usize = 4096;
    pub const MAX_FETCH: u64 = 32;
    pub const MAX_MEMORY_NAMESPACE: usize = 64;
    pub const MAX_MEMORY_KEY: usize = 256;
    pub const MAX_MEMORY_VALUE: usize = 16 * 1024;
    /// All stored memory values together: the state must stay small enough to transfer.
    pub const MAX_MEMORY_TOTAL: u64 = 4 << 20;
    /// One encoded report (evidence may carry a whole batch).
    pub const MAX_REPORT_BYTES: usize = 1 << 20;
    /// One opaque benchmark payload.
    pub const MAX_OPAQUE_BYTES: usize = 64 * 1024;
    pub const MAX_MODEL_NAME: usize = 64;
    pub const MAX_ROUND_PARTICIPANTS: usize = 256;
    /// A rule name, a pre-aggregator name or one `key=value` parameter of a round.
    pub const MAX_RULE_TEXT: usize = 128;
    /// Pre-aggregators, and parameters, per round.
    pub const MAX_RULE_ITEMS: usize = 16;
    /// One chunk of a federated update (8,192 coordinates).
    pub const MAX_UPDATE_CHUNK_BYTES: usize = 64 * 1024;
    /// Federated rounds' share of the state (open rounds' updates, latest aggregates, results),
    /// reserved when a round opens. With the shared memory's 4 MiB it keeps snapshots well
    /// under the 8 MiB a state transfer carries.
    pub const MAX_FEDERATED_BYTES: u64 = 2 << 20;
    /// Models with rounds, ever (each keeps its latest aggregate and recent results).
    pub const MAX_MODELS: usize = 16;
}

pub mod federated;
pub use federated::{FederatedOp, RoundSpec};

/// Message kinds, part of the signed domain so a signature for one kind never verifies as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum Kind {
    Request = 1,
    PrePrepare = 2,
    Prepare = 3,
    Commit = 4,
    Checkpoint = 5,
    ViewChange = 6,
    NewView = 7,
    StateRequest = 8,
    StateResponse = 9,
    Reply = 10,
    Fetch = 11,
    BatchRequest = 12,
}

/// A body that can be signed: it names its kind and its epoch.
pub trait Body: Serialize {
    fn kind(&self) -> Kind;
    fn epoch(&self) -> EpochNo;
}

/// Canonical bytes of any wire value.
/// The length of `value`'s canonical encoding, computed without encoding it.
#[allow(
    clippy::expect_used,
    reason = "postcard only fails for sequences of unknown length, which no wire type has"
)]
pub fn encoded_len<T: Serialize>(value: &T) -> usize {
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
        .expect("postcard serialization of in-memory values cannot fail")
}

#[allow(
    clippy::expect_used,
    reason = "postcard only fails for sequences of unknown length, which no wire type has"
)]
pub fn to_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    // Most messages fit: fewer reallocations while encoding.
    postcard::to_extend(value, Vec::with_capacity(256))
        .expect("postcard serialization of in-memory values cannot fail")
}

/// The digest of a value's canonical encoding (`digest(&to_bytes(value))`), streamed into the
/// hasher instead of built first.
#[allow(
    clippy::expect_used,
    reason = "postcard only fails for sequences of unknown length, which no wire type has"
)]
pub fn digest_of<T: Serialize>(value: &T) -> Digest {
    let mut w = phalanx_crypto::DigestWriter::default();
    postcard::to_io(value, &mut w).expect("postcard serialization of in-memory values cannot fail");
    w.finish()
}

/// A body signed by a replica (`from` is its index in the epoch's member list).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed<T> {
    pub body: T,
    pub from: ReplicaId,
    pub sig: Signature,
}

impl<T: Body> Signed<T> {
    pub fn sign(body: T, from: ReplicaId, key: &Keypair, cluster: &Digest) -> Self {
        let sig = key.sign(&Self::bytes_of(&body, cluster));
        Signed { body, from, sig }
    }

    fn bytes_of(body: &T, cluster: &Digest) -> Vec<u8> {
        signing_bytes(cluster, body.epoch(), body.kind() as u8, &to_bytes(body))
    }

    /// What to hand to a verifier: the signature is checked over the re-encoded decoded body, so
    /// it vouches for the fields we act on, whatever bytes carried them.
    pub fn verify_item(&self, key: PublicKey, cluster: &Digest) -> VerifyItem {
        VerifyItem { key, message: Self::bytes_of(&self.body, cluster), signature: self.sig }
    }
}

// ---------------------------------------------------------------------------------------------
// Client side

/// A replicated operation. New state machines add variants here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    Transfer {
        from: String,
        to: String,
        amount: u64,
    },
    /// Store a value in the shared memory, optionally expiring `ttl_ms` after the batch that
    /// stores it (judged on committed batch timestamps).
    MemoryStore {
        namespace: String,
        key: String,
        value: String,
        ttl_ms: Option<u64>,
    },
    /// A member reports misbehaviour (signed with its own member key). The [`crate::evidence::Report`] is kept
    /// encoded: evidence holds batches of requests, and decoding a report only when it is
    /// executed keeps the nesting depth of any decoded message bounded (no recursion bombs).
    Report(#[serde(with = "serde_bytes")] Vec<u8>),
    /// An action of the operator (signed with the operator key named in genesis).
    Operator(OperatorAction),
    /// A payload that is ordered and acknowledged but neither signed by its client nor executed:
    /// how other consensus engines are benchmarked (`phalanx bench --mode opaque`). Only a
    /// testing cluster orders it; any other cluster rejects it as unauthorized.
    Opaque(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Federated learning rounds: open, upload updates, close (see [`federated`]).
    Federated(FederatedOp),
}

impl Operation {
    /// Operations of the accountability layer rather than of the application.
    pub fn is_system(&self) -> bool {
        matches!(self, Operation::Report(_) | Operation::Operator(_))
    }
}

/// Operator actions, ordered like every other operation so every replica applies them at the
/// same point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperatorAction {
    /// Replicas still in view `view` (or an earlier one) when this executes start a view
    /// change to the next view; a replica already past it has a new primary anyway.
    ForceViewChange { view: View },
    /// Ends a member's quarantine early.
    LiftQuarantine { member: String },
    /// Testing clusters only: make `agent` misbehave (`fault` is a behaviour name; `None`
    /// clears it). Committed, so every replica knows the ground truth a false-positive rate
    /// is measured against; production clusters reject it and log the attempt.
    InjectFault { agent: String, fault: Option<String>, probability_permille: u32 },
    /// Reconfiguration: `remove` stop voting and `add` start, with `f` faults tolerated (the
    /// current f if `None`). Committed now, it takes effect at the next checkpoint boundary as
    /// a new epoch; joiners state-transfer the boundary checkpoint before they vote.
    UpdateQuorum { remove: Vec<String>, add: Vec<Joiner>, f: Option<u32> },
    /// Declares a shared-memory namespace shared: any client may write any of its keys (in
    /// other namespaces a key belongs to the client that wrote it).
    ShareNamespace { namespace: String },
}

impl OperatorAction {
    /// Actions on the application's state (the shared memory's namespaces) rather than on
    /// membership, quarantine or faults.
    pub fn for_application(&self) -> bool {
        matches!(self, OperatorAction::ShareNamespace { .. })
    }
}

/// An agent admitted by a reconfiguration, with the addresses other agents reach it at
/// (opaque to the state machine, used by nodes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joiner {
    pub name: String,
    pub key: PublicKey,
    pub replica_addr: String,
    pub http_addr: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestBody {
    pub client: PublicKey,
    pub nonce: u64,
    pub op: Operation,
}

impl Body for RequestBody {
    fn kind(&self) -> Kind {
        Kind::Request
    }
    /// Clients are not members of an epoch; their requests stay valid across reconfigurations.
    fn epoch(&self) -> EpochNo {
        0
    }
}

/// An operation signed by its client's key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRequest {
    pub body: RequestBody,
    pub sig: Signature,
}

impl ClientRequest {
    pub fn sign(body: RequestBody, key: &Keypair, cluster: &Digest) -> Self {
        let sig = key.sign(&signing_bytes(cluster, 0, Kind::Request as u8, &to_bytes(&body)));
        ClientRequest { body, sig }
    }

    /// The signature to check; `None` for an opaque payload, which carries none.
    pub fn verify_item(&self, cluster: &Digest) -> Option<VerifyItem> {
        if self.is_opaque() {
            return None;
        }
        Some(VerifyItem {
            key: self.body.client,
            message: signing_bytes(cluster, 0, Kind::Request as u8, &to_bytes(&self.body)),
            signature: self.sig,
        })
    }

    /// An unsigned opaque payload (testing clusters only).
    pub fn opaque(client: PublicKey, nonce: u64, payload: Vec<u8>) -> Self {
        let body = RequestBody { client, nonce, op: Operation::Opaque(payload) };
        ClientRequest { body, sig: Signature { r: [0; 32], s: [0; 32] } }
    }

    pub fn is_opaque(&self) -> bool {
        matches!(self.body.op, Operation::Opaque(_))
    }

    /// Identity of the signed request: what the client asked for, bound to the signature's
    /// bytes (two encodings of a signature are two requests). Built on the operation's digest,
    /// so a replica that needs both hashes the operation once (`digests`).
    pub fn digest(&self) -> Digest {
        self.digests().1
    }

    /// (operation digest, request digest), with one pass over the operation.
    pub fn digests(&self) -> (Digest, Digest) {
        let op = self.op_digest();
        // One contiguous input: BLAKE3 pays per update call on inputs this small.
        const TAG: &[u8] = b"phalanx-request";
        let mut bytes = [0u8; TAG.len() + 32 + 64];
        bytes[..TAG.len()].copy_from_slice(TAG);
        bytes[TAG.len()..TAG.len() + 32].copy_from_slice(&op.0);
        bytes[TAG.len() + 32..].copy_from_slice(&self.sig.to_bytes());
        (op, phalanx_crypto::digest(&bytes))
    }

    /// Identity of what the client asked for, independent of how the signature is encoded.
    pub fn op_digest(&self) -> Digest {
        // Encoded first (on the stack when it fits), then hashed in one call: a transfer's
        // encoding streamed into the hasher would be a dozen tiny updates.
        let mut stack = [0u8; 1024];
        match postcard::to_slice(&self.body, &mut stack) {
            Ok(bytes) => phalanx_crypto::digest(bytes),
            Err(_) => phalanx_crypto::digest(&to_bytes(&self.body)),
        }
    }
}

/// An ordered batch of requests with the primary's proposed timestamp.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Batch {
    pub timestamp_ms: u64,
    /// Shared: a replica keeps a batch in its log, journal, certificates and execution, and
    /// copying hundreds of requests for each would cost more than ordering them.
    pub requests: std::sync::Arc<[ClientRequest]>,
}

impl Batch {
    /// The null batch that fills a gap after a view change.
    pub fn null() -> Self {
        Batch::default()
    }

    /// What a pre-prepare signs: the timestamp and the digests of the requests, in order.
    /// Replicas hash each request once, when it arrives, and never the whole batch again.
    /// Whether the batch's encoding exceeds [`limits::MAX_BATCH_BYTES`].
    pub fn oversized(&self) -> bool {
        encoded_len(self) > limits::MAX_BATCH_BYTES
    }

    pub fn digest(&self) -> Digest {
        let requests: Vec<Digest> = self.requests.iter().map(ClientRequest::digest).collect();
        Self::digest_over(self.timestamp_ms, &requests)
    }

    /// `digest` from the requests' digests (`ClientRequest::digest`), already computed.
    pub fn digest_over(timestamp_ms: u64, requests: &[Digest]) -> Digest {
        // One contiguous input, so BLAKE3 hashes its chunks in parallel lanes.
        let mut bytes = Vec::with_capacity(29 + 32 * requests.len());
        bytes.extend_from_slice(b"phalanx-batch");
        bytes.extend_from_slice(&timestamp_ms.to_le_bytes());
        bytes.extend_from_slice(&(requests.len() as u64).to_le_bytes());
        for d in requests {
            bytes.extend_from_slice(&d.0);
        }
        phalanx_crypto::digest(&bytes)
    }
}

/// Why the state machine refused an operation; identical on every honest replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
pub enum RejectReason {
    /// The source account cannot cover the amount.
    Overdraft,
    /// The request is not signed by the key that owns the source account.
    BadSignature,
    /// The client already used this nonce for a different operation (a double-spend attempt).
    ReusedNonce,
    /// The source or destination account does not exist.
    UnknownAccount,
    /// Zero amount, or a transfer to the same account.
    InvalidAmount,
    /// The shared memory is full.
    MemoryFull,
    /// The signer may not perform this operation (not a member, quarantined, not the operator).
    Unauthorized,
    /// Evidence that does not prove what it claims (forged, malformed, another epoch).
    InvalidEvidence,
    /// Evidence or an accusation already recorded: nothing changes.
    Duplicate,
    /// A membership change that would break n >= 3f+1, exceed the churn bound, name unknown
    /// or duplicate agents, or overlap a change still pending.
    InvalidReconfiguration,
    /// A round that cannot run: unknown rule or parameter, too few participants for the rule,
    /// a participant who is no client, a round number not above the model's last.
    InvalidRound,
    /// No such round is open (never opened, or already closed).
    RoundNotOpen,
    /// The signer is not a participant of the round.
    NotParticipant,
    /// An update chunk out of order, beyond the round's dimension, of partial values, or with a
    /// non-finite value.
    BadUpdate,
    /// Federated storage is full (open rounds' reserved updates and latest aggregates).
    FederatedFull,
    /// No federated model of that name.
    UnknownModel,
    /// The memory key belongs to another client (its namespace is not shared).
    NotOwner,
    /// The client's share of the shared memory is used up.
    MemoryQuota,
}

impl RejectReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            RejectReason::Overdraft => "overdraft",
            RejectReason::BadSignature => "bad-signature",
            RejectReason::ReusedNonce => "reused-nonce",
            RejectReason::UnknownAccount => "unknown-account",
            RejectReason::InvalidAmount => "invalid-amount",
            RejectReason::MemoryFull => "memory-full",
            RejectReason::Unauthorized => "unauthorized",
            RejectReason::InvalidEvidence => "invalid-evidence",
            RejectReason::Duplicate => "duplicate",
            RejectReason::InvalidReconfiguration => "invalid-reconfiguration",
            RejectReason::InvalidRound => "invalid-round",
            RejectReason::RoundNotOpen => "round-not-open",
            RejectReason::NotParticipant => "not-participant",
            RejectReason::BadUpdate => "bad-update",
            RejectReason::FederatedFull => "federated-full",
            RejectReason::UnknownModel => "unknown-model",
            RejectReason::NotOwner => "not-owner",
            RejectReason::MemoryQuota => "memory-quota",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Applied,
    Rejected(RejectReason),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyEntry {
    pub client: PublicKey,
    pub nonce: u64,
    pub op: Digest,
    pub outcome: Outcome,
}

/// One signed acknowledgement per executed batch (not per transaction): a client accepts its
/// entry once f+1 distinct replicas sent matching replies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub epoch: EpochNo,
    pub view: View,
    pub seq: Seq,
    pub entries: Vec<ReplyEntry>,
}

impl Body for Reply {
    fn kind(&self) -> Kind {
        Kind::Reply
    }
    fn epoch(&self) -> EpochNo {
        self.epoch
    }
}

// ---------------------------------------------------------------------------------------------
// Replica to replica

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

// ---------------------------------------------------------------------------------------------
// Decoding untrusted bytes

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("message of {0} bytes exceeds the {max} byte limit", max = limits::MAX_MESSAGE_BYTES)]
    TooLarge(usize),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    #[error("message exceeds a limit: {0}")]
    Limit(&'static str),
}

pub fn encode(msg: &Message) -> Vec<u8> {
    to_bytes(msg)
}

/// Decodes untrusted bytes into a message whose collections are within limits. Never panics.
pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
    decode_value::<Message>(bytes).and_then(|m| {
        check_limits(&m)?;
        Ok(m)
    })
}

/// Total decoding of any wire value: size-checked, no trailing bytes.
pub fn decode_value<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    if bytes.len() > limits::MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge(bytes.len()));
    }
    let (value, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

pub(crate) fn check_batch(b: &Batch) -> Result<(), WireError> {
    if b.requests.len() > limits::MAX_BATCH_REQUESTS {
        return Err(WireError::Limit("too many requests in a batch"));
    }
    b.requests.iter().try_for_each(check_request)
}

/// Size limits of one client request (what [`check_limits`] checks of a `Message::Request`,
/// without building the message).
pub fn check_request(r: &ClientRequest) -> Result<(), WireError> {
    match &r.body.op {
        Operation::Transfer { from, to, .. } => {
            if from.len() > limits::MAX_ACCOUNT_NAME || to.len() > limits::MAX_ACCOUNT_NAME {
                return Err(WireError::Limit("account name too long"));
            }
        }
        Operation::MemoryStore { namespace, key, value, .. } => {
            if namespace.len() > limits::MAX_MEMORY_NAMESPACE {
                return Err(WireError::Limit("memory namespace longer than 64 bytes"));
            }
            if key.is_empty() || key.len() > limits::MAX_MEMORY_KEY {
                return Err(WireError::Limit("memory key empty or longer than 256 bytes"));
            }
            if value.len() > limits::MAX_MEMORY_VALUE {
                return Err(WireError::Limit("memory value larger than 16 KiB"));
            }
        }
        Operation::Report(bytes) => {
            if bytes.len() > limits::MAX_REPORT_BYTES {
                return Err(WireError::Limit("report larger than 1 MiB"));
            }
        }
        Operation::Opaque(payload) => {
            if payload.len() > limits::MAX_OPAQUE_BYTES {
                return Err(WireError::Limit("opaque payload larger than 64 KiB"));
            }
        }
        Operation::Operator(OperatorAction::LiftQuarantine { member })
            if member.len() > limits::MAX_ACCOUNT_NAME =>
        {
            return Err(WireError::Limit("member name too long"));
        }
        Operation::Operator(OperatorAction::UpdateQuorum { remove, add, .. }) => {
            if remove.len() + add.len() > limits::MAX_MEMBERS {
                return Err(WireError::Limit("too many members in a reconfiguration"));
            }
            let long = |s: &String| s.len() > limits::MAX_ACCOUNT_NAME;
            if remove.iter().any(long)
                || add.iter().any(|j| long(&j.name) || long(&j.replica_addr) || long(&j.http_addr))
            {
                return Err(WireError::Limit("member name or address longer than 64 bytes"));
            }
        }
        Operation::Operator(OperatorAction::ShareNamespace { namespace })
            if namespace.len() > limits::MAX_MEMORY_NAMESPACE =>
        {
            return Err(WireError::Limit("memory namespace longer than 64 bytes"));
        }
        Operation::Operator(_) => {}
        Operation::Federated(op) => op.check_limits()?,
    }
    Ok(())
}

fn check_cert(c: &CheckpointCert) -> Result<(), WireError> {
    if c.proofs.len() > limits::MAX_MEMBERS {
        return Err(WireError::Limit("too many checkpoint proofs"));
    }
    Ok(())
}

pub(crate) fn check_view_change(vc: &ViewChange) -> Result<(), WireError> {
    check_cert(&vc.stable)?;
    if vc.prepared.len() > limits::MAX_PREPARED_CERTS {
        return Err(WireError::Limit("too many prepared certificates"));
    }
    for p in &vc.prepared {
        if p.prepares.len() > limits::MAX_MEMBERS {
            return Err(WireError::Limit("too many prepares in a certificate"));
        }
    }
    Ok(())
}

/// Collection limits the type system cannot express.
pub fn check_limits(m: &Message) -> Result<(), WireError> {
    match m {
        Message::Request(r) => check_request(r),
        Message::PrePrepare(_, b) => check_batch(b),
        Message::ViewChange(vc) => check_view_change(&vc.body),
        Message::NewView(nv) => {
            if nv.body.view_changes.len() > limits::MAX_MEMBERS
                || nv.body.pre_prepares.len() > limits::MAX_PREPARED_CERTS
            {
                return Err(WireError::Limit("new-view too large"));
            }
            nv.body.view_changes.iter().try_for_each(|vc| check_view_change(&vc.body))
        }
        Message::StateResponse(s) => check_cert(&s.body.cert),
        Message::Committed(c) => {
            if c.commits.len() > limits::MAX_MEMBERS {
                return Err(WireError::Limit("too many commits in a certificate"));
            }
            check_batch(&c.batch)
        }
        Message::BatchRequest(r) => {
            if r.body.wanted.len() > limits::MAX_PREPARED_CERTS {
                return Err(WireError::Limit("too many batches asked for"));
            }
            Ok(())
        }
        Message::Batch(_, b) => check_batch(b),
        Message::Vote(_) | Message::Checkpoint(_) | Message::StateRequest(_) | Message::Fetch(_) => Ok(()),
    }
}
