//! The replica: its state, input dispatch and the normal case of PBFT.

use super::accusations::Reports;
use super::certs::{CertContext, all_valid};
use super::checkpoint::{CatchUp, Checkpoints};
use super::ignored::Ignored;
use super::pool::{Pool, RequestDigests};
use super::reconfig::Handover;
use super::reputation::{PeerStats, Reputation};
use super::requests::PrimaryWatch;
use super::slot::Slot;
use super::view_change::ViewChanges;
use super::{Config, Effect, Epoch, Input, Params, Record, SignatureVerifier, Timer, ViewChangeCause};
use crate::application::Application;
use crate::evidence::{Accusation, Evidence};
use crate::quorum::Quorum;
use crate::state::State;
use crate::wire::{
    Batch, Body, CheckpointCert, EpochNo, Kind, Message, Phase, PrePrepare, ReplicaId, Seq, Signed, View,
    Vote,
};
use phalanx_crypto::{Digest, Keypair};
use std::collections::{BTreeMap, VecDeque};

/// Where the replica stands, for hosts and dashboards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub id: ReplicaId,
    pub epoch: u64,
    pub view: View,
    pub primary: ReplicaId,
    /// False while changing to `view_change_target`.
    pub active: bool,
    pub view_change_target: View,
    pub last_executed: Seq,
    pub stable_checkpoint: Seq,
    pub state_digest: Digest,
    pub pending_requests: usize,
    /// Messages dropped without effect, by reason.
    pub ignored: BTreeMap<Ignored, u64>,
}

pub struct Replica<A: Application> {
    pub(super) id: ReplicaId,
    pub(super) key: Keypair,
    pub(super) cluster: Digest,
    pub(super) epoch: Epoch,
    pub(super) quorum: Quorum,
    pub(super) params: Params,
    pub(super) verifier: Box<dyn SignatureVerifier>,
    pub(super) genesis_state: Digest,
    pub(super) now: u64,
    pub(super) out: Vec<Effect>,

    // Views.
    pub(super) view: View,
    pub(super) active: bool,
    pub(super) vc_target: View,
    /// What view changes need between inputs (owned by `view_change.rs`).
    pub(super) vc: ViewChanges,

    // The log.
    pub(super) log: BTreeMap<Seq, Slot>,
    pub(super) next_seq: Seq,
    pub(super) last_executed: Seq,
    /// What this replica signed per (epoch, kind, view, seq): it never signs a second digest.
    pub(super) signed: BTreeMap<(EpochNo, Kind, View, Seq), Digest>,
    /// Messages for a later view or above the high water mark, per sender, bounded.
    pub(super) future: BTreeMap<ReplicaId, SenderBuffer>,

    // Checkpoints and state.
    pub(super) state: State<A>,
    pub(super) stable: CheckpointCert,
    /// Checkpoint votes and state transfer (owned by `checkpoint.rs`).
    pub(super) checkpoints: Checkpoints,
    /// Handing the epoch's boundary state to joiners (owned by `reconfig.rs`).
    pub(super) handover: Handover,

    // Clients.
    pub(super) pool: Pool,
    /// Watching the primary for progress (owned by `requests.rs`).
    pub(super) watch: PrimaryWatch,
    pub(super) batch_timer_armed: bool,

    /// Catching up and helping others catch up (owned by `checkpoint.rs`).
    pub(super) catch_up: CatchUp,

    // Accountability.
    /// The member whose authenticated link carried the message being handled.
    pub(super) link: Option<ReplicaId>,
    /// Evidence reported and accusations made (owned by `accusations.rs`).
    pub(super) reports: Reports,
    /// What this replica observed of each member.
    pub(super) peers: Vec<PeerStats>,
    /// Proposals refused for a timestamp outside the clock skew bound.
    pub(super) clock_refusals: u64,
    /// Messages dropped without effect, by reason.
    pub(super) ignored: BTreeMap<Ignored, u64>,
    /// The state digest at an executed seq: hashing the whole state is paid once per seq, however
    /// often hosts ask for the status (an HTTP poller must not make the loop hash megabytes per
    /// request).
    digest_cache: std::cell::Cell<Option<(Seq, Digest)>>,
}

/// Early messages from one sender, bounded by count and by encoded size.
#[derive(Default)]
pub(super) struct SenderBuffer {
    pub(super) queue: VecDeque<(usize, Message)>,
    pub(super) bytes: usize,
}

