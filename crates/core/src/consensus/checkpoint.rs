//! Checkpoints and garbage collection, state transfer, retransmission and catch-up.

use super::ignored::Ignored;
use super::replica::Replica;
use super::{Effect, Record, Timer};
use crate::application::Application;
use crate::state::State;
use crate::wire::{
    Checkpoint, CheckpointCert, CommitCert, Fetch, Message, ReplicaId, Seq, Signed, StateRequest,
    StateResponse, limits,
};
use phalanx_crypto::{Digest, digest};
use std::collections::BTreeMap;

/// Checkpoint votes kept per sender above our low water mark (bounds a Byzantine flood).
const CHECKPOINTS_PER_SENDER: usize = 4;

/// Checkpoint votes and state transfer.
#[derive(Default)]
pub(super) struct Checkpoints {
    /// CHECKPOINTs received, per seq and member (a few seqs per member bounds memory).
    pub(super) votes: BTreeMap<Seq, BTreeMap<ReplicaId, Signed<Checkpoint>>>,
    /// A certified checkpoint above our execution that we are fetching.
    pub(super) transfer: Option<CheckpointCert>,
    pub(super) transfer_attempt: u64,
    /// Own checkpoints (digest, snapshot) not yet garbage-collected, including the stable one.
    pub(super) snapshots: BTreeMap<Seq, (Digest, Vec<u8>)>,
    /// Each member's latest signed CHECKPOINT (seq, state): whether its state agrees with ours
    /// (observation only; one entry per member who signed one).
    pub(super) latest: BTreeMap<ReplicaId, (Seq, Digest)>,
}

/// One member's latest checkpoint held here, beside this replica's own state at that seq.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DigestAgreement {
    pub member: ReplicaId,
    pub seq: Seq,
    /// `None`: this replica holds no state of its own at that seq (not executed yet, or
    /// garbage-collected).
    pub agrees: Option<bool>,
}

/// Catching up, and answering others who do (each answer rate-limited per member).
#[derive(Default)]
pub(super) struct CatchUp {
    /// Execution at the last resend tick: no progress since means asking a peer.
    pub(super) executed_at_last_tick: Seq,
    /// Which peer to ask next (rotating, so a faulty one cannot stall us).
    pub(super) fetch_round: u64,
    /// When each peer last got a heavy catch-up answer (snapshot or NEW-VIEW) from us.
    pub(super) served_at: BTreeMap<ReplicaId, u64>,
    /// When each member was last sent batches it asked for (`BatchRequest`).
    pub(super) batches_served_at: BTreeMap<ReplicaId, u64>,
    /// When each member was last sent commit certificates it fetched (`Fetch`).
    pub(super) fetches_served_at: BTreeMap<ReplicaId, u64>,
}

impl<A: Application> Replica<A> {
    /// Whether each member's latest signed checkpoint matches this replica's state at its seq:
    /// a member whose state digest differs from ours (and from the stable checkpoint's) has
    /// diverged, or this replica has.
    pub fn digest_agreement(&self) -> Vec<DigestAgreement> {
        let own = |seq: Seq| {
            (self.checkpoints.snapshots.get(&seq).map(|(d, _)| *d))
                .or((self.stable.seq == seq).then_some(self.stable.state))
        };
        (self.checkpoints.latest.iter())
            .map(|(&member, &(seq, state))| DigestAgreement {
                member,
                seq,
                agrees: own(seq).map(|d| d == state),
            })
            .collect()
    }

    /// After executing a multiple of K: snapshot, sign CHECKPOINT, broadcast.
    pub(super) fn take_checkpoint(&mut self, seq: Seq) {
        let snapshot = self.state.snapshot();
        let d = digest(&snapshot);
        self.checkpoints.snapshots.insert(seq, (d, snapshot));
        self.out.push(Effect::Checkpoint { seq, state: d });
        if self.is_voter() {
            let c = self.sign(Checkpoint { epoch: self.epoch.number, seq, state: d });
            self.out.push(Effect::Broadcast(Message::Checkpoint(c.clone())));
            self.insert_checkpoint_vote(c);
        }
        self.check_stable(seq);
    }

