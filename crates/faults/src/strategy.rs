//! Byzantine strategies. A faulty agent runs a real replica; its strategies rewrite what that
//! replica sends (and add actions of their own). Faulty agents share a blackboard so that they
//! can collude, as real attackers would.

use crate::Behaviour;
use crate::board::Blackboard;
use phalanx_core::wire::{
    Batch, CheckpointCert, ClientRequest, Fetch, Message, NewView, Operation, Phase, PrePrepare,
    PreparedCert, ReplicaId, RequestBody, Signed, ViewChange, Vote,
};
use phalanx_crypto::{Digest, Keypair, digest};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeSet, VecDeque};

/// A message leaving a faulty agent for one recipient, with extra delay.
pub struct Outgoing {
    pub to: ReplicaId,
    pub msg: Message,
    pub extra_delay_ms: u64,
}

pub struct Strategy {
    pub id: ReplicaId,
    pub behaviours: BTreeSet<Behaviour>,
    key: Keypair,
    cluster: Digest,
    n: usize,
    /// Virtual time at which a `crash` agent stops for good.
    pub crash_at: Option<u64>,
    history: VecDeque<Message>,
    /// Account this agent may double-spend from, the two accounts it pays, and its next nonce.
    pub account: String,
    pub spend_to: [String; 2],
    /// The last nonce used for a double spend (the driver may raise it: its replica's own
    /// signed reports share the agent key's nonce sequence).
    pub nonce: u64,
    /// Probability that a probabilistic behaviour acts when it can (None: its default).
    pub probability: Option<f64>,
    /// Requests this agent fabricated with invalid signatures (must never execute).
    pub forged_requests: Vec<Digest>,
    /// Whether it has misbehaved yet: a probabilistic behaviour may never get to act in a short
    /// run, and a fault that never happened cannot be detected.
    pub acted: bool,
    /// Megabyte-sized requests of its own, signed once, that `oversize` pads batches with.
    pad: Option<Vec<ClientRequest>>,
}

const HISTORY: usize = 256;

impl Strategy {
    pub fn new(
        id: ReplicaId,
        behaviours: BTreeSet<Behaviour>,
        key: Keypair,
        cluster: Digest,
        n: usize,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let crash_at = behaviours.contains(&Behaviour::Crash).then(|| rng.random_range(100..3000u64));
        Strategy {
            id,
            behaviours,
            key,
            cluster,
            n,
            crash_at,
            history: VecDeque::new(),
            account: format!("agent-{id}"),
            spend_to: ["client-0".into(), "client-1".into()],
            nonce: 1 << 40,
            probability: None,
            forged_requests: Vec::new(),
            acted: false,
            pad: None,
        }
    }

    fn has(&self, b: Behaviour) -> bool {
        self.behaviours.contains(&b)
    }

    /// Whether behaviour `b` acts this time.
    fn acts(&mut self, b: Behaviour, rng: &mut ChaCha8Rng) -> bool {
        let acts = self.has(b)
            && rng.random_bool(self.probability.unwrap_or(b.default_probability()).clamp(0.0, 1.0));
        self.acted |= acts;
        acts
    }

    pub fn crashed(&self, now: u64) -> bool {
        self.crash_at.is_some_and(|t| now >= t)
    }

    pub fn remember(&mut self, m: &Message) {
        if self.has(Behaviour::Replay) {
            if self.history.len() >= HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(m.clone());
        }
    }

