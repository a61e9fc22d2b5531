//! Client requests: admission, the pool, answers from the reply cache, relaying, and suspecting
//! a primary that leaves requests waiting.

use super::certs::all_valid;
use super::ignored::Ignored;
use super::pool::{Added, MAX_POOL_BYTES, PoolLimits};
use super::replica::Replica;
use super::{Effect, Timer, ViewChangeCause};
use crate::application::Application;
use crate::evidence::{Accusation, Evidence};
use crate::wire::{ClientRequest, Message, Reply, ReplyEntry};

/// Requests relayed per look at the pool (a backlog goes out a budget at a time). Suspicion
/// needs only some waiting request to be known everywhere; at n=13 under saturation a budget of
/// 64 let a backup that lagged for half a timeout flood every peer with 0.7 to 7.4 relays per
/// transfer, while 8 keeps it at 0.2 to 0.4 with the same recovery from a dead primary.
const RELAY_BUDGET: usize = 8;

/// Watching the primary: a backup suspects it when requests wait and it makes no progress.
#[derive(Default)]
pub(super) struct PrimaryWatch {
    /// The request timer is set.
    pub(super) request_timer_armed: bool,
    /// Last signs of the primary's progress: an execution, and a proposal accepted from it
    /// (both also restart on entering the view, or with the first request after an idle
    /// spell). Either missing for a full timeout while requests wait: suspect it. Proposals stop
    /// the moment a primary dies; executions also stop when its proposals cannot commit.
    pub(super) last_progress_ms: u64,
    pub(super) last_proposal_ms: u64,
}

impl<A: Application> Replica<A> {
    pub(super) fn on_request(&mut self, r: ClientRequest) {
        // A standby joiner or a removed member orders nothing: it keeps no requests.
        if !self.is_voter() {
            return self.ignore(Ignored::NotVoting);
        }
        if crate::wire::check_request(&r).is_err() {
            return self.ignore(Ignored::Malformed);
        }
        if !self.state.is_client(&r.body.client) || (r.is_opaque() && !self.state.accepts_opaque()) {
            return self.ignore(Ignored::NotAdmitted);
        }
        // Opaque payloads leave no client record: nothing to answer from a reply cache.
        let record = if r.is_opaque() { None } else { self.state.clients.get(&r.body.client).cloned() };
        if let Some(rec) = record {
            if r.body.nonce < rec.nonce {
                return self.ignore(Ignored::Stale);
            }
            if r.body.nonce == rec.nonce {
                // Already executed: answer from the reply cache (a retransmission).
                if rec.op == r.op_digest() && self.verify_request(&r) {
                    let entry = ReplyEntry {
                        client: r.body.client,
                        nonce: rec.nonce,
                        op: rec.op,
                        outcome: rec.outcome,
                    };
                    let reply = self.sign(Reply {
                        epoch: self.epoch.number,
                        view: self.view,
                        seq: rec.seq,
                        entries: vec![entry],
                    });
                    self.out.push(Effect::Reply { clients: vec![r.body.client], reply });
                    return;
                }
                return self.ignore(Ignored::Stale);
            }
        }
        let (op, d) = r.digests();
        if self.pool.contains(&d) {
            return self.ignore(Ignored::Duplicate);
        }
        if !self.verify_request(&r) {
            return self.ignore(Ignored::BadSignature);
        }
        let opaque = r.is_opaque();
        let limits = PoolLimits {
            total: self.params.max_pending,
            per_client: self.params.max_pending_per_client,
            bytes: MAX_POOL_BYTES,
        };
        let added = self.pool.add(r, (op, d), self.now, limits);
        match added {
            Added::Full => return self.ignore(Ignored::PoolFull),
            Added::AlreadyPending => return self.ignore(Ignored::Duplicate),
            // An opaque payload carries no signature, so a conflict with one proves nothing.
            Added::Conflict(other) if other.is_opaque() || opaque => return,
            Added::Conflict(other) => {
                // The pool keeps the request it reports a conflict with.
                if let Some(r) = self.pool.get(&d).cloned() {
                    self.report(Evidence::DoubleSpend(other, r));
                }
            }
            Added::New => {}
        }
        if !self.watch.request_timer_armed {
            // The first request after an idle spell: the primary's clock starts now.
            self.arm_request_timer();
        }
        self.propose(false);
    }

