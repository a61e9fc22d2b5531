//! View change: VIEW-CHANGE, the f+1 rule, NEW-VIEW and its recomputation by backups.

use super::ignored::Ignored;
use super::replica::Replica;
use super::slot::Slot;
use super::{Effect, Record, Timer};
use crate::application::Application;
use crate::evidence::Evidence;
use crate::new_view::{NewViewPlan, plan_new_view};
use crate::wire::{Kind, Message, NewView, PrePrepare, ReplicaId, Seq, Signed, View, ViewChange};
use std::collections::BTreeMap;

/// VIEW-CHANGEs kept per member (its latest views).
const VIEW_CHANGES_PER_SENDER: usize = 4;
/// Views further ahead than this are ignored: view numbers grow by one per timeout, so no honest
/// member gets there, and a faulty one cannot push view arithmetic towards overflow.
pub(super) const MAX_VIEW_GAP: View = 1 << 20;

/// Why a replica left its view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViewChangeCause {
    /// No view was left yet (the replica started in its view).
    #[default]
    Startup,
    /// Requests waited a full timeout without the primary making progress.
    RequestTimeout,
    /// The primary proposed two batches for one seq.
    ProposalEquivocation,
    /// The primary proposed a batch no honest primary would (bad client signatures, oversized,
    /// opaque payloads where they are refused).
    InvalidProposal,
    /// f+1 members asked for later views, so at least one honest member did.
    WeakQuorum,
    /// The new primary did not complete the view change in time.
    ViewChangeTimeout,
    /// The NEW-VIEW awaited did not follow from its own VIEW-CHANGEs.
    InvalidNewView,
    /// The primary was quarantined.
    Quarantine,
    /// The primary of the view being changed to was quarantined meanwhile.
    PrimaryQuarantined,
    /// The operator forced a view change.
    Operator,
    /// A new epoch began at its boundary.
    Reconfiguration,
}

impl ViewChangeCause {
    pub const ALL: [ViewChangeCause; 11] = [
        ViewChangeCause::Startup,
        ViewChangeCause::RequestTimeout,
        ViewChangeCause::ProposalEquivocation,
        ViewChangeCause::InvalidProposal,
        ViewChangeCause::WeakQuorum,
        ViewChangeCause::ViewChangeTimeout,
        ViewChangeCause::InvalidNewView,
        ViewChangeCause::Quarantine,
        ViewChangeCause::PrimaryQuarantined,
        ViewChangeCause::Operator,
        ViewChangeCause::Reconfiguration,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ViewChangeCause::Startup => "startup",
            ViewChangeCause::RequestTimeout => "request-timeout",
            ViewChangeCause::ProposalEquivocation => "proposal-equivocation",
            ViewChangeCause::InvalidProposal => "invalid-proposal",
            ViewChangeCause::WeakQuorum => "f+1-view-changes",
            ViewChangeCause::ViewChangeTimeout => "view-change-timeout",
            ViewChangeCause::InvalidNewView => "invalid-new-view",
            ViewChangeCause::Quarantine => "quarantine",
            ViewChangeCause::PrimaryQuarantined => "primary-quarantined",
            ViewChangeCause::Operator => "operator",
            ViewChangeCause::Reconfiguration => "reconfiguration",
        }
    }
}

impl std::fmt::Display for ViewChangeCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What view changes need between inputs.
#[derive(Default)]
pub(super) struct ViewChanges {
    /// Consecutive failed views: the view-change timeout doubles with each.
    pub(super) failures: u32,
    /// A quorum asked for our target view (the view-change timer was restarted then).
    pub(super) quorum_seen: bool,
    /// Valid VIEW-CHANGEs per member and view (a few views per member bounds memory).
    pub(super) received: BTreeMap<ReplicaId, BTreeMap<View, Signed<ViewChange>>>,
    /// The NEW-VIEW that started our current view, for peers that missed it.
    pub(super) last_new_view: Option<Signed<NewView>>,
    /// Why the current (or last) view change started.
    pub(super) cause: ViewChangeCause,
}