    /// Rewrites one message the honest replica inside wants to send to `recipients`.
    pub fn rewrite(
        &mut self,
        msg: Message,
        recipients: &[ReplicaId],
        rng: &mut ChaCha8Rng,
        board: &mut Blackboard,
    ) -> Vec<Outgoing> {
        if self.has(Behaviour::Silent) {
            self.acted = true;
            return Vec::new();
        }
        self.remember(&msg);
        let always = [Behaviour::Censor, Behaviour::Equivocate, Behaviour::Delay, Behaviour::ForgeViewChange];
        self.acted |= always.iter().any(|b| self.has(*b));
        if self.has(Behaviour::Censor) && matches!(msg, Message::PrePrepare(..)) {
            return Vec::new();
        }
        let msg = match msg {
            Message::PrePrepare(pp, b) if pp.from == self.id && self.acts(Behaviour::OpaqueCensor, rng) => {
                self.opaque_censor(pp, b)
            }
            Message::PrePrepare(pp, b) if pp.from == self.id && self.acts(Behaviour::Oversize, rng) => {
                self.oversize(pp, b)
            }
            Message::PrePrepare(pp, b) if pp.from == self.id && self.acts(Behaviour::ClockSkew, rng) => {
                // Frozen half the time, far ahead otherwise.
                let stamp = if rng.random_bool(0.5) { 0 } else { b.timestamp_ms.saturating_add(600_000) };
                self.restamp(pp, b, stamp)
            }
            Message::PrePrepare(pp, b) if self.acts(Behaviour::InvalidProposal, rng) => {
                self.invalid_proposal(pp, b)
            }
            Message::ViewChange(vc) if self.has(Behaviour::ForgeViewChange) => {
                Message::ViewChange(self.forge_view_change(vc.body.new_view, vc.body.stable))
            }
            Message::NewView(nv) if self.has(Behaviour::ForgeViewChange) => {
                Message::NewView(self.skew_new_view(nv))
            }
            m => m,
        };
        if self.has(Behaviour::WithholdBatch) {
            // A batch asked for is never handed over.
            if matches!(msg, Message::Batch(..)) {
                self.acted = true;
                return Vec::new();
            }
            if let Message::PrePrepare(pp, _) = &msg
                && pp.from == self.id
            {
                board.withheld.insert((pp.body.view, pp.body.seq));
            }
        }
        let withheld_to = self.withheld_recipients(&msg, recipients, board);
        let mut out = Vec::with_capacity(recipients.len());
        for &to in recipients {
            if withheld_to.as_ref().is_some_and(|keep| !keep.contains(&to)) {
                continue;
            }
            let mut m = msg.clone();
            if self.has(Behaviour::Equivocate) {
                m = self.equivocate(m, to, board);
                // Now and then show one recipient both versions of a vote: provable evidence.
                if let Message::Vote(v) = &m
                    && to.is_multiple_of(3)
                    && rng.random_bool(0.2)
                {
                    let mut other = v.body.clone();
                    other.digest = digest(&rng.random::<u64>().to_le_bytes());
                    let other = Signed::sign(other, self.id, &self.key, &self.cluster);
                    out.push(Outgoing { to, msg: Message::Vote(other), extra_delay_ms: 0 });
                }
                // And sign a second state digest for a checkpoint.
                if let Message::Checkpoint(c) = &m
                    && to.is_multiple_of(3)
                    && rng.random_bool(0.5)
                {
                    let mut other = c.body.clone();
                    other.state = digest(&rng.random::<u64>().to_le_bytes());
                    let other = Signed::sign(other, self.id, &self.key, &self.cluster);
                    out.push(Outgoing { to, msg: Message::Checkpoint(other), extra_delay_ms: 0 });
                }
            }
            if self.acts(Behaviour::CorruptSignatures, rng) {
                corrupt(&mut m);
            }
            let mut extra_delay_ms = if self.has(Behaviour::Delay) { rng.random_range(0..400) } else { 0 };
            if self.has(Behaviour::Chaos) {
                self.acted = true;
                match rng.random_range(0..10u8) {
                    // Withheld from this recipient.
                    0 => continue,
                    // Its own version.
                    1..=3 => m = crate::chaos::mutate(m, &self.signer(), rng, board),
                    // Late.
                    4 => extra_delay_ms += rng.random_range(0..1000),
                    _ => {}
                }
            }
            out.push(Outgoing { to, msg: m, extra_delay_ms });
        }
        if self.has(Behaviour::Chaos) {
            board.share(&msg);
        }
        out
    }

