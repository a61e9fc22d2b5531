//! Reconfiguration: switching epochs at a checkpoint boundary, and handing the boundary state
//! to joiners and to replicas still in the previous epoch.
//!
//! A committed `UpdateQuorum` at seq s schedules epoch e+1 to start after the next checkpoint
//! boundary b > s (the state computes b, so every replica agrees on it). Epoch e orders up to b;
//! its slots above b are void, and no replica executes them: execution is in seq order, and
//! right after executing b a replica drops its log above b and from then on accepts only
//! epoch e+1 messages for seqs above b. The checkpoint at b is certified by e's voters; it is
//! the state joiners install before they vote (they verify it with e's keys, which genesis or
//! the committed history gives them). Views keep counting across epochs.

use super::ignored::Ignored;
use super::replica::Replica;
use super::{Effect, Epoch, Record, Timer, ViewChangeCause};
use crate::application::Application;
use crate::wire::{CheckpointCert, Fetch, Message, ReplicaId, Seq, Signed, StateResponse, limits};

/// Resend ticks between two pushes of the boundary state to a joiner not heard from yet.
const PUSH_EVERY_TICKS: u64 = 4;

/// The checkpoint the current epoch started from, with its snapshot: what joiners and replicas
/// still in the previous epoch install.
#[derive(Default)]
pub(super) struct Handover {
    pub(super) state: Option<(CheckpointCert, Vec<u8>)>,
    /// Resend ticks seen, to push the state to silent joiners every few.
    pub(super) ticks: u64,
}

impl<A: Application> Replica<A> {
    /// Enters the epoch the committed state says orders our next seq, if it is newer than
    /// ours. Returns whether the epoch changed.
    pub(super) fn sync_epoch(&mut self) -> bool {
        let next = self.state.accountability.ordering(self.last_executed + 1);
        if next.number <= self.epoch.number {
            return false;
        }
        let next = next.clone();
        self.enter_epoch(next);
        true
    }

    fn enter_epoch(&mut self, next: Epoch) {
        let Ok(quorum) = next.quorum() else { return };
        self.quorum = quorum;
        self.epoch = next;
        // Ids are stable; a joiner learns its own here.
        self.id = self.epoch.id_of(&self.key.public()).unwrap_or(Self::STANDBY);
        self.peers.resize(self.epoch.members.len(), Default::default());
        let start = self.epoch.start;
        // The old epoch's slots above the boundary are void; those below stay to serve fetches.
        self.log.retain(|seq, _| *seq <= start);
        self.future.clear();
        self.vc.received.clear();
        self.vc.last_new_view = None;
        let view = self.view.max(self.vc_target);
        self.view = view;
        self.vc_target = view;
        self.active = true;
        self.vc.failures = 0;
        self.out.push(Effect::CancelTimer(Timer::ViewChange));
        self.out.push(Effect::Persist(Record::View(view)));
        self.next_seq = self.next_seq.max(start + 1).max(self.stable.seq + 1);
        // Requests proposed in void slots are proposed again.
        self.pool.reset(self.now);
        self.out.push(Effect::EpochEntered { epoch: self.epoch.clone() });
        self.out.push(Effect::ViewEntered {
            view,
            primary: self.primary(),
            cause: ViewChangeCause::Reconfiguration,
        });
        if self.pool.len() > 0 {
            self.arm_request_timer();
        }
        if self.quarantined(self.primary()) {
            self.start_view_change(view.saturating_add(1), ViewChangeCause::Quarantine);
        }
    }

    /// The epoch that ordered `seq`, among those we know.
    pub(super) fn epoch_for(&self, seq: Seq) -> Epoch {
        super::certs::epoch_for(&self.state.accountability.epochs, &self.epoch, seq).clone()
    }

    /// The epoch before ours, if we know it.
    fn previous_epoch(&self) -> Option<Epoch> {
        let n = self.epoch.number.checked_sub(1)?;
        self.state.accountability.epochs.iter().find(|e| e.number == n).cloned()
    }

    /// Voters of this epoch that did not vote in the previous one: they start from the boundary.
    pub(super) fn joiners(&self) -> Vec<ReplicaId> {
        let Some(prev) = self.previous_epoch() else { return Vec::new() };
        self.epoch.voters.iter().copied().filter(|v| !prev.is_voter(*v) && *v != self.id).collect()
    }

    /// The boundary checkpoint of our epoch became stable: keep it, and hand it to the joiners.
    pub(super) fn boundary_stable(&mut self, cert: &CheckpointCert, snapshot: &[u8]) {
        if self.epoch.number == 0 || cert.seq != self.epoch.start {
            return;
        }
        self.handover.state = Some((cert.clone(), snapshot.to_vec()));
        for j in self.joiners() {
            self.send_boundary(j);
        }
    }

    fn send_boundary(&mut self, to: ReplicaId) {
        if !self.is_voter() {
            return;
        }
        let Some((cert, snapshot)) = self.handover.state.clone() else { return };
        if snapshot.len() > limits::MAX_MESSAGE_BYTES / 2 {
            return;
        }
        let resp = self.sign(StateResponse { epoch: self.epoch.number, cert, snapshot });
        self.out.push(Effect::Send { to, msg: Message::StateResponse(resp) });
    }

    /// Every few resend ticks, joiners never heard from get the boundary again (they may have
    /// started late or restarted).
    pub(super) fn push_boundary_to_silent_joiners(&mut self) {
        self.handover.ticks += 1;
        if self.handover.state.is_none() || !self.handover.ticks.is_multiple_of(PUSH_EVERY_TICKS) {
            return;
        }
        for j in self.joiners() {
            if self.peers.get(j as usize).is_some_and(|p| p.messages_verified == 0) {
                self.send_boundary(j);
            }
        }
    }

    /// A FETCH signed in the previous epoch comes from a voter that has not reached our
    /// boundary: it gets the boundary state (at most once per resend interval).
    pub(super) fn on_old_epoch_fetch(&mut self, f: Signed<Fetch>) {
        let Some(prev) = self.previous_epoch().filter(|p| p.number == f.body.epoch) else {
            return self.ignore(Ignored::OtherEpoch);
        };
        if !self.verify_in(&prev, &f) {
            return self.ignore(Ignored::BadSignature);
        }
        if self.may_serve_heavy(f.from) {
            self.send_boundary(f.from);
        } else {
            self.ignore(Ignored::RateLimited);
        }
    }
}
