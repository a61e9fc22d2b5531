//! The simulated network: seeded latency, loss, duplication and partitions, and what each
//! member's messages go through on their way (a faulty member's strategy, a twin's side).

use super::*;

impl World {
    pub(super) fn schedule_faults(&mut self) {
        let n = self.cfg.nodes;
        let honest: Vec<ReplicaId> = (0..n as ReplicaId).filter(|i| !self.faulty.contains(i)).collect();
        if self.cfg.crash_restart && !honest.is_empty() && self.rng.random_bool(0.5) {
            let node = honest[self.rng.random_range(0..honest.len())];
            let at = self.rng.random_range(200..1500);
            let down = self.rng.random_range(300..3000);
            self.push(at, Event::Crash { node });
            self.push(at + down, Event::Restart { node });
            self.faults_end = self.faults_end.max(at + down);
        }
        if self.cfg.net == NetProfile::Partition {
            let mut t = 0;
            for _ in 0..3 {
                t += self.rng.random_range(300..2000);
                let isolated = self.rng.random_range(1..=n / 2);
                let mut side = vec![false; n];
                for _ in 0..isolated {
                    side[self.rng.random_range(0..n)] = true;
                }
                let heal = self.rng.random_range(1000..5000);
                self.push(t, Event::Partition { side });
                self.push(t + heal, Event::Heal);
                t += heal;
            }
            self.faults_end = self.faults_end.max(t);
        }
        for i in 0..n {
            if self.nodes[i].strategy.is_some() {
                self.push(BYZ_TICK_MS, Event::ByzTick { node: i as ReplicaId });
            }
        }
    }

    pub(super) fn link_up(&self, a: ReplicaId, b: ReplicaId) -> bool {
        match &self.partition {
            Some(side) => side[a as usize] == side[b as usize],
            None => true,
        }
    }

    pub(super) fn latency(&mut self) -> Option<u64> {
        match self.cfg.net {
            NetProfile::Lossy => {
                if self.rng.random_bool(0.05) {
                    None
                } else {
                    Some(self.rng.random_range(1..50))
                }
            }
            _ => Some(self.rng.random_range(1..10)),
        }
    }

    /// Puts a replica-to-replica message on the network.
    pub(super) fn send(&mut self, from: ReplicaId, to: ReplicaId, msg: Message, extra: u64) {
        if from == to || !self.link_up(from, to) {
            return;
        }
        self.messages += 1;
        let Some(d) = self.latency() else { return };
        if self.cfg.net == NetProfile::Lossy && self.rng.random_bool(0.02) {
            let later = d + extra + self.rng.random_range(1..30);
            self.push(later, Event::Deliver { from: Some(from), to, msg: msg.clone() });
        }
        self.push(d + extra, Event::Deliver { from: Some(from), to, msg });
    }

    pub(super) fn client_broadcast(&mut self, req: phalanx_core::wire::ClientRequest) {
        for to in 0..self.cfg.nodes as ReplicaId {
            self.messages += 1;
            if let Some(d) = self.latency() {
                self.push(d, Event::Deliver { from: None, to, msg: Message::Request(req.clone()) });
            }
        }
    }

    /// Sends what a replica wants to send, through its Byzantine strategy if it has one.
    pub(super) fn emit(&mut self, node: ReplicaId, msg: Message, to: Vec<ReplicaId>) {
        self.emit_as(node, false, msg, to)
    }

    /// Sends for a member's original replica or its twin; a confined twin pair each talk only
    /// to their own side.
    pub(super) fn emit_as(&mut self, node: ReplicaId, twin: bool, msg: Message, mut to: Vec<ReplicaId>) {
        let i = node as usize;
        if let Some(t) = self.nodes[i].twin.as_ref().filter(|t| t.confined) {
            to.retain(|p| t.peers.contains(p) == twin);
        }
        if let Some(mut s) = self.nodes[i].strategy.take() {
            let forged_before = s.forged_requests.len();
            let out: Vec<Outgoing> = s.rewrite(msg, &to, &mut self.rng, &mut self.board);
            self.checker.forged(s.forged_requests[forged_before..].iter().copied());
            self.nodes[i].strategy = Some(s);
            for o in out {
                self.send(node, o.to, o.msg, o.extra_delay_ms);
            }
        } else {
            for t in to {
                self.send(node, t, msg.clone(), 0);
            }
        }
    }
}
