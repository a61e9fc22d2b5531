//! The replicated state consensus keeps for itself, and the application beside it.
//!
//! [`State`] holds what feeds back into ordering: the client table (exactly-once answers and
//! nonce reuse), counters, the replicated clock and [`Accountability`] (members, evidence,
//! quarantine). The application (`A`, see [`crate::application`]) holds the rest. Both are
//! applied to committed batches in order, identically everywhere, and encoded together in every
//! snapshot.

pub use crate::accountability::{Accountability, DetectionEntry, MemberRecord, Quarantine, StateEvent};

use crate::application::{Application, Context};
use crate::wire::{ClientRequest, Operation, Outcome, RejectReason, Seq, decode_value, to_bytes};
use phalanx_crypto::{Digest, PublicKey, digest};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
/// The last request executed for a client: answers retransmissions and catches nonce reuse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub nonce: u64,
    pub op: Digest,
    pub seq: Seq,
    pub outcome: Outcome,
}

/// Counters that are part of the replicated state (so every replica reports the same).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub applied: u64,
    /// Opaque benchmark payloads ordered (testing clusters only; never executed).
    pub opaque: u64,
    pub rejected: BTreeMap<RejectReason, u64>,
}

impl Counters {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// What executing one request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Execution {
    /// A new nonce: the operation ran (applied or rejected with a reason).
    Executed(Outcome),
    /// The same operation again: nothing changes; the stored outcome is the answer.
    Duplicate(Outcome),
    /// An older nonce than the client's last: dropped without an answer.
    Stale,
}

/// What the cluster starts from beside the application's own genesis.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// The key that signs operator actions (forced view change, lifting a quarantine).
    pub operator: Option<PublicKey>,
    /// How long a quarantine lasts on the replicated clock (0: the default hour).
    pub quarantine_ms: u64,
    /// A testing cluster: the operator may inject faults.
    pub testing: bool,
}

/// Everything replicated, in canonical (BTree) order so its encoding and digest are deterministic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "A: Application")]
pub struct State<A> {
    pub clients: BTreeMap<PublicKey, ClientRecord>,
    pub counters: Counters,
    /// Replicated clock: the highest committed batch timestamp.
    pub clock_ms: u64,
    /// Members, evidence, accusations, quarantine, the detection log.
    pub accountability: Accountability,
    /// The application: what requests are for.
    pub app: A,
    /// What the replica must act on after the current batch (not replicated data).
    #[serde(skip)]
    events: Vec<StateEvent>,
}

/// The one admission rule ([`State::is_client`]), for an application that must apply it while
/// it executes (a federated round's participants, say).
pub fn is_client<A: Application>(app: &A, accountability: &Accountability, key: &PublicKey) -> bool {
    app.admits(key) || accountability.may_submit(key)
}

#[derive(Debug, thiserror::Error)]
#[error("corrupt snapshot: {0}")]
pub struct SnapshotError(pub String);

impl<A: Application> State<A> {
    pub fn from_genesis(
        genesis: &Genesis,
        app: &A::Genesis,
        cluster: Digest,
        epoch: &crate::membership::Epoch,
        windows: (u64, u64),
    ) -> Self {
        State {
            clients: BTreeMap::new(),
            counters: Counters::default(),
            clock_ms: 0,
            accountability: Accountability::new(
                cluster,
                epoch.clone(),
                genesis.operator,
                genesis.quarantine_ms,
                genesis.testing,
                windows,
            ),
            app: A::from_genesis(app),
            events: Vec::new(),
        }
    }

    /// Called before executing the committed batch `seq` with its timestamp: advances the
    /// replicated clock (never backwards) and expires what is due, identically on every replica.
    pub fn begin_batch(&mut self, seq: Seq, timestamp_ms: u64) {
        if timestamp_ms <= self.clock_ms {
            return;
        }
        self.clock_ms = timestamp_ms;
        let now = self.clock_ms;
        self.accountability.expire(now, &mut self.events);
        self.app.advance_clock(seq, now);
    }

    /// Whether this key may have requests ordered: the application admits it, or it is a
    /// member or the operator. Replicas admit requests only from such clients, so nobody can
    /// grow the client table (and every snapshot) with throwaway keys. (Replicas also stop
    /// admitting a quarantined member's requests; what was already ordered still executes.)
    pub fn is_client(&self, key: &PublicKey) -> bool {
        is_client(&self.app, &self.accountability, key)
    }