    /// (Re)starts the wait for the primary, from now.
    pub(super) fn arm_request_timer(&mut self) {
        self.watch.last_progress_ms = self.watch.last_progress_ms.max(self.now);
        self.watch.last_proposal_ms = self.watch.last_proposal_ms.max(self.now);
        self.watch.request_timer_armed = true;
        self.set_timer(Timer::Request, (self.params.view_change_timeout_ms / 2).max(1));
    }

    pub(super) fn verify_request(&mut self, r: &ClientRequest) -> bool {
        match r.verify_item(&self.cluster) {
            Some(item) => all_valid(self.verifier.as_mut(), &[item]),
            None => true,
        }
    }

    /// Requests waiting half a timeout are relayed to every replica (the primary may never have
    /// had them); the primary is suspected when nothing executed for a full timeout while a
    /// request waited that long, the last half of it known to every replica. Progress, not the
    /// age of each request, is what counts: an overloaded primary that keeps executing is not
    /// suspected, a crashed one is within one timeout of its last execution.
    ///
    /// While execution progresses, a request is relayed only if the primary passed it over:
    /// it proposed one that arrived here half a timeout later. A request queued behind older
    /// ones is not relayed: under overload every request waits that long, and relaying each to
    /// every replica (n² messages per request) multiplied the load that delayed them. One still
    /// unproposed after a whole timeout goes to the primary alone, which may never have had it
    /// (a client that reached only some backups) while other traffic keeps execution going.
    pub(super) fn on_request_timer(&mut self) {
        self.watch.request_timer_armed = false;
        if !self.active || self.pool.len() == 0 {
            return;
        }
        let timeout = self.params.view_change_timeout_ms;
        let half = (timeout / 2).max(1);
        // Quiet: neither an execution nor a proposal lately (the suspicion rule's measure, so a
        // dead primary's last instances completing without it do not postpone the relay).
        let quiet_since = self.watch.last_progress_ms.min(self.watch.last_proposal_ms);
        let stalled = self.now >= quiet_since.saturating_add(half);
        let mut cutoff = self.now.saturating_sub(half);
        if !stalled {
            cutoff = cutoff.min(self.pool.proposed_arrival_ms().saturating_sub(half));
        }
        let relayed = self.pool.take_unrelayed(cutoff, self.now, RELAY_BUDGET);
        // A backlog is relayed a budget at a time, not in one burst.
        let relay_pause = if relayed.len() == RELAY_BUDGET { (timeout / 20).max(1) } else { 0 };
        for r in relayed {
            self.out.push(Effect::Broadcast(Message::Request(r)));
        }
        let forward = !self.is_primary();
        if forward {
            let primary = self.primary();
            for r in self.pool.take_unforwarded(self.now.saturating_sub(timeout), RELAY_BUDGET) {
                self.out.push(Effect::Send { to: primary, msg: Message::Request(r) });
            }
        }
        let stalled_at = quiet_since + timeout;
        let overdue_at = self.pool.first_overdue(timeout, half);
        if overdue_at.is_some_and(|t| self.now >= t.max(stalled_at)) {
            self.accuse(self.primary(), Accusation::Censorship, self.view);
            self.start_view_change(self.view.saturating_add(1), ViewChangeCause::RequestTimeout);
            return;
        }
        // Next look: when a request is due for relay (by age if execution stops by then), or
        // the primary could be suspected.
        let relay_at = self
            .pool
            .oldest_unrelayed()
            .map(|a| if a <= cutoff { self.now + relay_pause } else { (a + half).max(quiet_since + half) });
        let suspect_at = overdue_at.map(|t| t.max(stalled_at));
        // A forwarding backlog goes out a budget at a time too.
        let forward_at = forward
            .then(|| self.pool.oldest_unforwarded())
            .flatten()
            .map(|a| (a + timeout).max(self.now + (timeout / 20).max(1)));
        let due =
            [relay_at, suspect_at, forward_at].into_iter().flatten().min().unwrap_or(self.now + timeout);
        self.watch.request_timer_armed = true;
        self.set_timer(Timer::Request, due.saturating_sub(self.now).max(1));
    }
}