impl<A: Application> Replica<A> {
    /// Stops taking part in the current view and asks for `target`.
    pub(super) fn start_view_change(&mut self, target: View, cause: ViewChangeCause) {
        // A quarantined member is never primary: skip the views it would lead.
        if !self.is_voter() {
            return;
        }
        let mut target = target;
        for _ in 0..self.epoch.voters.len() {
            if !self.quarantined(self.epoch.primary(target)) {
                break;
            }
            target = target.saturating_add(1);
        }
        if target <= self.view || (!self.active && target <= self.vc_target) {
            return;
        }
        if self.active {
            self.vc.cause = cause;
        }
        self.active = false;
        self.vc_target = target;
        self.out.push(Effect::Persist(Record::ViewChange(target)));
        for t in [Timer::Request, Timer::Batch, Timer::ViewChange] {
            self.out.push(Effect::CancelTimer(t));
        }
        self.watch.request_timer_armed = false;
        self.batch_timer_armed = false;
        // The timer starts only once a quorum asks for this view (check_view_change_quorum), so
        // a replica that suspects the primary alone waits for the others instead of running
        // ahead into views nobody else will join.
        self.vc.quorum_seen = false;
        self.broadcast_view_change();
        self.check_view_change_quorum();
    }

    /// Sends again the VIEW-CHANGEs this replica signed for views between its view and its
    /// target. Replicas whose timers ran out moved on to the next target, and if their
    /// VIEW-CHANGEs for the lower one were lost (a partition), those still waiting for it may
    /// never see a quorum for it nor f+1 for the higher one: without these, both groups wait
    /// for each other for good (found by the randomized simulator, n = 10, partitions).
    pub(super) fn rebroadcast_lower_view_changes(&mut self) {
        let (low, high) = (self.view, self.vc_target);
        let mine: Vec<Signed<ViewChange>> = self
            .vc
            .received
            .get(&self.id)
            .map(|m| m.range(low.saturating_add(1)..high).map(|(_, vc)| vc.clone()).collect())
            .unwrap_or_default();
        for vc in mine {
            self.out.push(Effect::Broadcast(Message::ViewChange(vc)));
        }
    }

    /// Signs and broadcasts VIEW-CHANGE(vc_target) with our current certificates. Rebuilt on
    /// each retransmission so that it carries our latest stable checkpoint.
    pub(super) fn broadcast_view_change(&mut self) {
        let h = self.stable.seq;
        let prepared = self
            .log
            .range(h + 1..)
            .filter_map(|(_, s)| s.prepared.clone())
            .filter(|p| p.pre_prepare.body.view < self.vc_target)
            // Slots of an earlier epoch are executed by every voter of this one.
            .filter(|p| {
                p.pre_prepare.body.epoch == self.epoch.number && p.pre_prepare.body.seq > self.epoch.start
            })
            .collect();
        let vc = self.sign(ViewChange {
            epoch: self.epoch.number,
            new_view: self.vc_target,
            stable: self.stable.clone(),
            prepared,
        });
        self.store_view_change(vc.clone());
        self.out.push(Effect::Broadcast(Message::ViewChange(vc)));
    }

    pub(super) fn on_view_change(&mut self, vc: Signed<ViewChange>) {
        let w = vc.body.new_view;
        if vc.from == self.id {
            return self.ignore(Ignored::WrongSender);
        }
        if w <= self.view {
            return self.ignore(Ignored::Stale);
        }
        if w > self.view.saturating_add(MAX_VIEW_GAP) {
            return self.ignore(Ignored::TooFarAhead);
        }
        if self.vc.received.get(&vc.from).is_some_and(|m| m.contains_key(&w)) {
            return self.ignore(Ignored::Duplicate);
        }
        let valid = { self.with_ctx(|ctx, v| ctx.view_change(&vc, v)) };
        if !valid {
            return self.ignore(Ignored::InvalidCertificate);
        }
        for p in &vc.body.prepared {
            self.cross_check(Some(&p.pre_prepare), &p.prepares);
        }
        self.store_view_change(vc);
        self.apply_weak_rule();
        self.check_view_change_quorum();
    }

    /// Keeps a member's VIEW-CHANGEs for its last few views. A VIEW-CHANGE still counts for its
    /// view after its sender moved on, so replicas split between two targets can still complete
    /// the lower one; and memory stays O(n).
    fn store_view_change(&mut self, vc: Signed<ViewChange>) {
        let mine = self.vc.received.entry(vc.from).or_default();
        mine.insert(vc.body.new_view, vc);
        while mine.len() > VIEW_CHANGES_PER_SENDER {
            mine.pop_first();
        }
    }

    /// f+1 members asking for views above ours include an honest one: join the highest view
    /// that f+1 of them ask for at least (a single faulty member cannot pick it).
    fn apply_weak_rule(&mut self) {
        let current = if self.active { self.view } else { self.vc_target };
        let mut higher: Vec<View> = self
            .vc
            .received
            .iter()
            .filter(|(id, _)| **id != self.id)
            .filter_map(|(_, m)| m.keys().next_back().copied())
            .filter(|w| *w > current)
            .collect();
        if higher.len() >= self.quorum.weak() {
            higher.sort_unstable_by(|a, b| b.cmp(a));
            self.start_view_change(higher[self.quorum.weak() - 1], ViewChangeCause::WeakQuorum);
        }
    }