/// Evidence keys remembered for deduplication.
pub(super) const EVIDENCE_MEMORY: usize = 4096;

impl<A: Application> Replica<A> {
    /// Id of a replica that is not (yet) a member: a joiner on standby until it installs the
    /// state of the epoch that admits it.
    pub const STANDBY: ReplicaId = ReplicaId::MAX;

    /// A fresh replica at genesis (`id` is [`Replica::STANDBY`] for an agent that is not in
    /// genesis). The configuration must have passed [`Config::validate`].
    pub fn new(id: ReplicaId, key: Keypair, config: Config<A>, verifier: Box<dyn SignatureVerifier>) -> Self {
        #[allow(clippy::expect_used, reason = "a documented precondition: Config::validate refuses n < 3f+1")]
        let quorum = config.epoch.quorum().expect("Config::validate refuses n < 3f+1");
        let state = config.genesis_state();
        let n = config.epoch.members.len();
        let genesis_state = state.digest();
        let snapshots = BTreeMap::from([(0, (genesis_state, state.snapshot()))]);
        Replica {
            id,
            key,
            cluster: config.cluster_id,
            epoch: config.epoch,
            quorum,
            params: config.params,
            verifier,
            genesis_state,
            now: 0,
            out: Vec::new(),
            view: 0,
            active: true,
            vc_target: 0,
            vc: ViewChanges::default(),
            log: BTreeMap::new(),
            next_seq: 1,
            last_executed: 0,
            signed: BTreeMap::new(),
            future: BTreeMap::new(),
            state,
            stable: CheckpointCert { seq: 0, state: genesis_state, proofs: Vec::new() },
            checkpoints: Checkpoints { snapshots, ..Checkpoints::default() },
            catch_up: CatchUp::default(),
            watch: PrimaryWatch::default(),
            handover: Handover::default(),
            pool: Pool::default(),
            batch_timer_armed: false,
            reports: Reports::default(),
            link: None,
            peers: vec![PeerStats::default(); n],
            clock_refusals: 0,
            ignored: BTreeMap::new(),
            digest_cache: std::cell::Cell::new(None),
        }
    }

    /// Arms the periodic timer; call once after `new` or `recover`.
    pub fn start(&mut self, now: u64) -> Vec<Effect> {
        self.now = now;
        self.set_timer(Timer::Resend, self.params.resend_interval_ms);
        if !self.active {
            self.broadcast_view_change();
        }
        self.check_invariants();
        std::mem::take(&mut self.out)
    }

    pub fn handle(&mut self, now: u64, input: Input) -> Vec<Effect> {
        self.now = self.now.max(now);
        match input {
            Input::Message(m) => self.on_message(m),
            Input::FromPeer(from, m) => {
                self.link = Some(from);
                self.on_message(m);
                self.link = None;
            }
            Input::Timeout(t) => self.on_timeout(t),
        }
        self.check_invariants();
        std::mem::take(&mut self.out)
    }

    // ----- accessors -----

