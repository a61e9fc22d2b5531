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
    pub const MAX_DECISION_ID: usize = 64;
    pub const MAX_DECISION_QUESTION: usize = 1024;
    pub const MAX_DECISION_OPTIONS: usize = 16;
    pub const MAX_DECISION_OPTION: usize = 128;
    pub const MAX_DECISION_VOTERS: usize = 128;
    pub const MAX_DECISION_REASON: usize = 256;
    /// Where a voter stored its full result (a shared-memory `namespace/key`, say).
    pub const MAX_DECISION_LOCATION: usize = 128;
    /// Decisions' share of the state (open ones reserve what they could grow to). With the
    /// shared memory's 4 MiB and federated rounds' 2 MiB, snapshots stay under the 8 MiB a
    /// state transfer carries.
    pub const MAX_DECISION_BYTES: u64 = 1 << 20;
}

pub mod decision;
pub mod federated;
pub use decision::{Ballot, CastBallot, DecisionOp, DecisionRule, DecisionSpec};
pub use federated::{FederatedOp, RoundSpec};

mod client;
mod decoding;
mod protocol;
pub use client::*;
pub use decoding::*;
pub use protocol::*;

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