    fn view_changes_for(&self, w: View) -> Vec<Signed<ViewChange>> {
        self.vc.received.values().filter_map(|m| m.get(&w)).cloned().collect()
    }

    /// With a quorum for our target: arm the timer (backups) or send NEW-VIEW (its primary).
    pub(super) fn check_view_change_quorum(&mut self) {
        if self.active {
            return;
        }
        let w = self.vc_target;
        // A quorum asking to leave the views below w (for w or a later view) gives w's primary
        // one timeout. Counting only VIEW-CHANGEs for w itself stalled for good when a replica
        // had skipped past w: it never signed one for w, those waiting for w fell one short of a
        // quorum and never timed out, and those ahead were too few for the f+1 rule to draw the
        // others up (found by the chaos simulator, n=10, once the faulty were quarantined).
        let wanting = self.vc.received.values().filter(|m| m.range(w..).next().is_some()).count();
        if wanting < self.quorum.quorum() {
            return;
        }
        if !self.vc.quorum_seen {
            // A quorum wants this view now: give its primary a full timeout from here.
            self.vc.quorum_seen = true;
            let timeout = self.params.view_change_timeout_ms << self.vc.failures.min(6);
            self.set_timer(Timer::ViewChange, timeout);
        }
        // Only VIEW-CHANGEs for w itself make its NEW-VIEW.
        let vcs = self.view_changes_for(w);
        if self.epoch.primary(w) != self.id || vcs.len() < self.quorum.quorum() {
            return;
        }
        let mut chosen = vcs;
        chosen.sort_by_key(|vc| vc.from);
        chosen.truncate(self.quorum.quorum());
        let Some(plan) = plan_new_view(&chosen) else { return };
        let e = self.epoch.number;
        if plan
            .proposals
            .iter()
            .any(|p| self.signed.get(&(e, Kind::PrePrepare, w, p.seq)).is_some_and(|old| *old != p.digest))
        {
            return;
        }
        // Recorded before anything leaves: a primary that restarts comes back in the view it started.
        self.out.push(Effect::Persist(Record::View(w)));
        let mut pre_prepares = Vec::with_capacity(plan.proposals.len());
        for p in &plan.proposals {
            self.may_sign(Kind::PrePrepare, w, p.seq, p.digest);
            let pp =
                self.sign(PrePrepare { epoch: self.epoch.number, view: w, seq: p.seq, digest: p.digest });
            let batch = self.local_batch(p.seq, p.digest);
            self.out.push(Effect::Persist(Record::PrePrepare(pp.clone(), batch)));
            pre_prepares.push(pp);
        }
        let nv = self.sign(NewView { epoch: self.epoch.number, view: w, view_changes: chosen, pre_prepares });
        self.out.push(Effect::Broadcast(Message::NewView(nv.clone())));
        self.enter_view(nv, plan);
    }

    /// A quorum asked for our target view but its NEW-VIEW did not come in time: next view,
    /// with a doubled timeout.
    pub(super) fn on_view_change_timer(&mut self) {
        if !self.active {
            // A quorum asked for this view and its primary did not start it in time.
            let target = self.vc_target;
            self.accuse(self.epoch.primary(target), crate::evidence::Accusation::Silence, target);
            self.vc.failures += 1;
            self.start_view_change(self.vc_target.saturating_add(1), ViewChangeCause::ViewChangeTimeout);
        }
    }

    pub(super) fn on_new_view(&mut self, nv: Signed<NewView>) {
        let w = nv.body.view;
        if w <= self.view || (!self.active && w < self.vc_target) {
            return self.ignore(Ignored::Stale);
        }
        if w > self.view.saturating_add(MAX_VIEW_GAP) {
            return self.ignore(Ignored::TooFarAhead);
        }
        if nv.from != self.epoch.primary(w) {
            return self.ignore(Ignored::WrongSender);
        }
        if !self.verify_signed(&nv) {
            return self.ignore(Ignored::BadSignature);
        }
        let Some(plan) = self.check_new_view(&nv) else {
            // A NEW-VIEW that does not follow from its own view changes: its primary is faulty,
            // provably so when the NEW-VIEW alone shows it (not, say, a certificate inside that
            // only our state rejects).
            let ev = Evidence::InvalidNewView(nv);
            if ev.verify(&self.cluster, &self.epoch.keys(), self.state.accepts_opaque()).is_ok() {
                self.report(ev);
            }
            // Only the one we are waiting for makes us move on; an unsolicited bad NEW-VIEW for
            // some other view is ignored, or a faulty member could trigger view changes at will.
            if !self.active && w == self.vc_target {
                self.start_view_change(w.saturating_add(1), ViewChangeCause::InvalidNewView);
            }
            return self.ignore(Ignored::InvalidCertificate);
        };
        self.enter_view(nv, plan);
    }