    pub(super) fn on_checkpoint(&mut self, c: Signed<Checkpoint>) {
        let seq = c.body.seq;
        // Checkpoints far above our window are not kept: a replica that far behind catches up
        // through fetch and state transfer instead.
        let horizon = self.high_mark().saturating_add(self.params.log_window);
        if seq <= self.stable.seq {
            return self.ignore(Ignored::Stale);
        }
        if seq > horizon {
            return self.ignore(Ignored::TooFarAhead);
        }
        if !seq.is_multiple_of(self.params.checkpoint_interval) {
            return self.ignore(Ignored::Unsolicited);
        }
        // Certified by the epoch that ordered its seq (the boundary's by the previous epoch).
        let epoch = self.epoch_for(seq);
        if !self.verify_in(&epoch, &c) {
            return self.ignore(Ignored::BadSignature);
        }
        self.insert_checkpoint_vote(c);
        self.check_stable(seq);
    }

    fn insert_checkpoint_vote(&mut self, c: Signed<Checkpoint>) {
        let (from, seq) = (c.from, c.body.seq);
        if let Some(old) = self.checkpoints.votes.get(&seq).and_then(|m| m.get(&from)) {
            if old.body.state != c.body.state {
                let ev = crate::evidence::Evidence::CheckpointEquivocation(old.clone(), c);
                self.report(ev);
            }
            return;
        }
        if self.checkpoints.latest.get(&from).is_none_or(|(s, _)| *s < seq) {
            self.checkpoints.latest.insert(from, (seq, c.body.state));
        }
        self.checkpoints.votes.entry(seq).or_default().insert(from, c);
        let mine: Vec<Seq> =
            self.checkpoints.votes.iter().filter(|(_, m)| m.contains_key(&from)).map(|(s, _)| *s).collect();
        if mine.len() > CHECKPOINTS_PER_SENDER
            && let Some(m) = self.checkpoints.votes.get_mut(&mine[0])
        {
            m.remove(&from);
            if m.is_empty() {
                self.checkpoints.votes.remove(&mine[0]);
            }
        }
    }

    /// A quorum of matching CHECKPOINTs makes a checkpoint stable. If we did not execute that
    /// far, we are behind and fetch the state.
    fn check_stable(&mut self, seq: Seq) {
        let Some(votes) = self.checkpoints.votes.get(&seq) else { return };
        let mut by_digest: std::collections::BTreeMap<_, Vec<_>> = Default::default();
        for v in votes.values() {
            by_digest.entry(v.body.state).or_default().push(v.clone());
        }
        let Ok(quorum) = self.epoch_for(seq).quorum() else { return };
        let Some((state, proofs)) = by_digest.into_iter().find(|(_, v)| v.len() >= quorum.quorum()) else {
            return;
        };
        if self.adopt_checkpoint(CheckpointCert { seq, state, proofs }) {
            self.window_moved();
        }
    }

    /// Makes a certified checkpoint ours: stable if our own snapshot matches (returns true: the
    /// window moved), else fetch it.
    pub(super) fn adopt_checkpoint(&mut self, cert: CheckpointCert) -> bool {
        if cert.seq <= self.stable.seq {
            return false;
        }
        if self.checkpoints.snapshots.get(&cert.seq).is_some_and(|(d, _)| *d == cert.state) {
            self.make_stable(cert);
            return true;
        } else if self.checkpoints.transfer.as_ref().is_none_or(|t| t.seq < cert.seq) {
            // Give in-flight execution a moment unless the checkpoint is out of reach.
            let far = cert.seq > self.last_executed + self.params.max_inflight;
            self.checkpoints.transfer = Some(cert);
            if far {
                self.on_transfer_timer();
            } else {
                self.set_timer(Timer::StateTransfer, self.params.resend_interval_ms);
            }
        }
        false
    }