    fn signer(&self) -> crate::chaos::Signer<'_> {
        crate::chaos::Signer { id: self.id, key: &self.key, cluster: &self.cluster }
    }

    /// `chaos`, on its own time: what the colluders have seen, relayed to someone else as it is
    /// or mutated, now or late.
    fn chaos_tick(&mut self, rng: &mut ChaCha8Rng, board: &Blackboard) -> Vec<Outgoing> {
        let mut out = Vec::new();
        if board.seen.is_empty() {
            return out;
        }
        for _ in 0..rng.random_range(1..=4) {
            let m = board.seen[rng.random_range(0..board.seen.len())].clone();
            let m =
                if rng.random_bool(0.5) { crate::chaos::mutate(m, &self.signer(), rng, board) } else { m };
            let to = rng.random_range(0..self.n as ReplicaId);
            if to != self.id {
                out.push(Outgoing { to, msg: m, extra_delay_ms: rng.random_range(0..300) });
            }
        }
        out
    }

    /// Sends each half of the agents a different version: even ids get A, odd ids get B.
    fn equivocate(&mut self, m: Message, to: ReplicaId, board: &mut Blackboard) -> Message {
        match m {
            Message::PrePrepare(pp, batch) if pp.from == self.id => {
                let key = (pp.body.view, pp.body.seq);
                let mut alt = batch.clone();
                alt.requests = batch.requests.iter().rev().cloned().collect();
                alt.timestamp_ms += 1;
                let alt_d = alt.digest();
                board.split.insert(key, (pp.body.digest, alt_d));
                if to.is_multiple_of(2) {
                    Message::PrePrepare(pp, batch)
                } else {
                    let body = PrePrepare { digest: alt_d, ..pp.body };
                    Message::PrePrepare(Signed::sign(body, self.id, &self.key, &self.cluster), alt)
                }
            }
            Message::Vote(v) => {
                let (a, b) = match board.split.get(&(v.body.view, v.body.seq)) {
                    Some(pair) => *pair,
                    None => (v.body.digest, digest(&v.body.seq.to_le_bytes())),
                };
                let want = if to.is_multiple_of(2) { a } else { b };
                if want == v.body.digest {
                    Message::Vote(v)
                } else {
                    let body = Vote { digest: want, ..v.body };
                    Message::Vote(Signed::sign(body, self.id, &self.key, &self.cluster))
                }
            }
            m => m,
        }
    }

    /// Who gets `msg` from a member that withholds batches, if not everyone: its own proposal
    /// goes to its accomplices and f+1 honest backups (too few to prepare without the
    /// accomplices' PREPAREs), and PREPAREs for a withheld proposal go to accomplices only.
    fn withheld_recipients(
        &mut self,
        msg: &Message,
        recipients: &[ReplicaId],
        board: &Blackboard,
    ) -> Option<BTreeSet<ReplicaId>> {
        if !self.has(Behaviour::WithholdBatch) {
            return None;
        }
        let colluders = |to: &ReplicaId| board.colluders.contains(to);
        let keep: BTreeSet<ReplicaId> = match msg {
            Message::PrePrepare(pp, _) if pp.from == self.id => {
                let f = (self.n - 1) / 3;
                let honest = recipients.iter().filter(|t| !colluders(t)).take(f + 1);
                recipients.iter().filter(|t| colluders(t)).chain(honest).copied().collect()
            }
            Message::Vote(v)
                if v.body.phase == Phase::Prepare && board.withheld.contains(&(v.body.view, v.body.seq)) =>
            {
                recipients.iter().filter(|t| colluders(t)).copied().collect()
            }
            _ => return None,
        };
        self.acted = true;
        Some(keep)
    }

    /// Replaces every request of the batch with an unsigned opaque payload under the same client
    /// and nonce, and re-signs the proposal.
    fn opaque_censor(&mut self, pp: Signed<PrePrepare>, mut batch: Batch) -> Message {
        if batch.requests.is_empty() {
            return Message::PrePrepare(pp, batch);
        }
        batch.requests = batch
            .requests
            .iter()
            .map(|r| ClientRequest::opaque(r.body.client, r.body.nonce, b"censored".to_vec()))
            .collect();
        self.resign(pp, batch)
    }

    /// Pads the batch past the batch size limit with megabyte-sized reports of its own.
    fn oversize(&mut self, pp: Signed<PrePrepare>, mut batch: Batch) -> Message {
        let pad = self.pad.get_or_insert_with(|| {
            let count = phalanx_core::wire::limits::MAX_BATCH_BYTES
                / phalanx_core::wire::limits::MAX_REPORT_BYTES
                + 1;
            (0..count as u64)
                .map(|k| {
                    let op =
                        Operation::Report(vec![k as u8; phalanx_core::wire::limits::MAX_REPORT_BYTES - 64]);
                    let body = RequestBody { client: self.key.public(), nonce: (1 << 50) + k, op };
                    ClientRequest::sign(body, &self.key, &self.cluster)
                })
                .collect()
        });
        batch.requests = batch.requests.iter().chain(pad.iter()).cloned().collect();
        self.resign(pp, batch)
    }

    /// The same proposal with another timestamp.
    fn restamp(&mut self, pp: Signed<PrePrepare>, mut batch: Batch, timestamp_ms: u64) -> Message {
        batch.timestamp_ms = timestamp_ms;
        self.resign(pp, batch)
    }

    fn resign(&self, pp: Signed<PrePrepare>, batch: Batch) -> Message {
        let body = PrePrepare { digest: batch.digest(), ..pp.body };
        Message::PrePrepare(Signed::sign(body, self.id, &self.key, &self.cluster), batch)
    }

    /// Slips a request with a broken client signature into the batch and re-signs the proposal.
    fn invalid_proposal(&mut self, pp: Signed<PrePrepare>, mut batch: Batch) -> Message {
        let Some(first) = batch.requests.first().cloned() else {
            return Message::PrePrepare(pp, batch);
        };
        let mut forged = first;
        forged.body.nonce = forged.body.nonce.wrapping_add(1 << 50);
        self.forged_requests.push(forged.digest());
        batch.requests = batch.requests.iter().cloned().chain([forged]).collect();
        let body = PrePrepare { digest: batch.digest(), ..pp.body };
        Message::PrePrepare(Signed::sign(body, self.id, &self.key, &self.cluster), batch)
    }

    /// As a new primary: drops the first re-proposal (the attack that would lose a prepared
    /// request) or, with none, invents one, and re-signs the NEW-VIEW.
    fn skew_new_view(&self, nv: Signed<NewView>) -> Signed<NewView> {
        let mut body = nv.body;
        if body.pre_prepares.is_empty() {
            let seq = body.view_changes.iter().map(|vc| vc.body.stable.seq).max().unwrap_or(0) + 1;
            let pp = PrePrepare { epoch: body.epoch, view: body.view, seq, digest: Batch::null().digest() };
            body.pre_prepares.push(Signed::sign(pp, self.id, &self.key, &self.cluster));
        } else {
            body.pre_prepares.remove(0);
        }
        Signed::sign(body, self.id, &self.key, &self.cluster)
    }

    /// A VIEW-CHANGE whose prepared certificate is made up: prepares "from" other agents that
    /// this agent signed itself.
    pub fn forge_view_change(&self, new_view: u64, stable: CheckpointCert) -> Signed<ViewChange> {
        let batch = Batch { timestamp_ms: new_view, requests: Vec::new().into() };
        let seq = stable.seq + 1;
        let view = new_view.saturating_sub(1);
        let pp = PrePrepare { epoch: 0, view, seq, digest: batch.digest() };
        let pre_prepare = Signed::sign(pp, self.id, &self.key, &self.cluster);
        let prepares = (0..self.n as ReplicaId)
            .filter(|i| *i != self.id)
            .map(|i| {
                let v = Vote { phase: Phase::Prepare, epoch: 0, view, seq, digest: batch.digest() };
                let mut s = Signed::sign(v, self.id, &self.key, &self.cluster);
                s.from = i;
                s
            })
            .collect();
        let cert = PreparedCert { pre_prepare, prepares };
        let vc = ViewChange { epoch: 0, new_view, stable, prepared: vec![cert] };
        Signed::sign(vc, self.id, &self.key, &self.cluster)
    }

    /// Periodic actions of its own: replays, forged view changes, double spends.
    pub fn tick(
        &mut self,
        view: u64,
        stable: CheckpointCert,
        rng: &mut ChaCha8Rng,
        board: &Blackboard,
    ) -> Vec<Outgoing> {
        let mut out = Vec::new();
        if self.has(Behaviour::Silent) {
            return out;
        }
        if self.has(Behaviour::Chaos) {
            out.extend(self.chaos_tick(rng, board));
        }
        let others: Vec<ReplicaId> = (0..self.n as ReplicaId).filter(|i| *i != self.id).collect();
        if self.has(Behaviour::Replay) && !self.history.is_empty() {
            for _ in 0..4 {
                let m = self.history[rng.random_range(0..self.history.len())].clone();
                let to = others[rng.random_range(0..others.len())];
                out.push(Outgoing { to, msg: m, extra_delay_ms: 0 });
            }
        }
        if self.has(Behaviour::ForgeViewChange) {
            let vc = self.forge_view_change(view + 1, stable.clone());
            // A far view this agent would lead, and an unsolicited NEW-VIEW for it without any
            // view changes: neither may move honest replicas.
            let n = self.n as u64;
            let far = (view + 1000) / n * n + self.id as u64 + n;
            let far_vc = self.forge_view_change(far, stable);
            let nv = NewView { epoch: 0, view: far, view_changes: Vec::new(), pre_prepares: Vec::new() };
            let nv = Signed::sign(nv, self.id, &self.key, &self.cluster);
            // And catch-up requests meant to overflow or amplify.
            let fetch =
                Signed::sign(Fetch { epoch: 0, after: u64::MAX, view: 0 }, self.id, &self.key, &self.cluster);
            for &to in &others {
                out.push(Outgoing { to, msg: Message::ViewChange(vc.clone()), extra_delay_ms: 0 });
                out.push(Outgoing { to, msg: Message::ViewChange(far_vc.clone()), extra_delay_ms: 0 });
                out.push(Outgoing { to, msg: Message::NewView(nv.clone()), extra_delay_ms: 0 });
                out.push(Outgoing { to, msg: Message::Fetch(fetch.clone()), extra_delay_ms: 0 });
            }
        }
        if self.acts(Behaviour::DoubleSpend, rng) {
            self.nonce += 1;
            let mk = |to: &str, amount: u64| {
                let op = Operation::Transfer { from: self.account.clone(), to: to.into(), amount };
                let body = RequestBody { client: self.key.public(), nonce: self.nonce, op };
                ClientRequest::sign(body, &self.key, &self.cluster)
            };
            let (a, b) = (mk(&self.spend_to[0], 7), mk(&self.spend_to[1], 7));
            for to in 0..self.n as ReplicaId {
                let (m, other) = if to.is_multiple_of(2) { (&a, &b) } else { (&b, &a) };
                out.push(Outgoing { to, msg: Message::Request(m.clone()), extra_delay_ms: 0 });
                // Some agents see both: a provable double spend.
                if to.is_multiple_of(3) {
                    out.push(Outgoing { to, msg: Message::Request(other.clone()), extra_delay_ms: 0 });
                }
            }
        }
        out
    }
}

/// Flips one bit of the outermost signature of a message.
fn corrupt(m: &mut Message) {
    match m {
        Message::Request(r) => r.sig.s[0] ^= 1,
        Message::PrePrepare(p, _) => p.sig.s[0] ^= 1,
        Message::Vote(v) => v.sig.s[0] ^= 1,
        Message::Checkpoint(c) => c.sig.s[0] ^= 1,
        Message::ViewChange(v) => v.sig.s[0] ^= 1,
        Message::NewView(v) => v.sig.s[0] ^= 1,
        Message::StateRequest(r) => r.sig.s[0] ^= 1,
        Message::StateResponse(r) => r.sig.s[0] ^= 1,
        Message::Fetch(f) => f.sig.s[0] ^= 1,
        Message::BatchRequest(r) => r.sig.s[0] ^= 1,
        // Unsigned: a changed timestamp no longer hashes to the digest it answers.
        Message::Batch(_, b) => b.timestamp_ms ^= 1,
        Message::Committed(c) => {
            if let Some(v) = c.commits.first_mut() {
                v.sig.s[0] ^= 1;
            }
        }
    }
}
