//! What clients send and receive: operations, signed requests, batches of them, outcomes and
//! replies.

use super::*;

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
    /// Decisions agents vote on: open one, cast a ballot (see [`super::decision`]).
    Decision(super::DecisionOp),
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
    /// A decision that cannot run: no voters, duplicate voters or options, a voter who is no
    /// client, options that do not fit the rule, a deadline of zero or over 30 days.
    InvalidDecision,
    /// No decision with that id is held (never opened, or forgotten long after it closed).
    UnknownDecision,
    /// The signer is not an eligible voter of the decision.
    NotVoter,
    /// A ballot for an option the decision does not have, or a result where options are asked.
    InvalidBallot,
    /// The decision closed before the ballot arrived (the ballot is kept as late).
    DecisionClosed,
    /// The voter cast a different ballot before: both ballots are void, and evidence.
    DoubleVote,
    /// Decisions' share of the state is used up by open decisions.
    DecisionsFull,
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
            RejectReason::InvalidDecision => "invalid-decision",
            RejectReason::UnknownDecision => "unknown-decision",
            RejectReason::NotVoter => "not-voter",
            RejectReason::InvalidBallot => "invalid-ballot",
            RejectReason::DecisionClosed => "decision-closed",
            RejectReason::DoubleVote => "double-vote",
            RejectReason::DecisionsFull => "decisions-full",
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
