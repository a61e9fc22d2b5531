//! Honest clients: each signs transfers with its own key, keeps one request outstanding,
//! broadcasts it to every replica, retransmits, and accepts a result only on f+1 matching
//! signed replies from distinct replicas.

use phalanx_core::wire::{ClientRequest, Operation, Outcome, ReplicaId, Reply, RequestBody};
use phalanx_crypto::{Digest, Keypair, PublicKey};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

pub const CLIENT_BALANCE: u64 = 10_000;

struct Pending {
    req: ClientRequest,
    op: Digest,
    sent_at: u64,
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
}

pub struct Clients {
    pub keys: Vec<Keypair>,
    index: BTreeMap<PublicKey, usize>,
    remaining: Vec<usize>,
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

    pub fn done(&self) -> bool {
        self.remaining.iter().all(|r| *r == 0) && self.pending.iter().all(Option::is_none)
    }

    pub fn unfinished(&self) -> usize {
        self.remaining.iter().sum::<usize>() + self.pending.iter().filter(|p| p.is_some()).count()
    }

    /// Signs the client's next transfer (about 5% deliberately overdraw).
    pub fn next_request(&mut self, i: usize, now: u64, rng: &mut ChaCha8Rng) -> Option<ClientRequest> {
        if self.remaining[i] == 0 || self.pending[i].is_some() {
            return None;
        }
        self.remaining[i] -= 1;
        let c = self.keys.len();
        let mut to = rng.random_range(0..c);
        if to == i {
            to = (to + 1) % c;
        }
        let amount = if rng.random_bool(0.05) { CLIENT_BALANCE * 100 } else { rng.random_range(1..=20) };
        let op = Operation::Transfer { from: Self::name(i), to: Self::name(to), amount };
        let body = RequestBody { client: self.keys[i].public(), nonce: self.next_nonce[i], op };
        self.next_nonce[i] += 1;
        let req = ClientRequest::sign(body, &self.keys[i], &self.cluster);
        self.pending[i] =
            Some(Pending { op: req.op_digest(), req: req.clone(), sent_at: now, votes: Vec::new() });
        Some(req)
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
                match e.outcome {
                    Outcome::Applied => self.committed += 1,
                    Outcome::Rejected(_) => self.rejected += 1,
                }
                self.latencies.push(now - p.sent_at);
                done.push(Accepted {
                    client: i,
                    key: e.client,
                    nonce: e.nonce,
                    op: e.op,
                    outcome: e.outcome,
                    latency_ms: now - p.sent_at,
                });
            }
        }
        done
    }
}