    /// After the low water mark moved: buffered messages may now fit, the primary may propose.
    pub(super) fn window_moved(&mut self) {
        self.replay_buffered();
        self.propose(false);
    }

    /// Stable: persist, advance the low water mark, garbage-collect below it.
    fn make_stable(&mut self, cert: CheckpointCert) {
        let seq = cert.seq;
        let snapshot = self.checkpoints.snapshots.get(&seq).map(|(_, s)| s.clone()).unwrap_or_default();
        self.out.push(Effect::Persist(Record::Stable { cert: cert.clone(), snapshot: snapshot.clone() }));
        self.out.push(Effect::Stable { seq, state: cert.state });
        self.boundary_stable(&cert, &snapshot);
        self.stable = cert;
        self.log.retain(|s, _| *s > seq);
        self.checkpoints.votes.retain(|s, _| *s > seq);
        self.checkpoints.snapshots.retain(|s, _| *s >= seq);
        self.signed.retain(|(_, _, _, s), _| *s > seq);
        if self.checkpoints.transfer.as_ref().is_some_and(|t| t.seq <= seq) {
            self.checkpoints.transfer = None;
        }
        self.next_seq = self.next_seq.max(seq + 1);
    }

    pub(super) fn on_transfer_timer(&mut self) {
        let Some(cert) = self.checkpoints.transfer.clone() else { return };
        if cert.seq <= self.last_executed {
            // Execution got there on its own.
            self.checkpoints.transfer = None;
            self.check_stable(cert.seq);
            return;
        }
        // Ask one signer at a time, rotating, so a faulty one cannot stall us.
        let signers: Vec<ReplicaId> = cert.proofs.iter().map(|p| p.from).filter(|f| *f != self.id).collect();
        if !signers.is_empty() {
            let to = signers[(self.checkpoints.transfer_attempt as usize) % signers.len()];
            self.checkpoints.transfer_attempt += 1;
            let req = self.sign(StateRequest { epoch: self.epoch.number, seq: cert.seq });
            self.out.push(Effect::Send { to, msg: Message::StateRequest(req) });
        }
        self.set_timer(Timer::StateTransfer, self.params.resend_interval_ms);
    }

    pub(super) fn on_state_request(&mut self, r: Signed<StateRequest>) {
        if self.stable.seq < r.body.seq {
            return self.ignore(Ignored::Unsolicited);
        }
        if !self.verify_signed(&r) {
            return self.ignore(Ignored::BadSignature);
        }
        if self.may_serve_heavy(r.from) {
            self.send_state(r.from);
        } else {
            self.ignore(Ignored::RateLimited);
        }
    }

    /// A snapshot or a NEW-VIEW is the largest thing we send: at most one per peer per resend
    /// interval, so a peer cannot turn requests into an amplification attack.
    pub(super) fn may_serve_heavy(&mut self, to: ReplicaId) -> bool {
        let last = self.catch_up.served_at.get(&to).copied();
        if last.is_some_and(|t| self.now < t.saturating_add(self.params.resend_interval_ms)) {
            return false;
        }
        self.catch_up.served_at.insert(to, self.now);
        true
    }

    fn send_state(&mut self, to: ReplicaId) {
        let Some((_, snapshot)) = self.checkpoints.snapshots.get(&self.stable.seq) else { return };
        if self.stable.seq == 0 || snapshot.len() > limits::MAX_MESSAGE_BYTES / 2 {
            return;
        }
        let resp = self.sign(StateResponse {
            epoch: self.epoch.number,
            cert: self.stable.clone(),
            snapshot: snapshot.clone(),
        });
        self.out.push(Effect::Send { to, msg: Message::StateResponse(resp) });
    }

