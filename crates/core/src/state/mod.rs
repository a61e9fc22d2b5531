//! The replicated application: applied to committed batches in order, identically everywhere.

pub mod accountability;
pub mod federated;
mod ledger;
pub mod memory;

pub use accountability::{Accountability, DetectionEntry, MemberRecord, Quarantine, StateEvent};
pub use federated::Federated;
pub use ledger::{Account, Genesis, GenesisAccount};

use crate::wire::{ClientRequest, FederatedOp, Outcome, RejectReason, Seq, decode_value, to_bytes};
use phalanx_crypto::{Digest, PublicKey, digest};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

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

/// One value in the shared memory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEntry {
    pub value: String,
    pub writer: PublicKey,
    pub stored_seq: Seq,
    pub expires_at_ms: Option<u64>,
}

/// Everything replicated, in canonical (BTree) order so its encoding and digest are deterministic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppState {
    pub accounts: BTreeMap<String, Account>,
    pub clients: BTreeMap<PublicKey, ClientRecord>,
    pub counters: Counters,
    /// The shared memory: (namespace, key) → value.
    pub memory: BTreeMap<(String, String), MemoryEntry>,
    pub memory_bytes: u64,
    /// Replicated clock: the highest committed batch timestamp.
    pub clock_ms: u64,
    /// Members, evidence, accusations, quarantine, the detection log.
    pub accountability: Accountability,
    /// Federated learning rounds: open rounds' uploads, results, how each agent's updates fared.
    pub federated: Federated,
    /// Memory namespaces the operator declared shared: any client may write their keys.
    pub shared_namespaces: BTreeSet<String>,
    /// What the replica must act on after the current batch (not replicated data).
    #[serde(skip)]
    events: Vec<StateEvent>,
    /// Keys that own an account: the only clients whose requests are admitted and remembered
    /// (derived from `accounts`, not part of the encoding).
    #[serde(skip)]
    owners: BTreeSet<PublicKey>,
    /// Memory bytes charged to each writer (derived from `memory`, not part of the encoding).
    #[serde(skip)]
    memory_usage: BTreeMap<PublicKey, u64>,
}

#[derive(Debug, thiserror::Error)]
#[error("corrupt snapshot: {0}")]
pub struct SnapshotError(pub String);

impl AppState {
    pub fn from_genesis(
        genesis: &Genesis,
        cluster: Digest,
        epoch: &crate::consensus::Epoch,
        windows: (u64, u64),
    ) -> Self {
        let accounts = genesis
            .accounts
            .iter()
            .map(|a| (a.name.clone(), Account { owner: a.owner, balance: a.balance }))
            .collect();
        let mut s = AppState {
            accounts,
            clients: BTreeMap::new(),
            counters: Counters::default(),
            memory: BTreeMap::new(),
            memory_bytes: 0,
            clock_ms: 0,
            accountability: Accountability::new(
                cluster,
                epoch.clone(),
                genesis.operator,
                genesis.quarantine_ms,
                genesis.testing,
                windows,
            ),
            federated: Federated::default(),
            shared_namespaces: BTreeSet::new(),
            events: Vec::new(),
            owners: BTreeSet::new(),
            memory_usage: BTreeMap::new(),
        };
        s.index_owners();
        s
    }

    /// Called before executing the committed batch `seq` with its timestamp: advances the
    /// replicated clock (never backwards), drops expired memory and closes federated rounds past
    /// their deadline, identically on every replica.
    pub fn begin_batch(&mut self, seq: Seq, timestamp_ms: u64) {
        if timestamp_ms <= self.clock_ms {
            return;
        }
        self.clock_ms = timestamp_ms;
        let now = self.clock_ms;
        self.accountability.expire(now, &mut self.events);
        self.expire_memory(now);
        self.federated.close_expired(seq, now);
    }

    /// A live memory value.
    pub fn memory_get(&self, namespace: &str, key: &str) -> Option<&MemoryEntry> {
        self.memory.get(&(namespace.to_string(), key.to_string()))
    }

    fn index_owners(&mut self) {
        self.owners = self.accounts.values().map(|a| a.owner).collect();
        self.index_memory_usage();
    }

    /// Whether this key owns an account, is a member or is the operator. Replicas admit
    /// requests only from such clients, so nobody can grow the client table (and every
    /// snapshot) with throwaway keys. (Replicas also stop admitting a quarantined member's
    /// requests; what was already ordered still executes normally.)
    pub fn is_client(&self, key: &PublicKey) -> bool {
        self.owners.contains(key) || self.accountability.may_submit(key)
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

    fn apply(&mut self, seq: Seq, req: &ClientRequest) -> Result<(), RejectReason> {
        let cx = accountability::Context { seq, clock_ms: self.clock_ms, signer: req.body.client };
        match &req.body.op {
            crate::wire::Operation::Report(bytes) => {
                self.accountability.execute_report(&cx, bytes, &mut self.events)
            }
            crate::wire::Operation::Operator(crate::wire::OperatorAction::ShareNamespace { namespace }) => {
                self.share_namespace(&req.body.client, namespace)
            }
            crate::wire::Operation::Operator(action) => {
                self.accountability.execute_operator(&cx, action, &mut self.events)
            }
            // Never reaches here: `execute` acknowledges opaque payloads without applying them.
            crate::wire::Operation::Opaque(_) => Ok(()),
            crate::wire::Operation::Transfer { from, to, amount } => {
                ledger::transfer(&mut self.accounts, &req.body.client, from, to, *amount)
            }
            crate::wire::Operation::MemoryStore { namespace, key, value, ttl_ms } => {
                let (namespace, key, value, ttl_ms) =
                    (namespace.as_str(), key.as_str(), value.as_str(), *ttl_ms);
                self.memory_store(memory::Write {
                    seq,
                    writer: req.body.client,
                    namespace,
                    key,
                    value,
                    ttl_ms,
                })
            }
            crate::wire::Operation::Federated(op) => self.apply_federated(seq, req.body.client, op),
        }
    }

    fn apply_federated(&mut self, seq: Seq, signer: PublicKey, op: &FederatedOp) -> Result<(), RejectReason> {
        let operator = self.accountability.operator == Some(signer);
        let clock = self.clock_ms;
        match op {
            FederatedOp::Open(spec) => {
                let admitted = spec.participants.iter().all(|k| self.is_client(k));
                self.federated.open(seq, clock, spec, operator, admitted)
            }
            FederatedOp::Submit { model, round, offset, values } => {
                self.federated.submit(seq, clock, signer, (model, *round, *offset, values))
            }
            FederatedOp::Close { model, round } => {
                self.federated.close_by(seq, clock, operator, (model, *round))
            }
            FederatedOp::Delete { model } => self.federated.delete(operator, model),
        }
    }

    /// The client's last executed nonce, if any.
    pub fn last_nonce(&self, client: &PublicKey) -> Option<u64> {
        self.clients.get(client).map(|r| r.nonce)
    }

    pub fn total_balance(&self) -> u128 {
        self.accounts.values().map(|a| a.balance as u128).sum()
    }

    /// Canonical encoding: what checkpoints certify and state transfer ships.
    pub fn snapshot(&self) -> Vec<u8> {
        to_bytes(self)
    }

    pub fn digest(&self) -> Digest {
        digest(&self.snapshot())
    }

    pub fn restore(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let mut s: AppState = decode_value(bytes).map_err(|e| SnapshotError(e.to_string()))?;
        s.index_owners();
        Ok(s)
    }
}

#[cfg(test)]
mod tests;
