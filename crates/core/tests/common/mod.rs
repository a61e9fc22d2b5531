//! A hand-driven cluster for unit tests: every key is known, so tests can play any member.
#![allow(dead_code)]

use phalanx_app::{Config, GenesisAccount, Replica};
use phalanx_core::consensus::{DirectVerifier, Effect, Epoch, Input, Member, Params};
use phalanx_core::state::Genesis;
use phalanx_core::wire::{
    Batch, Checkpoint, CheckpointCert, ClientRequest, Message, NewView, Operation, Phase, PrePrepare,
    PreparedCert, ReplicaId, RequestBody, Signed, ViewChange, Vote,
};
use phalanx_crypto::{Digest, Keypair, digest};

pub struct Fixture {
    pub keys: Vec<Keypair>,
    pub client: Keypair,
    pub operator: Keypair,
    pub config: Config,
}

impl Fixture {
    pub fn new(n: usize) -> Self {
        let keys: Vec<Keypair> = (0..n).map(|i| Keypair::from_seed([i as u8 + 1; 32])).collect();
        let client = Keypair::from_seed([200; 32]);
        let members = keys
            .iter()
            .enumerate()
            .map(|(i, k)| Member { name: format!("bft-agent-{}", i + 1), key: k.public() })
            .collect();
        let params = Params {
            checkpoint_interval: 10,
            log_window: 20,
            max_inflight: 10,
            batch_size: 1,
            batch_delay_ms: 1,
            ..Params::default()
        };
        let app = phalanx_app::Genesis {
            accounts: vec![
                GenesisAccount { name: "alice".into(), owner: client.public(), balance: 1000 },
                GenesisAccount { name: "bob".into(), owner: keys[0].public(), balance: 0 },
            ],
        };
        let genesis = Genesis {
            operator: Some(Keypair::from_seed([201; 32]).public()),
            quarantine_ms: 60_000,
            testing: false,
        };
        let config = Config {
            cluster_id: digest(b"test-cluster"),
            epoch: Epoch::genesis(members, (n - 1) / 3),
            params,
            genesis,
            app,
        };
        Fixture { keys, client, operator: Keypair::from_seed([201; 32]), config }
    }

    pub fn replica(&self, id: ReplicaId) -> Replica {
        let mut r = Replica::new(
            id,
            self.keys[id as usize].clone(),
            self.config.clone(),
            Box::new(DirectVerifier::new([id as u8; 32])),
        );
        r.start(0);
        r
    }

    pub fn cluster(&self) -> &Digest {
        &self.config.cluster_id
    }

    pub fn request(&self, nonce: u64, amount: u64) -> ClientRequest {
        let op = Operation::Transfer { from: "alice".into(), to: "bob".into(), amount };
        let body = RequestBody { client: self.client.public(), nonce, op };
        ClientRequest::sign(body, &self.client, self.cluster())
    }

    pub fn batch(&self, reqs: Vec<ClientRequest>) -> Batch {
        Batch { timestamp_ms: 0, requests: reqs.into() }
    }

    pub fn sign<T: phalanx_core::wire::Body>(&self, from: ReplicaId, body: T) -> Signed<T> {
        Signed::sign(body, from, &self.keys[from as usize], self.cluster())
    }

    pub fn pre_prepare(&self, view: u64, seq: u64, batch: &Batch) -> Message {
        let primary = self.config.epoch.primary(view);
        let pp = self.sign(primary, PrePrepare { epoch: 0, view, seq, digest: batch.digest() });
        Message::PrePrepare(pp, batch.clone())
    }

    pub fn vote_body(&self, phase: Phase, view: u64, seq: u64, d: Digest) -> Vote {
        Vote { phase, epoch: 0, view, seq, digest: d }
    }

    pub fn vote(&self, from: ReplicaId, phase: Phase, view: u64, seq: u64, d: Digest) -> Message {
        Message::Vote(self.sign(from, self.vote_body(phase, view, seq, d)))
    }

    pub fn checkpoint(&self, from: ReplicaId, seq: u64, state: Digest) -> Message {
        Message::Checkpoint(self.sign(from, Checkpoint { epoch: 0, seq, state }))
    }
}

impl Fixture {
    /// A NEW-VIEW for view 1 (primary 1) built from VIEW-CHANGEs of 0, 2 and 3 over the seq-0
    /// checkpoint with state `stable_state`. Replica 2 prepared `batch` at seq 1 in view 0, so
    /// the NEW-VIEW re-proposes it there.
    pub fn new_view_reproposing(&self, batch: &Batch, stable_state: Digest) -> NewView {
        let d = batch.digest();
        let stable = CheckpointCert { seq: 0, state: stable_state, proofs: Vec::new() };
        let pre_prepare = self.sign(0, PrePrepare { epoch: 0, view: 0, seq: 1, digest: d });
        let prepares = [2, 3].map(|i| self.sign(i, self.vote_body(Phase::Prepare, 0, 1, d))).to_vec();
        let cert = PreparedCert { pre_prepare, prepares };
        let vc = |from, prepared: Vec<PreparedCert>| {
            self.sign(from, ViewChange { epoch: 0, new_view: 1, stable: stable.clone(), prepared })
        };
        let view_changes = vec![vc(0, Vec::new()), vc(2, vec![cert]), vc(3, Vec::new())];
        let pre_prepares = vec![self.sign(1, PrePrepare { epoch: 0, view: 1, seq: 1, digest: d })];
        NewView { epoch: 0, view: 1, view_changes, pre_prepares }
    }
}

pub fn feed(r: &mut Replica, m: Message) -> Vec<Effect> {
    r.handle(0, Input::Message(m))
}

/// Messages a replica broadcast or sent, in order.
pub fn sent(effects: &[Effect]) -> Vec<Message> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Broadcast(m) | Effect::Send { msg: m, .. } => Some(m.clone()),
            _ => None,
        })
        .collect()
}

pub fn sent_vote(effects: &[Effect], phase: Phase, seq: u64) -> bool {
    sent(effects).iter().any(|m| matches!(m, Message::Vote(v) if v.body.phase == phase && v.body.seq == seq))
}

pub fn executed(effects: &[Effect]) -> Vec<u64> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Executed { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect()
}

/// Drives backup `me` through the normal case for one slot: pre-prepare, prepares and commits
/// from the other members (view 0, primary 0).
pub fn commit_slot(fx: &Fixture, r: &mut Replica, seq: u64, batch: &Batch) -> Vec<Effect> {
    commit_slot_at(fx, r, 0, seq, batch, true)
}

/// `commit_slot` at time `now`, with or without the pre-prepare (already received).
pub fn commit_slot_at(
    fx: &Fixture,
    r: &mut Replica,
    now: u64,
    seq: u64,
    batch: &Batch,
    pre_prepare: bool,
) -> Vec<Effect> {
    let d = batch.digest();
    let me = r.id();
    let n = fx.keys.len() as ReplicaId;
    let mut feed = |m: Message| r.handle(now, Input::Message(m));
    let mut out = if pre_prepare { feed(fx.pre_prepare(0, seq, batch)) } else { Vec::new() };
    for i in 1..n {
        if i != me {
            out.extend(feed(fx.vote(i, Phase::Prepare, 0, seq, d)));
        }
    }
    for i in 0..n {
        if i != me {
            out.extend(feed(fx.vote(i, Phase::Commit, 0, seq, d)));
        }
    }
    out
}