    /// A snapshot is installed only if its digest matches a certificate we verified ourselves.
    pub(super) fn on_state_response(&mut self, r: Signed<StateResponse>) {
        let cert = &r.body.cert;
        if cert.seq <= self.last_executed {
            return self.ignore(Ignored::Stale);
        }
        if digest(&r.body.snapshot) != cert.state {
            return self.ignore(Ignored::DigestMismatch);
        }
        let mut items = Vec::new();
        let ok = self
            .with_ctx(|ctx, v| ctx.checkpoint_cert(cert, &mut items) && super::certs::all_valid(v, &items));
        if !ok {
            return self.ignore(Ignored::InvalidCertificate);
        }
        // Certified by a quorum yet undecodable: the quorum runs another version, or lies.
        let Ok(state) = State::<A>::restore(&r.body.snapshot) else {
            return self.ignore(Ignored::DigestMismatch);
        };
        let StateResponse { cert, snapshot, .. } = r.body;
        self.state = state;
        self.last_executed = cert.seq;
        self.checkpoints.snapshots.insert(cert.seq, (cert.state, snapshot));
        self.out.push(Effect::StateInstalled { seq: cert.seq, state: cert.state });
        self.prune_pool();
        // The installed state may be in a later epoch (a joiner learns its id here).
        self.sync_epoch();
        self.make_stable(cert);
        self.execute_ready();
        self.window_moved();
    }

    /// Retransmit what we signed for undecided slots; ask for decided slots we are missing.
    pub(super) fn on_resend_timer(&mut self) {
        self.set_timer(Timer::Resend, self.params.resend_interval_ms);
        // Execution is in order, so a slot that lost a message stops it at once. While it
        // advances, old undecided slots are only queued behind an overloaded pipeline:
        // resending their votes (and the primary its whole batches) then would multiply the
        // load that delays them.
        let stalled =
            self.now.saturating_sub(self.watch.last_progress_ms) >= self.params.resend_interval_ms / 2;
        if self.active && stalled {
            let mut msgs = Vec::new();
            let recent = self.now.saturating_sub(self.params.resend_interval_ms);
            for slot in self.log.range(self.stable.seq + 1..).map(|(_, s)| s) {
                // Decided slots need nothing; young ones are still in flight.
                if slot.decided.is_some() || slot.since_ms > recent {
                    continue;
                }
                if let (Some(pp), Some(b)) = (&slot.pre_prepare, &slot.batch)
                    && pp.from == self.id
                {
                    msgs.push(Message::PrePrepare(pp.clone(), b.clone()));
                }
                for v in slot.prepares.get(&self.id).into_iter().chain(slot.commits.get(&self.id)) {
                    msgs.push(Message::Vote(v.clone()));
                }
            }
            self.out.extend(msgs.into_iter().map(Effect::Broadcast));
            // Batches of re-proposals still missing: ask everyone (the members first asked
            // may have lost the request, or the answer).
            let others: Vec<ReplicaId> =
                self.epoch.voters.iter().copied().filter(|v| *v != self.id).collect();
            self.request_batches(&others);
        } else if !self.active {
            self.rebroadcast_lower_view_changes();
            self.broadcast_view_change();
        }
        if let Some((seq, (d, _))) =
            self.checkpoints.snapshots.iter().next_back().map(|(s, v)| (*s, v.clone()))
            && seq > 0
        {
            let epoch = self.epoch_for(seq);
            if epoch.is_voter(self.id) {
                let c = self.sign(Checkpoint { epoch: epoch.number, seq, state: d });
                self.out.push(Effect::Broadcast(Message::Checkpoint(c)));
            }
        }
        self.push_boundary_to_silent_joiners();
        // An idle replica probes one peer per tick (rotating): a peer that is ahead answers
        // with commit certificates, its NEW-VIEW or its state, so a replica that restarted or
        // missed the last messages of a burst catches up even when no new traffic arrives.
        if self.last_executed == self.catch_up.executed_at_last_tick {
            self.send_fetch();
        }
        self.catch_up.executed_at_last_tick = self.last_executed;
    }

