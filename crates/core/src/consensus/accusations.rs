//! The replica's side of accountability: evidence it finds, accusations it makes, and the
//! reports that carry them to the replicated state (signed with its own key, as a client).

use super::replica::EVIDENCE_MEMORY;
use super::replica::Replica;
use super::{Effect, Record};
use crate::application::Application;
use crate::evidence::{Accusation, Evidence, Report};
use crate::recent::RecentSet;
use crate::wire::{
    ClientRequest, Message, Operation, Phase, PrePrepare, ReplicaId, RequestBody, Signed, View, Vote,
};
use phalanx_crypto::Digest;
use std::collections::BTreeSet;

/// Evidence reported and accusations made, each once.
#[derive(Default)]
pub(super) struct Reports {
    /// Slots already reported (bounded, oldest forgotten first): one report per culprit and slot.
    pub(super) evidence_seen: RecentSet<Digest, EVIDENCE_MEMORY>,
    /// Accusations already made: (accused, fault, view), bounded.
    pub(super) accused: BTreeSet<(ReplicaId, Accusation, View)>,
    /// Nonce of the last report this replica signed as a client of the state.
    pub(super) own_nonce: u64,
}

impl<A: Application> Replica<A> {
    /// Whether a member of the current epoch is quarantined by committed state.
    pub(super) fn quarantined(&self, id: ReplicaId) -> bool {
        self.epoch.members.get(id as usize).is_some_and(|m| self.state.accountability.is_quarantined(&m.key))
    }

    /// Signs `op` with this replica's own key and orders it like any client request.
    pub(super) fn submit_own(&mut self, op: Operation) {
        if !self.is_voter() {
            return;
        }
        // Nonces grow, and are persisted before the report leaves, so a restarted replica never
        // reuses one (which would read as a double spend of its own), even with its clock
        // stepped back. Starting from the clock keeps them above a lost journal's, too.
        self.reports.own_nonce = (self.reports.own_nonce + 1).max(self.now.saturating_mul(1000));
        self.out.push(Effect::Persist(Record::OwnNonce(self.reports.own_nonce)));
        let body = RequestBody { client: self.key.public(), nonce: self.reports.own_nonce, op };
        let req = ClientRequest::sign(body, &self.key, &self.cluster);
        self.out.push(Effect::Broadcast(Message::Request(req.clone())));
        self.on_request(req);
    }

    /// Accuses a member of an unprovable fault, once per (member, fault, view).
    pub(super) fn accuse(&mut self, accused: ReplicaId, fault: Accusation, view: View) {
        if accused == self.id || self.quarantined(accused) || self.quarantined(self.id) {
            return;
        }
        if !self.reports.accused.insert((accused, fault, view)) {
            return;
        }
        if self.reports.accused.len() > EVIDENCE_MEMORY
            && let Some(first) = self.reports.accused.iter().next().copied()
        {
            self.reports.accused.remove(&first);
        }
        let report = Report::Accusation { epoch: self.epoch.number, accused, fault };
        self.submit_own(report.operation());
    }

    pub(super) fn report(&mut self, ev: Evidence) {
        let key = ev.slot_key();
        if !self.reports.evidence_seen.insert(key) {
            return;
        }
        // Submitted for ordering: once committed, every replica verifies it and quarantines the
        // culprit at the same seq.
        // Evidence too large for one report (a NEW-VIEW may carry many certificates) is only
        // logged locally: the replica still refuses what it proves.
        let op = Report::Evidence(ev.clone()).operation();
        let fits = matches!(&op, Operation::Report(b) if b.len() <= crate::wire::limits::MAX_REPORT_BYTES);
        if fits && !self.quarantined(self.id) {
            self.submit_own(op);
        }
        self.out.push(Effect::Evidence(ev));
    }

    /// Compares the signed messages inside a verified certificate with those we hold for the
    /// same slot: a primary that showed us one proposal and others another, or a member that
    /// voted both ways, is caught even when no single peer received both versions directly.
    pub(super) fn cross_check(&mut self, pre_prepare: Option<&Signed<PrePrepare>>, votes: &[Signed<Vote>]) {
        let mut found = Vec::new();
        let epoch = self.epoch.number;
        let slot_of = |seq| self.log.get(&seq);
        if let Some(theirs) = pre_prepare
            && let Some(ours) = slot_of(theirs.body.seq).and_then(|s| s.pre_prepare.as_ref())
            && (ours.body.epoch, ours.body.view, ours.from)
                == (theirs.body.epoch, theirs.body.view, theirs.from)
            && ours.body.digest != theirs.body.digest
        {
            found.push(Evidence::ProposalEquivocation(ours.clone(), theirs.clone()));
        }
        for v in votes {
            let Some(slot) = slot_of(v.body.seq) else { continue };
            if v.body.epoch != epoch || slot.view != v.body.view || v.from == self.id {
                continue;
            }
            let held = match v.body.phase {
                Phase::Prepare => slot.prepares.get(&v.from),
                Phase::Commit => slot.commits.get(&v.from),
            };
            if let Some(ours) = held
                && ours.body.digest != v.body.digest
            {
                found.push(Evidence::VoteEquivocation(ours.clone(), v.clone()));
            }
        }
        for ev in found {
            self.report(ev);
        }
    }
}