    pub fn id(&self) -> ReplicaId {
        self.id
    }
    pub fn view(&self) -> View {
        self.view
    }
    /// The view this replica is changing to (its current view while it is active).
    pub fn view_change_target(&self) -> View {
        if self.active { self.view } else { self.vc_target.max(self.view) }
    }
    pub fn is_active(&self) -> bool {
        self.active
    }
    pub fn last_executed(&self) -> Seq {
        self.last_executed
    }
    pub fn state(&self) -> &State<A> {
        &self.state
    }
    pub fn stable_seq(&self) -> Seq {
        self.stable.seq
    }
    /// The commit certificate (2f+1 COMMITs and the batch) of a decided seq still in the log.
    pub fn commit_cert(&self, seq: Seq) -> Option<&crate::wire::CommitCert> {
        self.log.get(&seq).and_then(|s| s.decided.as_ref())
    }
    pub fn stable_cert(&self) -> &CheckpointCert {
        &self.stable
    }
    /// This replica's signing key (a testing node's injected fault signs with it too).
    pub fn keypair(&self) -> &Keypair {
        &self.key
    }
    pub fn cluster(&self) -> Digest {
        self.cluster
    }
    /// The epoch this replica orders in (its voters are whom it broadcasts to).
    pub fn epoch(&self) -> &Epoch {
        &self.epoch
    }
    /// Whether this replica votes in its current epoch (joiners on standby and removed members
    /// do not).
    pub fn is_voter(&self) -> bool {
        self.epoch.is_voter(self.id)
    }
    pub fn primary(&self) -> ReplicaId {
        self.epoch.primary(self.view)
    }
    pub fn is_primary(&self) -> bool {
        self.primary() == self.id
    }
    /// Whom an [`Effect::Broadcast`] goes to: the epoch's voters but this replica. Every host
    /// (node and simulator) asks here, so none can broadcast to a different set.
    pub fn broadcast_targets(&self) -> Vec<ReplicaId> {
        self.epoch.voters.iter().copied().filter(|v| *v != self.id).collect()
    }
    /// Proposals refused because their timestamp was outside the clock skew bound.
    pub fn clock_refusals(&self) -> u64 {
        self.clock_refusals
    }
    pub fn log_len(&self) -> usize {
        self.log.len()
    }
    pub fn buffered(&self) -> usize {
        self.future.values().map(|b| b.queue.len()).sum()
    }
    /// Each member's reputation: this replica's observations and the committed record.
    pub fn reputations(&self) -> Vec<Reputation> {
        let acc = &self.state.accountability;
        self.epoch
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let record = acc.members.get(&m.key).cloned().unwrap_or_default();
                let seen = self.peers.get(i).cloned().unwrap_or_default();
                Reputation::new(&seen, &record, acc.is_quarantined(&m.key))
            })
            .collect()
    }

    pub fn status(&self) -> ReplicaStatus {
        ReplicaStatus {
            id: self.id,
            epoch: self.epoch.number,
            view: self.view,
            primary: self.primary(),
            active: self.active,
            view_change_target: self.vc_target,
            last_executed: self.last_executed,
            stable_checkpoint: self.stable.seq,
            state_digest: self.state_digest(),
            pending_requests: self.pool.len(),
            ignored: self.ignored.clone(),
        }
    }

    /// The digest of the state as executed up to `last_executed`, computed at most once per seq.
    pub fn state_digest(&self) -> Digest {
        match self.digest_cache.get() {
            Some((seq, d)) if seq == self.last_executed => d,
            _ => {
                let d = self.state.digest();
                self.digest_cache.set(Some((self.last_executed, d)));
                d
            }
        }
    }

    // ----- helpers shared by the other modules -----

    /// Drops the message being handled, counting why.
    pub(super) fn ignore(&mut self, why: Ignored) {
        *self.ignored.entry(why).or_default() += 1;
    }

    pub(super) fn low_mark(&self) -> Seq {
        self.stable.seq
    }
    pub(super) fn high_mark(&self) -> Seq {
        self.stable.seq + self.params.log_window
    }

    /// Runs `f` with the certificate context of our epoch and our signature verifier.
    pub(super) fn with_ctx<R>(
        &mut self,
        f: impl FnOnce(&CertContext<'_>, &mut dyn SignatureVerifier) -> R,
    ) -> R {
        let ctx = CertContext {
            cluster: &self.cluster,
            epoch: &self.epoch,
            history: &self.state.accountability.epochs,
            quorum: self.quorum,
            params: &self.params,
            genesis_state: self.genesis_state,
        };
        f(&ctx, self.verifier.as_mut())
    }

    pub(super) fn set_timer(&mut self, timer: Timer, after_ms: u64) {
        self.out.push(Effect::SetTimer { timer, after_ms });
    }

    pub(super) fn sign<T: Body>(&self, body: T) -> Signed<T> {
        Signed::sign(body, self.id, &self.key, &self.cluster)
    }

    /// Checks one signed message from a voter of the current epoch.
    pub(super) fn verify_signed<T: Body>(&mut self, m: &Signed<T>) -> bool {
        let epoch = self.epoch.clone();
        self.verify_in(&epoch, m)
    }

    /// Checks one signed message from a voter of `epoch`, signed in that epoch.
    pub(super) fn verify_in<T: Body>(&mut self, epoch: &Epoch, m: &Signed<T>) -> bool {
        if m.from == self.id {
            return false;
        }
        let Some(item) = super::certs::voter_item(epoch, m, &self.cluster) else { return false };
        let ok = all_valid(self.verifier.as_mut(), &[item]);
        // Only a message on the signer's own authenticated link says something about the signer:
        // anyone can put any sender id on a message they relay.
        if self.link == Some(m.from) {
            let stats = &mut self.peers[m.from as usize];
            if ok {
                stats.messages_verified += 1;
            } else {
                stats.messages_failed += 1;
                self.accuse(m.from, Accusation::BadSignature, 0);
            }
        }
        ok
    }

    /// Keeps a message we cannot use yet (later view, above the window), bounded per sender by
    /// count and bytes: the oldest go first.
    pub(super) fn buffer(&mut self, from: ReplicaId, m: Message) {
        if !self.epoch.is_voter(from) || from == self.id {
            return;
        }
        let size = crate::wire::encoded_len(&m);
        let (max_count, max_bytes) =
            (self.params.max_buffered_per_sender, self.params.max_buffered_bytes_per_sender);
        if size > max_bytes {
            return;
        }
        let b = self.future.entry(from).or_default();
        while b.queue.len() >= max_count || b.bytes + size > max_bytes {
            match b.queue.pop_front() {
                Some((s, _)) => b.bytes -= s,
                None => break,
            }
        }
        b.bytes += size;
        b.queue.push_back((size, m));
    }

    /// Re-handles buffered messages after the view or the window moved.
    pub(super) fn replay_buffered(&mut self) {
        let buffered = std::mem::take(&mut self.future);
        for (_, b) in buffered {
            for (_, m) in b.queue {
                self.on_message(m);
            }
        }
    }

    /// Records what we are about to sign; refuses to sign a second digest for one slot.
    pub(super) fn may_sign(&mut self, kind: Kind, view: View, seq: Seq, d: Digest) -> bool {
        if !self.is_voter() {
            return false;
        }
        let key = (self.epoch.number, kind, view, seq);
        match self.signed.get(&key) {
            Some(old) => *old == d,
            None => {
                self.signed.insert(key, d);
                true
            }
        }
    }

    pub(super) fn slot(&mut self, seq: Seq) -> &mut Slot {
        let (view, now) = (self.view, self.now);
        let s = self.log.entry(seq).or_insert_with(|| Slot { since_ms: now, ..Slot::new(view) });
        if view > s.view {
            s.enter_view(view);
            s.since_ms = now;
        }
        s
    }

    // ----- dispatch -----

    pub(super) fn on_message(&mut self, m: Message) {
        // A quarantined member's messages are ignored (its requests as a client too).
        if let Message::Request(r) = &m
            && self.state.accountability.is_quarantined(&r.body.client)
        {
            return self.ignore(Ignored::Quarantined);
        }
        let signer = m.signer();
        if signer.is_some_and(|id| self.quarantined(id)) || self.link.is_some_and(|id| self.quarantined(id)) {
            return self.ignore(Ignored::Quarantined);
        }
        match m {
            Message::Request(r) => self.on_request(r),
            Message::PrePrepare(pp, b) => self.on_pre_prepare(pp, b),
            Message::Vote(v) => self.on_vote(v),
            Message::Checkpoint(c) => self.on_checkpoint(c),
            Message::ViewChange(vc) => self.on_view_change(vc),
            Message::NewView(nv) => self.on_new_view(nv),
            Message::StateRequest(r) => self.on_state_request(r),
            Message::StateResponse(r) => self.on_state_response(r),
            Message::Fetch(f) => self.on_fetch(f),
            Message::Committed(c) => self.on_commit_cert(c),
            Message::BatchRequest(r) => self.on_batch_request(r),
            Message::Batch(seq, b) => self.on_batch(seq, b),
        }
    }

    fn on_timeout(&mut self, t: Timer) {
        match t {
            Timer::Batch => {
                self.batch_timer_armed = false;
                self.propose(true);
            }
            Timer::Request => self.on_request_timer(),
            Timer::ViewChange => self.on_view_change_timer(),
            Timer::Resend => self.on_resend_timer(),
            Timer::StateTransfer => self.on_transfer_timer(),
        }
    }

    // ----- primary -----

    /// Cuts batches while the window allows: full batches at once, a partial one when `force`
    /// (the batch delay expired) or when nothing is in flight.
    pub(super) fn propose(&mut self, force: bool) {
        if !self.active || !self.is_primary() || self.checkpoints.transfer.is_some() {
            return;
        }
        // Slots above a scheduled reconfiguration's boundary would be void: stop there.
        let boundary = self.state.accountability.pending(self.last_executed).map_or(Seq::MAX, |e| e.start);
        loop {
            let limit = self.high_mark().min(self.last_executed + self.params.max_inflight).min(boundary);
            let waiting = self.pool.unproposed();
            if self.next_seq > limit {
                return;
            }
            if waiting == 0 {
                // A scheduled epoch must start even if no client sends anything: pad with empty
                // batches up to its boundary.
                if boundary == Seq::MAX {
                    return;
                }
                let seq = self.next_seq;
                self.next_seq += 1;
                let empty = Batch { timestamp_ms: self.now, requests: Vec::new().into() };
                self.send_pre_prepare(seq, empty, RequestDigests::default());
                continue;
            }
            // Batch only behind an instance in flight: an idle pipeline proposes at once, so a
            // lone request does not wait out the batch delay (Nagle's rule).
            let in_flight = self.next_seq > self.last_executed + 1;
            if waiting < self.params.batch_size && !force && in_flight {
                if !self.batch_timer_armed {
                    self.batch_timer_armed = true;
                    self.set_timer(Timer::Batch, self.params.batch_delay_ms);
                }
                return;
            }
            // The pool hashed each request on arrival: the batch digest needs only those.
            // Cut by bytes too: a batch over the frame limit would never reach anyone, and every
            // next primary would cut the same one.
            let (requests, digests) =
                self.pool.take_batch(self.params.batch_size, crate::wire::limits::MAX_BATCH_BYTES);
            let batch = Batch { timestamp_ms: self.now, requests: requests.into() };
            let seq = self.next_seq;
            self.next_seq += 1;
            self.send_pre_prepare(seq, batch, digests);
        }
    }

    /// Proposes `batch`, whose requests have `digests`, at `seq`.
    pub(super) fn send_pre_prepare(&mut self, seq: Seq, batch: Batch, digests: RequestDigests) {
        self.watch.last_proposal_ms = self.now;
        let d = Batch::digest_over(batch.timestamp_ms, &digests.requests);
        if !self.may_sign(Kind::PrePrepare, self.view, seq, d) {
            return;
        }
        let pp = self.sign(PrePrepare { epoch: self.epoch.number, view: self.view, seq, digest: d });
        self.out.push(Effect::Persist(Record::PrePrepare(pp.clone(), Some(batch.clone()))));
        self.out.push(Effect::Broadcast(Message::PrePrepare(pp.clone(), batch.clone())));
        let slot = self.slot(seq);
        slot.pre_prepare = Some(pp);
        slot.set_batch(batch, d, digests.ops);
        self.advance(seq);
    }

    // ----- backups -----

    /// Where a message for (view, seq) stands relative to our view and window.
    fn placement(&self, view: View, seq: Seq) -> Placement {
        if seq <= self.low_mark() || seq <= self.epoch.start || view < self.view {
            Placement::Stale
        } else if view > self.view || !self.active || seq > self.high_mark() {
            // Worth keeping only if it is for the next view and just above the window.
            let next_view = self.view.max(self.vc_target).saturating_add(1);
            if view > next_view || seq > self.high_mark().saturating_add(self.params.log_window) {
                Placement::Stale
            } else {
                Placement::Early
            }
        } else {
            Placement::Now
        }
    }

    fn on_pre_prepare(&mut self, pp: Signed<PrePrepare>, batch: Batch) {
        let b = &pp.body;
        if b.epoch != self.epoch.number {
            return self.ignore(Ignored::OtherEpoch);
        }
        if pp.from != self.epoch.primary(b.view) || pp.from == self.id {
            return self.ignore(Ignored::WrongSender);
        }
        let placement = self.placement(b.view, b.seq);
        if matches!(placement, Placement::Stale) {
            return self.ignore(Ignored::Stale);
        }
        // The batch digest is built from its requests' digests; requests already pending here
        // were hashed on arrival.
        let digests = RequestDigests::of(&batch.requests, &self.pool);
        if Batch::digest_over(batch.timestamp_ms, &digests.requests) != b.digest {
            return self.ignore(Ignored::DigestMismatch);
        }
        if !self.verify_signed(&pp) {
            return self.ignore(Ignored::BadSignature);
        }
        if matches!(placement, Placement::Early) {
            return self.buffer(pp.from, Message::PrePrepare(pp, batch));
        }
        let seq = b.seq;
        if let Some(old) = self.slot(seq).pre_prepare.clone() {
            if old.body.digest != pp.body.digest {
                self.report(Evidence::ProposalEquivocation(old, pp));
                self.start_view_change(self.view.saturating_add(1), ViewChangeCause::ProposalEquivocation);
            } else {
                // The primary resending a re-proposal brings the batch we may be waiting for.
                self.on_batch(seq, batch);
            }
            return;
        }
        // Every request must carry its client's valid signature (verify those we have not seen),
        // and an unsigned opaque payload belongs only in a cluster that orders them: executed
        // elsewhere it would be rejected under an honest client's (client, nonce), a silent way
        // to censor that client.
        let unseen: Vec<_> = batch
            .requests
            .iter()
            .zip(&digests.requests)
            .filter(|(_, d)| !self.pool.contains(d))
            .filter_map(|(r, _)| r.verify_item(&self.cluster))
            .collect();
        let opaque_refused = !self.state.accepts_opaque() && batch.requests.iter().any(|r| r.is_opaque());
        if opaque_refused || batch.oversized() || !all_valid(self.verifier.as_mut(), &unseen) {
            self.report(Evidence::InvalidProposal(pp, batch));
            self.start_view_change(self.view.saturating_add(1), ViewChangeCause::InvalidProposal);
            return;
        }
        // The batch's timestamp drives the replicated clock (quarantine expiry, memory TTLs,
        // federated deadlines): one too far either side of ours gets no PREPARE, so a primary
        // can neither freeze that clock nor jump it. Its requests stay unproposed here and the
        // proposal is no sign of progress, so the request timer suspects such a primary.
        let skew = self.params.max_clock_skew_ms;
        if batch.timestamp_ms > self.now.saturating_add(skew)
            || batch.timestamp_ms.saturating_add(skew) < self.now
        {
            self.clock_refusals += 1;
            return self.ignore(Ignored::ClockSkew);
        }
        // The batch digest was checked above.
        self.accept_with_digests(pp, Some((batch, digests)));
    }

    /// Stores a verified pre-prepare and votes PREPARE for it (backups only). A re-proposal
    /// may come without its batch (this replica never received it): the batch is asked for,
    /// and COMMIT waits for it.
    pub(super) fn accept_pre_prepare(&mut self, pp: Signed<PrePrepare>, batch: Option<Batch>) {
        let checked = batch.and_then(|batch| {
            let digests = RequestDigests::of(&batch.requests, &self.pool);
            let matches = Batch::digest_over(batch.timestamp_ms, &digests.requests) == pp.body.digest;
            matches.then_some((batch, digests))
        });
        self.accept_with_digests(pp, checked);
    }

    /// `accept_pre_prepare` with a batch already checked against the pre-prepare's digest, and
    /// its request digests.
    fn accept_with_digests(&mut self, pp: Signed<PrePrepare>, batch: Option<(Batch, RequestDigests)>) {
        self.watch.last_proposal_ms = self.now;
        let seq = pp.body.seq;
        if let Some(p) = self.peers.get_mut(pp.from as usize) {
            p.proposals_made += 1;
        }
        if let Some((_, digests)) = &batch {
            for d in &digests.requests {
                self.pool.mark_proposed(d);
            }
        }
        let d = pp.body.digest;
        let slot = self.slot(seq);
        slot.pre_prepare = Some(pp);
        if slot.decided.is_none()
            && let Some((batch, digests)) = batch
        {
            slot.set_batch(batch, d, digests.ops);
        }
        // A slot this replica already decided (a re-proposal after a view change) needs no vote
        // from it: a peer that still votes is answered with the commit certificate instead.
        // After a view change that re-proposes a hundred executed slots, this spares every
        // replica two signatures per slot and n² checks of them.
        let decided = slot.decided_as(d).is_some();
        if !self.is_primary() && !decided {
            self.send_vote(Phase::Prepare, seq, d);
        }
        self.advance(seq);
    }

    pub(super) fn send_vote(&mut self, phase: Phase, seq: Seq, d: Digest) {
        let vote = Vote { phase, epoch: self.epoch.number, view: self.view, seq, digest: d };
        if !self.may_sign(vote.kind(), self.view, seq, d) {
            return;
        }
        let vote = self.sign(vote);
        self.out.push(Effect::Persist(Record::Vote(vote.clone())));
        self.out.push(Effect::Broadcast(Message::Vote(vote.clone())));
        let slot = self.slot(seq);
        match phase {
            Phase::Prepare => slot.sent_prepare = true,
            Phase::Commit => slot.sent_commit = true,
        }
        slot.insert_vote(vote);
    }

    fn on_vote(&mut self, v: Signed<Vote>) {
        let b = &v.body;
        if b.epoch != self.epoch.number {
            return self.ignore(Ignored::OtherEpoch);
        }
        // The primary's pre-prepare is its prepare; a PREPARE from it is never counted.
        if v.from == self.id || (b.phase == Phase::Prepare && v.from == self.epoch.primary(b.view)) {
            return self.ignore(Ignored::WrongSender);
        }
        let placement = self.placement(b.view, b.seq);
        if matches!(placement, Placement::Stale) {
            return self.ignore(Ignored::Stale);
        }
        if !self.verify_signed(&v) {
            return self.ignore(Ignored::BadSignature);
        }
        if matches!(placement, Placement::Early) {
            // Verified first, so nobody can push a member's real early votes out of its buffer.
            return self.buffer(v.from, Message::Vote(v));
        }
        let (seq, from, now) = (b.seq, v.from, self.now);
        let slot = self.slot(seq);
        let since = slot.since_ms;
        // A PREPARE for a slot decided in an earlier view comes from a peer that has not decided
        // it: the certificate settles it at once (once per peer and view).
        let answer = (b.phase == Phase::Prepare)
            .then(|| {
                slot.decided_as(b.digest)
                    .filter(|c| c.commits.first().is_some_and(|f| f.body.view < b.view))
                    .cloned()
            })
            .flatten()
            .filter(|_| slot.certified.insert(from));
        if let Some(ev) = slot.insert_vote(v) {
            self.report(ev);
        }
        if let Some(cert) = answer {
            self.out.push(Effect::Send { to: from, msg: Message::Committed(cert) });
        }
        if let Some(p) = self.peers.get_mut(from as usize) {
            p.response(now.saturating_sub(since));
        }
        self.advance(seq);
    }

    /// Moves a slot forward: prepared → COMMIT; committed-local → execute in order.
    pub(super) fn advance(&mut self, seq: Seq) {
        let primary = self.epoch.primary(self.view);
        let (need_p, need_c) = (self.quorum.prepares(), self.quorum.quorum());
        let Some(slot) = self.log.get_mut(&seq) else { return };
        let Some(d) = slot.digest() else { return };
        // COMMIT waits for the batch (a re-proposal may name one still being fetched): it
        // promises a durable prepared certificate, batch included, so every decided batch is
        // held by a quorum and can be given to those that lack it.
        if !slot.sent_commit
            && slot.matching(Phase::Prepare, Some(primary)) >= need_p
            && let Some(batch) = slot.batch_for(d).cloned()
            // A slot has a digest only once it holds the pre-prepare that names it.
            && let Some(pre_prepare) = slot.pre_prepare.clone()
        {
            let cert = crate::wire::PreparedCert {
                pre_prepare,
                prepares: slot.matching_votes(Phase::Prepare, Some(primary)),
            };
            slot.prepared = Some(cert.clone());
            slot.prepared_batch = Some(batch.clone());
            self.out.push(Effect::Persist(Record::Prepared(cert, batch)));
            self.send_vote(Phase::Commit, seq, d);
        }
        let Some(slot) = self.log.get_mut(&seq) else { return };
        if slot.decided.is_none()
            && slot.sent_commit
            && slot.matching(Phase::Commit, None) >= need_c
            && let Some(batch) = slot.batch_for(d).cloned()
        {
            let commits = slot.matching_votes(Phase::Commit, None);
            let votes: Vec<(ReplicaId, bool)> = slot
                .prepares
                .values()
                .chain(slot.commits.values())
                .map(|v| (v.from, v.body.digest == d))
                .collect();
            slot.decided = Some(crate::wire::CommitCert { commits, batch });
            for (from, agrees) in votes {
                if let Some(p) = self.peers.get_mut(from as usize) {
                    if agrees {
                        p.votes_agreeing += 1;
                    } else {
                        p.votes_conflicting += 1;
                    }
                }
            }
            self.execute_ready();
        }
    }
}

enum Placement {
    Stale,
    Early,
    Now,
}
