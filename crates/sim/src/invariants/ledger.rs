//! Validity and conservation: the results of the agreed history are those of an independent,
//! deliberately simple reference ledger, and every honest replica holds the genesis total.

use super::Violations;
use phalanx_core::wire::{Batch, Operation, Outcome, RejectReason, ReplyEntry, Seq};
use phalanx_crypto::{Digest, PublicKey};
use std::collections::BTreeMap;

/// A deliberately separate, simple implementation of the ledger rules.
struct Model {
    balances: BTreeMap<String, (PublicKey, u64)>,
    last: BTreeMap<PublicKey, (u64, Digest, Outcome)>,
    next: Seq,
}

impl Model {
    /// `actual`: what the replica reported, used only for the outcome of reports, operator
    /// actions and federated operations (checked by their own invariants).
    fn apply(&mut self, batch: &Batch, actual: &[ReplyEntry]) -> Vec<ReplyEntry> {
        let mut out = Vec::new();
        for r in batch.requests.iter() {
            let (client, nonce, op) = (r.body.client, r.body.nonce, r.op_digest());
            let outcome = match self.last.get(&client) {
                Some((n, _, _)) if nonce < *n => continue,
                Some((n, d, o)) if nonce == *n && *d == op => *o,
                Some((n, _, _)) if nonce == *n => Outcome::Rejected(RejectReason::ReusedNonce),
                // Federated rounds are checked against their own invariants (`federated.rs`).
                _ if r.body.op.is_system() || matches!(r.body.op, Operation::Federated(_)) => {
                    let found = actual.iter().find(|e| e.client == client && e.nonce == nonce && e.op == op);
                    let Some(e) = found else { continue };
                    self.last.insert(client, (nonce, op, e.outcome));
                    e.outcome
                }
                _ => {
                    let o = self.transfer(&client, &r.body.op);
                    self.last.insert(client, (nonce, op, o));
                    o
                }
            };
            out.push(ReplyEntry { client, nonce, op, outcome });
        }
        out
    }

    fn transfer(&mut self, signer: &PublicKey, op: &Operation) -> Outcome {
        let Operation::Transfer { from, to, amount } = op else {
            // The simulated clients only transfer; memory operations are tested in core.
            return Outcome::Applied;
        };
        let (Some((owner, bal)), true) = (self.balances.get(from).cloned(), self.balances.contains_key(to))
        else {
            return Outcome::Rejected(RejectReason::UnknownAccount);
        };
        if owner != *signer {
            return Outcome::Rejected(RejectReason::BadSignature);
        }
        if *amount == 0 || from == to {
            return Outcome::Rejected(RejectReason::InvalidAmount);
        }
        if bal < *amount {
            return Outcome::Rejected(RejectReason::Overdraft);
        }
        self.balances.get_mut(from).expect("checked").1 -= amount;
        self.balances.get_mut(to).expect("checked").1 += amount;
        Outcome::Applied
    }
}

pub struct Ledger {
    model: Model,
    /// Agreed batches (and the results replicas reported) not yet applied to the model: seqs
    /// are agreed out of order when a replica catches up by state transfer.
    pending: BTreeMap<Seq, (Batch, Vec<ReplyEntry>)>,
    /// The model's outcome of each executed (client, nonce, operation).
    results: BTreeMap<(PublicKey, u64, Digest), Outcome>,
    total_balance: u128,
}

impl Ledger {
    pub fn new(genesis: &[(String, PublicKey, u64)]) -> Self {
        let balances = genesis.iter().map(|(n, k, b)| (n.clone(), (*k, *b))).collect();
        Ledger {
            model: Model { balances, last: BTreeMap::new(), next: 1 },
            pending: BTreeMap::new(),
            results: BTreeMap::new(),
            total_balance: genesis.iter().map(|g| g.2 as u128).sum(),
        }
    }

    /// The first honest execution of `seq`: the model applies it once every seq before it is in.
    pub fn agreed(&mut self, v: &mut Violations, at: u64, seq: Seq, batch: &Batch, entries: &[ReplyEntry]) {
        self.pending.insert(seq, (batch.clone(), entries.to_vec()));
        while let Some((batch, entries)) = self.pending.remove(&self.model.next) {
            let expected = self.model.apply(&batch, &entries);
            if expected != entries {
                let seq = self.model.next;
                v.push(at, format!("validity: results at seq {seq} differ from the reference ledger"));
            }
            for e in expected {
                self.results.entry((e.client, e.nonce, e.op)).or_insert(e.outcome);
            }
            self.model.next += 1;
        }
    }

    /// An honest replica's total balance after executing.
    pub fn executed(&self, v: &mut Violations, at: u64, replica: usize, total_balance: u128) {
        if total_balance != self.total_balance {
            v.push(
                at,
                format!(
                    "conservation: replica {replica} holds {total_balance}, genesis {}",
                    self.total_balance
                ),
            );
        }
    }

    pub fn results(&self) -> &BTreeMap<(PublicKey, u64, Digest), Outcome> {
        &self.results
    }
}
