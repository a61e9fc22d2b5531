//! Executing decided batches strictly in sequence order, and what execution sets off: replies,
//! checkpoints, forced view changes, a new epoch.

use super::replica::Replica;
use super::{Effect, Timer, ViewChangeCause};
use crate::application::Application;
use crate::state::{Execution, StateEvent};
use crate::wire::{Batch, Reply, ReplyEntry, Seq};
use phalanx_crypto::{Digest, PublicKey};

impl<A: Application> Replica<A> {
    /// Executes decided slots strictly in sequence order.
    pub(super) fn execute_ready(&mut self) {
        while let Some((batch, ops)) = self.log.get(&(self.last_executed + 1)).and_then(|s| {
            // The slot's operation digests belong to the batch it holds, which need not be the
            // decided one: a Byzantine primary can propose another batch of the same length for
            // a decided seq. Borrowed only when they are the decided batch's, or replicas would
            // record different operations for one request (found by the chaos simulator, n=7).
            let c = s.decided.as_ref()?;
            let decided = c.commits.first().map(|v| v.body.digest);
            let ops = if s.batch_digest.is_some()
                && s.batch_digest == decided
                && s.ops.len() == c.batch.requests.len()
            {
                s.ops.clone()
            } else {
                Vec::new()
            };
            Some((c.batch.clone(), ops))
        }) {
            self.execute(self.last_executed + 1, batch, ops);
        }
        // A view change waiting for a primary that has since been quarantined would wait for
        // good: replicas that asked for its view before the quarantine executed never reach a
        // quorum with those that skipped it, nor f+1 above it. Every replica executes the
        // quarantine at the same seq, so all move past it (found by the chaos simulator, n=7).
        if !self.active && self.quarantined(self.epoch.primary(self.vc_target)) {
            self.start_view_change(self.vc_target.saturating_add(1), ViewChangeCause::PrimaryQuarantined);
        }
    }

    /// Executes `batch`; `ops` are its requests' operation digests, or empty if not known.
    pub(super) fn execute(&mut self, seq: Seq, batch: Batch, ops: Vec<Digest>) {
        self.watch.last_progress_ms = self.now;
        let mut entries = Vec::new();
        let mut clients = Vec::new();
        self.state.begin_batch(seq, batch.timestamp_ms);
        for (i, req) in batch.requests.iter().enumerate() {
            let client = req.body.client;
            let op = ops.get(i).copied().unwrap_or_else(|| req.op_digest());
            // This very request leaves the pool, whatever execution makes of it; another request
            // under the same (client, nonce) leaves only once the client's record passes it.
            self.pool.remove_op(&client, req.body.nonce, &op);
            match self.state.execute_op(seq, req, op) {
                Execution::Executed(outcome) | Execution::Duplicate(outcome) => {
                    entries.push(ReplyEntry { client, nonce: req.body.nonce, op, outcome });
                    clients.push(client);
                }
                Execution::Stale => {}
            }
            if let Some(n) = self.state.last_nonce(&client) {
                self.pool.remove_upto(&client, n);
            }
        }
        self.last_executed = seq;
        if let Some(p) = self.log.get(&seq).and_then(|s| s.pre_prepare.as_ref()).map(|pp| pp.from)
            && let Some(stats) = self.peers.get_mut(p as usize)
        {
            stats.proposals_committed += 1;
        }
        for event in self.state.take_events() {
            match event {
                // Every replica executes this at the same seq and asks for the next view.
                StateEvent::ForceViewChange(view) => {
                    if self.view <= view {
                        self.start_view_change(view.saturating_add(1), ViewChangeCause::Operator);
                    }
                }
                StateEvent::FaultInjected { agent, fault, probability_permille } => {
                    if self.epoch.members.get(self.id as usize).is_some_and(|m| m.name == agent) {
                        self.out.push(Effect::InjectFault { fault, probability_permille });
                    }
                }
                StateEvent::QuarantineChanged => {
                    if self.active && self.quarantined(self.primary()) {
                        self.start_view_change(self.view.saturating_add(1), ViewChangeCause::Quarantine);
                    }
                }
            }
        }
        if self.active {
            // Progress in a view proves it works: the next view change starts from the base timeout.
            self.vc.failures = 0;
        }
        self.out.push(Effect::Executed { seq, batch, entries: entries.clone() });
        if !entries.is_empty() {
            clients.sort();
            clients.dedup();
            let reply = self.sign(Reply { epoch: self.epoch.number, view: self.view, seq, entries });
            self.out.push(Effect::Reply { clients, reply });
        }
        if seq.is_multiple_of(self.params.checkpoint_interval) {
            self.take_checkpoint(seq);
        }
        // At a reconfiguration's boundary the next epoch takes over (after the old epoch's
        // checkpoint there, which hands the state over).
        if self.sync_epoch() {
            return;
        }
        if self.pool.len() == 0 && self.watch.request_timer_armed {
            self.watch.request_timer_armed = false;
            self.out.push(Effect::CancelTimer(Timer::Request));
        }
        self.propose(false);
    }

    /// Clients whose requests wait in the pool but are already executed (after a state jump).
    pub(super) fn prune_pool(&mut self) {
        let clients: Vec<(PublicKey, u64)> = self.state.clients.iter().map(|(k, r)| (*k, r.nonce)).collect();
        for (k, n) in clients {
            self.pool.remove_upto(&k, n);
        }
    }
}