    /// Whether unsigned opaque payloads are ordered: only in a testing cluster.
    pub fn accepts_opaque(&self) -> bool {
        self.accountability.testing
    }

    /// What the replica must act on since the last call (forced view change, quarantine).
    pub fn take_events(&mut self) -> Vec<StateEvent> {
        std::mem::take(&mut self.events)
    }

    /// Executes one ordered request at `seq`. Deterministic: depends only on the state and the
    /// request, never on the replica.
    pub fn execute(&mut self, seq: Seq, req: &ClientRequest) -> Execution {
        self.execute_op(seq, req, req.op_digest())
    }

    /// `execute` with the request's `op_digest` already computed.
    pub fn execute_op(&mut self, seq: Seq, req: &ClientRequest, op_digest: Digest) -> Execution {
        if req.is_opaque() {
            // Ordered and acknowledged, nothing else: no client record, no effect on the state.
            if !self.accepts_opaque() {
                return Execution::Executed(self.reject(RejectReason::Unauthorized));
            }
            self.counters.opaque += 1;
            return Execution::Executed(Outcome::Applied);
        }
        if !self.is_client(&req.body.client) {
            // Only a faulty primary proposes this; reject without remembering the key.
            return Execution::Executed(self.reject(RejectReason::BadSignature));
        }
        if let Some(rec) = self.clients.get(&req.body.client) {
            if req.body.nonce < rec.nonce {
                return Execution::Stale;
            }
            if req.body.nonce == rec.nonce {
                if rec.op == op_digest {
                    return Execution::Duplicate(rec.outcome);
                }
                // Client equivocation: a second, different operation under a used nonce.
                return Execution::Executed(self.reject(RejectReason::ReusedNonce));
            }
        }
        // Transactions are counted; reports and operator actions have their own counters.
        let system = req.body.op.is_system();
        let outcome = match self.apply(seq, req) {
            Ok(()) if system => Outcome::Applied,
            Ok(()) => {
                self.counters.applied += 1;
                Outcome::Applied
            }
            Err(reason) if system => Outcome::Rejected(reason),
            Err(reason) => self.reject(reason),
        };
        self.clients
            .insert(req.body.client, ClientRecord { nonce: req.body.nonce, op: op_digest, seq, outcome });
        Execution::Executed(outcome)
    }

    fn reject(&mut self, reason: RejectReason) -> Outcome {
        *self.counters.rejected.entry(reason).or_default() += 1;
        Outcome::Rejected(reason)
    }

    /// The accountability layer runs reports and its operator actions; the application the rest.
    fn apply(&mut self, seq: Seq, req: &ClientRequest) -> Result<(), RejectReason> {
        let cx = crate::accountability::Context { seq, clock_ms: self.clock_ms, signer: req.body.client };
        match &req.body.op {
            Operation::Report(bytes) => self.accountability.execute_report(&cx, bytes, &mut self.events),
            Operation::Operator(action) if !action.for_application() => {
                self.accountability.execute_operator(&cx, action, &mut self.events)
            }
            // Never reaches here: `execute_op` acknowledges opaque payloads without applying them.
            Operation::Opaque(_) => Ok(()),
            op => {
                let app_cx = Context {
                    seq,
                    clock_ms: self.clock_ms,
                    signer: req.body.client,
                    request: req,
                    accountability: &self.accountability,
                };
                let result = self.app.execute(&app_cx, op);
                for ev in self.app.take_evidence() {
                    self.accountability.commit_found(&cx, &ev, &mut self.events);
                }
                result
            }
        }
    }

    /// The client's last executed nonce, if any.
    pub fn last_nonce(&self, client: &PublicKey) -> Option<u64> {
        self.clients.get(client).map(|r| r.nonce)
    }

    /// Canonical encoding: what checkpoints certify and state transfer ships.
    pub fn snapshot(&self) -> Vec<u8> {
        to_bytes(self)
    }

    pub fn digest(&self) -> Digest {
        digest(&self.snapshot())
    }

    pub fn restore(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let mut s: State<A> = decode_value(bytes).map_err(|e| SnapshotError(e.to_string()))?;
        s.app.restored();
        Ok(s)
    }
}