    fn send_fetch(&mut self) {
        let others: Vec<ReplicaId> = self.epoch.voters.iter().copied().filter(|v| *v != self.id).collect();
        if others.is_empty() || !self.is_voter() {
            return;
        }
        self.catch_up.fetch_round += 1;
        let to = others[(self.id as u64 + self.catch_up.fetch_round) as usize % others.len()];
        let f = self.sign(Fetch { epoch: self.epoch.number, after: self.last_executed, view: self.view });
        self.out.push(Effect::Send { to, msg: Message::Fetch(f) });
    }

    /// Answer a catch-up request with commit certificates, or our stable state if the requester
    /// is below our garbage-collected log.
    pub(super) fn on_fetch(&mut self, f: Signed<Fetch>) {
        if f.body.epoch < self.epoch.number {
            return self.on_old_epoch_fetch(f);
        }
        if !self.verify_signed(&f) {
            return self.ignore(Ignored::BadSignature);
        }
        let after = f.body.after;
        // The heavy answers (a NEW-VIEW, a snapshot) go to each peer at most once per resend
        // interval, so a peer cannot turn fetches into an amplification attack.
        let last = self.catch_up.served_at.get(&f.from).copied();
        let heavy_ok = last.is_none_or(|t| self.now >= t.saturating_add(self.params.resend_interval_ms));
        if heavy_ok && (f.body.view < self.view || after < self.stable.seq) {
            self.catch_up.served_at.insert(f.from, self.now);
            if f.body.view < self.view
                && let Some(nv) = self.vc.last_new_view.clone()
            {
                self.out.push(Effect::Send { to: f.from, msg: Message::NewView(nv) });
            }
            if after < self.stable.seq {
                self.send_state(f.from);
            }
        }
        let from = after.max(self.stable.seq).saturating_add(1);
        let to = after.saturating_add(limits::MAX_FETCH);
        if from > to {
            return;
        }
        // Up to 32 certificates (with their batches) per answer: an honest replica fetches once
        // per resend interval from one peer in turn, so a member is answered at most twice per
        // interval and a FETCH loop buys no more.
        let last = self.catch_up.fetches_served_at.get(&f.from).copied();
        if last.is_some_and(|t| self.now < t.saturating_add(self.params.resend_interval_ms / 2)) {
            return self.ignore(Ignored::RateLimited);
        }
        self.catch_up.fetches_served_at.insert(f.from, self.now);
        let certs: Vec<CommitCert> =
            self.log.range(from..=to).filter_map(|(_, s)| s.decided.clone()).collect();
        for c in certs {
            self.out.push(Effect::Send { to: f.from, msg: Message::Committed(c) });
        }
    }

    /// A decided slot proven by a quorum of COMMITs: execute it, in any view status.
    pub(super) fn on_commit_cert(&mut self, c: CommitCert) {
        let Some(first) = c.commits.first() else { return self.ignore(Ignored::InvalidCertificate) };
        let seq = first.body.seq;
        if seq <= self.last_executed || seq <= self.stable.seq {
            return self.ignore(Ignored::Stale);
        }
        if seq > self.high_mark() {
            return self.ignore(Ignored::TooFarAhead);
        }
        if self.log.get(&seq).is_some_and(|s| s.decided.is_some()) {
            return self.ignore(Ignored::Duplicate);
        }
        let valid = { self.with_ctx(|ctx, v| ctx.commit_cert(&c, v)) };
        if !valid {
            return self.ignore(Ignored::InvalidCertificate);
        }
        self.cross_check(None, &c.commits);
        // The slot counts votes of this replica's view; the certificate's view may be another.
        let view = self.view;
        let slot = self.log.entry(seq).or_insert_with(|| super::slot::Slot::new(view));
        // `commit_cert` checked that the batch hashes to the digest the commits vote for.
        slot.set_batch(c.batch.clone(), first.body.digest, Vec::new());
        slot.decided = Some(c);
        self.execute_ready();
    }
}
