//! The seam between ordering and executing.
//!
//! The replica orders batches of signed requests, certifies them and keeps what feeds back into
//! ordering itself: the client table (exactly-once answers), the replicated clock, membership and
//! accountability ([`crate::state::State`]). Everything else a request does is the
//! application's: it executes operations, and its canonical encoding is part of every snapshot,
//! so checkpoints certify it and state transfer ships it.
//!
//! An application must be deterministic: its result may depend only on its own state, the
//! operation and the [`Context`], never on the replica, a clock or a random source. The
//! simulator checks that every replica reaches the same state digest at every checkpoint.
//!
//! The same idea as Malachite's `Context` and TigerBeetle's `StateMachine` parameter: consensus
//! is written once, against this trait; `phalanx-app` supplies the ledger, the shared memory
//! and federated rounds.

use crate::accountability::Accountability;
use crate::evidence::Evidence;
use crate::wire::{ClientRequest, Operation, RejectReason, Seq};
use phalanx_crypto::PublicKey;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// Where and by whom an operation executes.
pub struct Context<'a> {
    /// The seq of the batch that carries the operation.
    pub seq: Seq,
    /// The replicated clock: the highest committed batch timestamp (identical everywhere).
    pub clock_ms: u64,
    /// The key that signed the request.
    pub signer: PublicKey,
    /// The signed request itself (an application may keep it as proof of what was signed).
    pub request: &'a ClientRequest,
    /// Members, quarantine and the operator key, as committed so far.
    pub accountability: &'a Accountability,
}

impl Context<'_> {
    /// Whether the signer is the operator named in genesis.
    pub fn by_operator(&self) -> bool {
        self.accountability.operator == Some(self.signer)
    }
}

/// A replicated state machine that consensus drives.
pub trait Application:
    Clone + Debug + PartialEq + Eq + Serialize + DeserializeOwned + Send + 'static
{
    /// What the application starts from (part of the cluster's configuration).
    type Genesis: Clone + Debug + Default + PartialEq + Eq + Serialize + DeserializeOwned + Send + 'static;

    fn from_genesis(genesis: &Self::Genesis) -> Self;

    /// Rebuilds what the encoding leaves out (indexes derived from the state) after a snapshot
    /// was decoded. A snapshot comes from other members and is untrusted beyond its certified
    /// digest: derive, never trust, what can be derived.
    fn restored(&mut self);

    /// Whether the application admits `key` as a client (owns an account, say). Members and
    /// the operator are admitted anyway. Replicas admit requests only from admitted clients, so
    /// nobody can grow the client table, and every snapshot, with throwaway keys.
    fn admits(&self, key: &PublicKey) -> bool;

    /// The replicated clock moved to `clock_ms` before batch `seq` executes: expire what is due.
    fn advance_clock(&mut self, seq: Seq, clock_ms: u64);

    /// Executes one operation. Called for every operation except the accountability layer's own
    /// (reports and operator actions on membership, quarantine and faults) and opaque payloads.
    /// An operation the application does not know is refused with
    /// [`RejectReason::Unauthorized`].
    fn execute(&mut self, cx: &Context<'_>, op: &Operation) -> Result<(), RejectReason>;

    /// Evidence of misbehaviour the last `execute` found (two conflicting ballots of one voter,
    /// say): self-contained proofs that consensus commits to the detection log in the same
    /// batch, quarantining a member that is proven faulty.
    fn take_evidence(&mut self) -> Vec<Evidence> {
        Vec::new()
    }
}
