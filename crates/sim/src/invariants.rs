//! Safety invariants, checked after every simulation step, against an independent reference
//! model of the ledger.

use phalanx_core::wire::{Batch, Operation, Outcome, RejectReason, ReplyEntry, Seq};
use phalanx_crypto::{Digest, PublicKey};
use std::collections::{BTreeMap, BTreeSet};

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

pub struct Checker {
    /// First batch digest each honest replica executed at a seq (agreement).
    agreed: BTreeMap<Seq, (Digest, Batch, Vec<ReplyEntry>)>,
    model: Model,
    /// Model outcome of each executed (client, nonce, operation).
    model_results: BTreeMap<(PublicKey, u64, Digest), Outcome>,
    /// What clients accepted, checked against the model at the end.
    accepted: Vec<(u64, PublicKey, u64, Digest, Outcome)>,
    /// Honest checkpoint digests per seq.
    checkpoints: BTreeMap<Seq, Digest>,
    applied: BTreeMap<(PublicKey, u64), Digest>,
    /// Requests known to carry an invalid signature.
    pub forged: BTreeSet<Digest>,
    total_balance: u128,
    pub violations: Vec<String>,
}

impl Checker {
    pub fn new(genesis: &[(String, PublicKey, u64)]) -> Self {
        let balances = genesis.iter().map(|(n, k, b)| (n.clone(), (*k, *b))).collect();
        Checker {
            agreed: BTreeMap::new(),
            model: Model { balances, last: BTreeMap::new(), next: 1 },
            model_results: BTreeMap::new(),
            accepted: Vec::new(),
            checkpoints: BTreeMap::new(),
            applied: BTreeMap::new(),
            forged: BTreeSet::new(),
            total_balance: genesis.iter().map(|g| g.2 as u128).sum(),
            violations: Vec::new(),
        }
    }

    fn violate(&mut self, at: u64, what: String) {
        if self.violations.len() < 20 {
            self.violations.push(format!("t={at}ms: {what}"));
        }
    }

    /// An honest replica executed `batch` at `seq` with these results.
    pub fn executed(
        &mut self,
        at: u64,
        replica: usize,
        seq: Seq,
        batch: &Batch,
        entries: &[ReplyEntry],
        total_balance: u128,
    ) {
        let d = batch.digest();
        match self.agreed.get(&seq) {
            Some((d0, _, e0)) => {
                if *d0 != d {
                    self.violate(at, format!("agreement: replica {replica} executed {d:?} at seq {seq}, another honest replica {d0:?}"));
                } else if e0.as_slice() != entries {
                    self.violate(
                        at,
                        format!("determinism: replica {replica} got different results at seq {seq}"),
                    );
                }
            }
            None => {
                self.agreed.insert(seq, (d, batch.clone(), entries.to_vec()));
                self.advance_model(at);
            }
        }
        for r in batch.requests.iter() {
            if self.forged.contains(&r.digest()) {
                self.violate(
                    at,
                    format!(
                        "validity: replica {replica} executed a request with a forged signature at seq {seq}"
                    ),
                );
            }
        }
        for e in entries {
            if e.outcome == Outcome::Applied {
                match self.applied.get(&(e.client, e.nonce)) {
                    Some(op) if *op != e.op => self.violate(
                        at,
                        format!(
                            "double spend: two operations applied for one nonce {} of {:?}",
                            e.nonce, e.client
                        ),
                    ),
                    _ => {
                        self.applied.insert((e.client, e.nonce), e.op);
                    }
                }
            }
        }
        if total_balance != self.total_balance {
            self.violate(
                at,
                format!(
                    "conservation: replica {replica} holds {total_balance}, genesis {}",
                    self.total_balance
                ),
            );
        }
    }

    fn advance_model(&mut self, at: u64) {
        while let Some((_, batch, entries)) = self.agreed.get(&self.model.next) {
            let (batch, entries) = (batch.clone(), entries.clone());
            let expected = self.model.apply(&batch, &entries);
            if expected != entries {
                let seq = self.model.next;
                self.violate(at, format!("validity: results at seq {seq} differ from the reference ledger"));
            }
            for e in expected {
                self.model_results.entry((e.client, e.nonce, e.op)).or_insert(e.outcome);
            }
            self.model.next += 1;
        }
    }

    /// An honest replica's state digest at a checkpoint seq.
    pub fn checkpoint(&mut self, at: u64, replica: usize, seq: Seq, d: Digest) {
        match self.checkpoints.get(&seq) {
            Some(d0) if *d0 != d => self.violate(at, format!("state digests differ at checkpoint {seq}: replica {replica} has {d:?}, another honest {d0:?}")),
            Some(_) => {}
            None => {
                self.checkpoints.insert(seq, d);
            }
        }
    }

    /// A client accepted `outcome` for (client, nonce, op) on f+1 matching replies.
    pub fn accepted(&mut self, at: u64, client: PublicKey, nonce: u64, op: Digest, outcome: Outcome) {
        self.accepted.push((at, client, nonce, op, outcome));
    }

    /// End of run: every accepted result must be what the agreed history executed.
    pub fn finish(&mut self) {
        for (at, client, nonce, op, outcome) in std::mem::take(&mut self.accepted) {
            match self.model_results.get(&(client, nonce, op)) {
                Some(o) if *o == outcome => {}
                Some(o) => {
                    let o = *o;
                    self.violate(
                        at,
                        format!("a client accepted {outcome:?} for nonce {nonce} but {o:?} was executed"),
                    );
                }
                None => self.violate(
                    at,
                    format!("a client accepted a result for nonce {nonce} that no honest replica executed"),
                ),
            }
        }
    }

    pub fn honest_seqs(&self) -> usize {
        self.agreed.len()
    }
}
