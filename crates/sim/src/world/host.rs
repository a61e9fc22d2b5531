//! The host side of each replica: feeding it inputs and carrying out the effects it returns
//! (sends, replies, timers, persistence) by the rules the node follows too
//! (`consensus::perform`), for honest members, faulty ones and their twins.

use super::*;
use phalanx_core::consensus::{Host, Record, perform};

impl World {
    pub(super) fn apply_effects(&mut self, node: ReplicaId, effects: Vec<Effect>) {
        let targets =
            self.nodes[node as usize].replica.as_ref().map(|r| r.broadcast_targets()).unwrap_or_default();
        perform(&mut Member { world: self, node }, &targets, effects);
    }

    pub(super) fn apply_twin_effects(&mut self, node: ReplicaId, effects: Vec<Effect>) {
        let Some(twin) = self.nodes[node as usize].twin.as_ref() else { return };
        let targets = twin.replica.broadcast_targets();
        perform(&mut TwinOf { world: self, node }, &targets, effects);
    }

    pub(super) fn input(&mut self, node: ReplicaId, input: Input) {
        let now = self.now;
        let Some(r) = self.nodes[node as usize].replica.as_mut() else { return };
        let effects = r.handle(now, input);
        self.apply_effects(node, effects);
        self.check_bounds(node);
    }

    /// An input for a faulty member's twin.
    pub(super) fn input_twin(&mut self, node: ReplicaId, input: Input) {
        let now = self.now;
        let Some(t) = self.nodes[node as usize].twin.as_mut() else { return };
        let effects = t.replica.handle(now, input);
        self.apply_twin_effects(node, effects);
    }

    pub(super) fn byzantine_tick(&mut self, node: ReplicaId) {
        let i = node as usize;
        let (view, stable) = match &self.nodes[i].replica {
            Some(r) => (r.view(), r.stable_cert().clone()),
            None => return,
        };
        let now = self.now;
        let Some(s) = self.nodes[i].strategy.as_mut() else { return };
        if s.crashed(now) {
            return;
        }
        let out = s.tick(view, stable, &mut self.rng, &self.board);
        for o in out {
            if let Message::Request(_) = &o.msg {
                self.messages += 1;
                if let Some(d) = self.latency() {
                    self.push(d, Event::Deliver { from: None, to: o.to, msg: o.msg });
                }
            } else {
                self.send(node, o.to, o.msg, o.extra_delay_ms);
            }
        }
        self.push(BYZ_TICK_MS, Event::ByzTick { node });
    }
}

impl World {
    fn deliver_reply(&mut self, from: ReplicaId, reply: Signed<Reply>) {
        self.messages += 1;
        if let Some(d) = self.latency() {
            self.push(d, Event::Reply { from, reply });
        }
    }

    /// What a member's replica reports, checked against the invariants when it is honest.
    fn observe(&mut self, node: ReplicaId, event: Effect) {
        let i = node as usize;
        let honest = !self.faulty.contains(&node);
        match event {
            Effect::EpochEntered { epoch } => {
                self.log(format!("replica {node} enters epoch {}", epoch.number))
            }
            Effect::Executed { seq, batch, entries } if honest => {
                let Some(r) = self.nodes[i].replica.as_ref() else { return };
                self.checker.executed(self.now, i, seq, &batch, &entries, r.state());
            }
            Effect::Checkpoint { seq, state } | Effect::Stable { seq, state } if honest => {
                self.checker.checkpoint(self.now, i, seq, state)
            }
            Effect::StateInstalled { seq, state } if honest => {
                self.log(format!("replica {node} installed state at seq {seq}"));
                self.checker.installed(self.now, i, seq, state);
            }
            Effect::ViewEntered { view, primary, cause } if honest => {
                self.log(format!("replica {node} entered view {view} (primary {primary}) after {cause}"));
                self.max_view = self.max_view.max(view);
            }
            Effect::Evidence(ev) if honest => {
                self.evidence += 1;
                self.log(format!("replica {node} reports {}", ev.fault_type()));
                self.checker.evidence(self.now, i, &ev);
            }
            // Operator fault injection is a node feature; the simulator's faulty agents are
            // chosen from the seed.
            _ => {}
        }
    }

    /// Whatever peers send, an honest replica's memory stays bounded.
    fn check_bounds(&mut self, node: ReplicaId) {
        if self.faulty.contains(&node) {
            return;
        }
        let Some(r) = self.nodes[node as usize].replica.as_ref() else { return };
        let (slots, buffered) = (r.log_len(), r.buffered());
        self.checker.bounds(self.now, node as usize, slots, buffered);
    }
}

/// A member's own replica, as its host.
struct Member<'w> {
    world: &'w mut World,
    node: ReplicaId,
}

impl Host for Member<'_> {
    fn persist(&mut self, records: Vec<Record>) {
        for rec in records {
            if let Record::ViewChange(v) = &rec {
                self.world.log(format!("replica {} asks for view {v}", self.node));
            }
            self.world.nodes[self.node as usize].disk.write(rec);
        }
    }

    fn send(&mut self, to: Vec<ReplicaId>, msg: Message) {
        self.world.emit(self.node, msg, to)
    }

    fn reply(&mut self, _clients: Vec<PublicKey>, reply: Signed<Reply>) {
        let strategy = self.world.nodes[self.node as usize].strategy.as_ref();
        if strategy.is_some_and(|s| s.behaviours.contains(&Behaviour::Silent)) {
            return;
        }
        self.world.deliver_reply(self.node, reply)
    }

    fn timers(&mut self) -> &mut Timers {
        &mut self.world.nodes[self.node as usize].timers
    }

    fn schedule(&mut self, timer: Timer, generation: u64, after_ms: u64) {
        self.world.push(after_ms, Event::Timer { node: self.node, timer, generation, twin: false });
    }

    fn observe(&mut self, event: Effect) {
        self.world.observe(self.node, event)
    }
}

/// A faulty member's twin, as its host: it sends (through the member's strategy), replies and
/// sets timers; what it persists and reports is nobody's concern (it is faulty).
struct TwinOf<'w> {
    world: &'w mut World,
    node: ReplicaId,
}

impl Host for TwinOf<'_> {
    fn persist(&mut self, _records: Vec<Record>) {}

    fn send(&mut self, to: Vec<ReplicaId>, msg: Message) {
        self.world.emit_as(self.node, true, msg, to)
    }

    fn reply(&mut self, _clients: Vec<PublicKey>, reply: Signed<Reply>) {
        self.world.deliver_reply(self.node, reply)
    }

    fn timers(&mut self) -> &mut Timers {
        let twin = self.world.nodes[self.node as usize].twin.as_mut();
        &mut twin.expect("a twin's host exists only while it does").timers
    }

    fn schedule(&mut self, timer: Timer, generation: u64, after_ms: u64) {
        self.world.push(after_ms, Event::Timer { node: self.node, timer, generation, twin: true });
    }

    fn observe(&mut self, _event: Effect) {}
}
