//! The applications Phalanx replicates, behind consensus's [`Application`] trait:
//!
//! - [`ledger`]: accounts and transfers (no overdraft; double spends are caught by the client
//!   table in `phalanx-core`, which answers each nonce once).
//! - [`memory`]: the shared memory, a namespaced key-value store with owners, quotas and expiry.
//! - [`federated`]: federated learning rounds aggregated with Byzantine-robust rules.
//! - [`decisions`]: questions the agents vote on, closed by a rule, with the dissent kept and
//!   double votes caught.
//!
//! A new application is a new module here (its operations join `phalanx_core::wire::Operation`),
//! not an edit of the replica.

// Replicas run this code on input from Byzantine members: it answers with errors, never a panic
// (as Malachite's core crates do). Tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod decisions;
pub mod federated;
pub mod ledger;
pub mod memory;

pub use decisions::Decisions;
pub use federated::Federated;
pub use ledger::{Account, Genesis, GenesisAccount};
pub use memory::MemoryEntry;

use phalanx_core::application::{Application, Context};
use phalanx_core::evidence::Evidence;
use phalanx_core::wire::{DecisionOp, FederatedOp, Operation, OperatorAction, RejectReason, Seq};
use phalanx_crypto::PublicKey;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The replica Phalanx runs: PBFT over these applications.
pub type Replica = phalanx_core::consensus::Replica<AppState>;
/// A replica's configuration with this application's genesis.
pub type Config = phalanx_core::consensus::Config<AppState>;
/// The whole replicated state: consensus's own and the application's.
pub type State = phalanx_core::state::State<AppState>;

/// Ledger, shared memory and federated rounds, in canonical (BTree) order so the encoding and
/// digest are deterministic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppState {
    pub accounts: BTreeMap<String, Account>,
    /// The shared memory: (namespace, key) → value.
    pub memory: BTreeMap<(String, String), MemoryEntry>,
    pub memory_bytes: u64,
    /// Memory namespaces the operator declared shared: any client may write their keys.
    pub shared_namespaces: BTreeSet<String>,
    /// Federated learning rounds: open rounds' uploads, results, how each agent's updates fared.
    pub federated: Federated,
    /// Decisions the agents vote on.
    pub decisions: Decisions,
    /// Keys that own an account (derived from `accounts`, not part of the encoding).
    #[serde(skip)]
    owners: BTreeSet<PublicKey>,
    /// Memory bytes charged to each writer (derived from `memory`, not part of the encoding).
    #[serde(skip)]
    memory_usage: BTreeMap<PublicKey, u64>,
}

impl Application for AppState {
    type Genesis = Genesis;

    fn from_genesis(genesis: &Genesis) -> Self {
        let accounts = genesis
            .accounts
            .iter()
            .map(|a| (a.name.clone(), Account { owner: a.owner, balance: a.balance }))
            .collect();
        let mut s = AppState {
            accounts,
            memory: BTreeMap::new(),
            memory_bytes: 0,
            shared_namespaces: BTreeSet::new(),
            federated: Federated::default(),
            decisions: Decisions::default(),
            owners: BTreeSet::new(),
            memory_usage: BTreeMap::new(),
        };
        s.restored();
        s
    }

    fn restored(&mut self) {
        self.owners = self.accounts.values().map(|a| a.owner).collect();
        self.index_memory_usage();
    }

    fn admits(&self, key: &PublicKey) -> bool {
        self.owners.contains(key)
    }

    fn advance_clock(&mut self, seq: Seq, clock_ms: u64) {
        self.expire_memory(clock_ms);
        self.federated.close_expired(seq, clock_ms);
        self.decisions.close_expired(seq, clock_ms);
    }

    fn take_evidence(&mut self) -> Vec<Evidence> {
        std::mem::take(&mut self.decisions.found)
    }

    fn execute(&mut self, cx: &Context<'_>, op: &Operation) -> Result<(), RejectReason> {
        match op {
            Operation::Transfer { from, to, amount } => {
                ledger::transfer(&mut self.accounts, &cx.signer, from, to, *amount)
            }
            Operation::MemoryStore { namespace, key, value, ttl_ms } => self.memory_store(memory::Write {
                seq: cx.seq,
                clock_ms: cx.clock_ms,
                writer: cx.signer,
                namespace,
                key,
                value,
                ttl_ms: *ttl_ms,
            }),
            Operation::Operator(OperatorAction::ShareNamespace { namespace }) => {
                self.share_namespace(cx.by_operator(), namespace)
            }
            Operation::Federated(op) => self.apply_federated(cx, op),
            Operation::Decision(op) => {
                let call = decisions::Call {
                    seq: cx.seq,
                    clock_ms: cx.clock_ms,
                    request: cx.request,
                    accountability: cx.accountability,
                };
                let (app, acc) = (&*self, cx.accountability);
                let admitted: Vec<bool> = match op {
                    DecisionOp::Open(spec) => {
                        spec.voters.iter().map(|k| phalanx_core::state::is_client(app, acc, k)).collect()
                    }
                    DecisionOp::Vote(_) => Vec::new(),
                };
                self.decisions.execute(&call, op, admitted.iter().all(|a| *a))
            }
            Operation::Report(_) | Operation::Operator(_) | Operation::Opaque(_) => {
                Err(RejectReason::Unauthorized)
            }
        }
    }
}

impl AppState {
    /// A live memory value.
    pub fn memory_get(&self, namespace: &str, key: &str) -> Option<&MemoryEntry> {
        self.memory.get(&(namespace.to_string(), key.to_string()))
    }

    pub fn total_balance(&self) -> u128 {
        self.accounts.values().map(|a| a.balance as u128).sum()
    }

    fn apply_federated(&mut self, cx: &Context<'_>, op: &FederatedOp) -> Result<(), RejectReason> {
        let operator = cx.by_operator();
        let (seq, clock, signer) = (cx.seq, cx.clock_ms, cx.signer);
        match op {
            FederatedOp::Open(spec) => {
                let admitted = spec
                    .participants
                    .iter()
                    .all(|k| phalanx_core::state::is_client(self, cx.accountability, k));
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
}

#[cfg(test)]
mod tests;