    /// Verifies every VIEW-CHANGE inside and recomputes the re-proposals.
    fn check_new_view(&mut self, nv: &Signed<NewView>) -> Option<NewViewPlan> {
        let w = nv.body.view;
        let mut senders: Vec<ReplicaId> = Vec::new();
        for vc in &nv.body.view_changes {
            if vc.body.new_view != w || senders.contains(&vc.from) {
                return None;
            }
            senders.push(vc.from);
            let ok = { self.with_ctx(|ctx, v| ctx.view_change(vc, v)) };
            if !ok {
                return None;
            }
        }
        if senders.len() < self.quorum.quorum() {
            return None;
        }
        let plan = plan_new_view(&nv.body.view_changes)?;
        let pps = &nv.body.pre_prepares;
        if pps.len() != plan.proposals.len() {
            return None;
        }
        let mut items = Vec::with_capacity(pps.len());
        for (pp, p) in pps.iter().zip(&plan.proposals) {
            let b = &pp.body;
            if pp.from != nv.from
                || b.epoch != self.epoch.number
                || b.view != w
                || b.seq != p.seq
                || b.digest != p.digest
            {
                return None;
            }
            let key = self.epoch.voter_key(pp.from)?;
            items.push(pp.verify_item(key, &self.cluster));
        }
        super::certs::all_valid(self.verifier.as_mut(), &items).then_some(plan)
    }

    /// Enters view `w` as NEW-VIEW `nv` says: adopt its checkpoint, take its re-proposals as the
    /// pre-prepares of the new view, and let the new primary continue after them.
    fn enter_view(&mut self, nv: Signed<NewView>, plan: NewViewPlan) {
        let w = nv.body.view;
        self.vc.last_new_view = Some(nv.clone());
        self.view = w;
        self.vc_target = w;
        self.active = true;
        self.out.push(Effect::CancelTimer(Timer::ViewChange));
        self.out.push(Effect::Persist(Record::View(w)));
        for m in self.vc.received.values_mut() {
            m.retain(|v, _| *v > w);
        }
        self.vc.received.retain(|_, m| !m.is_empty());

        if plan.stable.seq > self.stable.seq {
            self.adopt_checkpoint(plan.stable.clone());
        }
        let max_seq = plan.proposals.last().map_or(plan.stable.seq, |p| p.seq);
        // Slots above the re-proposals were never prepared by a quorum: their proposals and
        // votes are void. The batches pre-prepared there stay until the seq is stable (the
        // Q-set): a later view may re-propose one from a certificate that no honest replica
        // prepared, and only those that kept it can hand it over.
        let above: Vec<Seq> = self.log.range(max_seq.saturating_add(1)..).map(|(seq, _)| *seq).collect();
        for seq in above {
            let Some(slot) = self.log.get_mut(&seq) else { continue };
            slot.enter_view(w);
            let kept = std::mem::take(&mut slot.pre_prepared);
            if kept.is_empty() {
                self.log.remove(&seq);
            } else {
                *slot = Slot { pre_prepared: kept, since_ms: self.now, ..Slot::new(w) };
            }
        }
        self.pool.reset(self.now);
        let h = self.stable.seq;
        // Re-proposals carry digests only; most batches are here already. The rest are asked
        // of the members that prepared them.
        let mut ask: Vec<ReplicaId> = Vec::new();
        for (pp, p) in nv.body.pre_prepares.into_iter().zip(plan.proposals) {
            if p.seq > h && p.seq > self.epoch.start {
                let batch = self.local_batch(p.seq, p.digest);
                if batch.is_none() {
                    ask.extend(p.holders.iter().filter(|m| **m != self.id));
                }
                self.slot(p.seq).enter_view(w);
                self.accept_pre_prepare(pp, batch);
            }
        }
        ask.sort_unstable();
        ask.dedup();
        self.request_batches(&ask);
        self.next_seq = (max_seq + 1).max(self.stable.seq + 1).max(self.epoch.start + 1);
        self.out.push(Effect::ViewEntered { view: w, primary: self.primary(), cause: self.vc.cause });
        if self.pool.len() > 0 {
            self.arm_request_timer();
        }
        self.replay_buffered();
        self.propose(true);
        if self.quarantined(self.primary()) {
            self.start_view_change(w.saturating_add(1), ViewChangeCause::Quarantine);
        }
    }
}
