//! Honest clients: each signs transfers with its own key, keeps one request outstanding,
//! broadcasts it to every replica, retransmits, and accepts a result only on f+1 matching
//! signed replies from distinct replicas. A workload may script other operations for a client
//! (federated rounds); scripted operations go before its transfers.

use phalanx_core::wire::{ClientRequest, Operation, Outcome, ReplicaId, Reply, RequestBody};
use phalanx_crypto::{Digest, Keypair, PublicKey};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub const CLIENT_BALANCE: u64 = 10_000;

struct Pending {
    req: ClientRequest,
    op: Digest,
    sent_at: u64,
    scripted: bool,
    votes: Vec<(Outcome, BTreeSet<ReplicaId>)>,
}

/// A result a client accepted.
pub struct Accepted {
    pub client: usize,
    pub key: PublicKey,
    pub nonce: u64,
    pub op: Digest,
    pub outcome: Outcome,
    pub latency_ms: u64,
    /// A scripted operation rather than a transfer.
    pub scripted: bool,
}

pub struct Clients {
    pub keys: Vec<Keypair>,
    index: BTreeMap<PublicKey, usize>,
    remaining: Vec<usize>,
    /// Clients that own accounts (transfer targets); scripted-only clients come after them.
    accounts: usize,
    scripts: Vec<VecDeque<Operation>>,
    pending: Vec<Option<Pending>>,
    next_nonce: Vec<u64>,
    weak: usize,
    cluster: Digest,
    pub committed: u64,
    pub rejected: u64,
    pub latencies: Vec<u64>,
}

impl Clients {
    pub fn new(keys: Vec<Keypair>, txs: usize, f: usize, cluster: Digest) -> Self {
        let c = keys.len();
        let remaining = (0..c).map(|i| txs / c + usize::from(i < txs % c)).collect();
        let index = keys.iter().enumerate().map(|(i, k)| (k.public(), i)).collect();
        Clients {
            pending: (0..c).map(|_| None).collect(),
            accounts: c,
            scripts: vec![VecDeque::new(); c],
            next_nonce: vec![1; c],
            keys,
            index,
            remaining,
            weak: f + 1,
            cluster,
            committed: 0,
            rejected: 0,
            latencies: Vec::new(),
        }
    }

    pub fn name(i: usize) -> String {
        format!("client-{i}")
    }

    /// Adds a client without an account or transfers (say, the operator); returns its index.
    pub fn add_scripted(&mut self, key: Keypair) -> usize {
        self.index.insert(key.public(), self.keys.len());
        self.keys.push(key);
        self.remaining.push(0);
        self.scripts.push(VecDeque::new());
        self.pending.push(None);
        self.next_nonce.push(1);
        self.keys.len() - 1
    }

    /// Queues `op` for client `i`, before its remaining transfers.
    pub fn script(&mut self, i: usize, op: Operation) {
        self.scripts[i].push_back(op);
    }

    pub fn done(&self) -> bool {
        self.unfinished() == 0
    }

    pub fn unfinished(&self) -> usize {
        self.remaining.iter().sum::<usize>()
            + self.scripts.iter().map(VecDeque::len).sum::<usize>()
            + self.pending.iter().filter(|p| p.is_some()).count()
    }

    /// Signs the client's next scripted operation, or else its next transfer (about 5%
    /// deliberately overdraw).
    pub fn next_request(&mut self, i: usize, now: u64, rng: &mut ChaCha8Rng) -> Option<ClientRequest> {
        if self.pending[i].is_some() {
            return None;
        }
        let (op, scripted) = match self.scripts[i].pop_front() {
            Some(op) => (op, true),
            None if self.remaining[i] > 0 => {
                self.remaining[i] -= 1;
                (self.transfer(i, rng), false)
            }
            None => return None,
        };
        let body = RequestBody { client: self.keys[i].public(), nonce: self.next_nonce[i], op };
        self.next_nonce[i] += 1;
        let req = ClientRequest::sign(body, &self.keys[i], &self.cluster);
        self.pending[i] = Some(Pending {
            op: req.op_digest(),
            req: req.clone(),
            sent_at: now,
            scripted,
            votes: Vec::new(),
        });
        Some(req)
    }

    fn transfer(&self, i: usize, rng: &mut ChaCha8Rng) -> Operation {
        let c = self.accounts;
        let mut to = rng.random_range(0..c);
        if to == i {
            to = (to + 1) % c;
        }
        let amount = if rng.random_bool(0.05) { CLIENT_BALANCE * 100 } else { rng.random_range(1..=20) };
        Operation::Transfer { from: Self::name(i), to: Self::name(to), amount }
    }

    /// The outstanding request of client `i` if it is still `nonce` (for retransmission).
    pub fn outstanding(&self, i: usize, nonce: u64) -> Option<ClientRequest> {
        self.pending[i].as_ref().filter(|p| p.req.body.nonce == nonce).map(|p| p.req.clone())
    }

    /// Whether a reply carries an entry some client still waits for (only then is it worth
    /// verifying its signature).
    pub fn wants(&self, reply: &Reply) -> bool {
        reply.entries.iter().any(|e| {
            self.index
                .get(&e.client)
                .and_then(|i| self.pending[*i].as_ref())
                .is_some_and(|p| p.req.body.nonce == e.nonce && p.op == e.op)
        })
    }

    /// A reply whose signature the caller verified. Returns the results it completed.
    pub fn on_reply(&mut self, from: ReplicaId, reply: &Reply, now: u64) -> Vec<Accepted> {
        let mut done = Vec::new();
        for e in &reply.entries {
            let Some(&i) = self.index.get(&e.client) else { continue };
            let Some(p) = self.pending[i].as_mut() else { continue };
            if p.req.body.nonce != e.nonce || p.op != e.op {
                continue;
            }
            let votes = match p.votes.iter_mut().find(|(o, _)| *o == e.outcome) {
                Some((_, v)) => v,
                None => {
                    p.votes.push((e.outcome, BTreeSet::new()));
                    &mut p.votes.last_mut().expect("just pushed").1
                }
            };
            votes.insert(from);
            if votes.len() >= self.weak {
                let p = self.pending[i].take().expect("checked above");
                // The counters and latencies are the transfers'.
                match e.outcome {
                    _ if p.scripted => {}
                    Outcome::Applied => self.committed += 1,
                    Outcome::Rejected(_) => self.rejected += 1,
                }
                if !p.scripted {
                    self.latencies.push(now - p.sent_at);
                }
                done.push(Accepted {
                    client: i,
                    key: e.client,
                    nonce: e.nonce,
                    op: e.op,
                    outcome: e.outcome,
                    latency_ms: now - p.sent_at,
                    scripted: p.scripted,
                });
            }
        }
        done
    }
}
