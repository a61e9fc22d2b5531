//! The host side of each replica: feeding it inputs and carrying out the effects it returns
//! (sends, replies, timers, persistence), for honest members, faulty ones and their twins.

use super::*;

impl World {
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

    /// What a twin does: it sends (through the member's strategy), replies and sets timers; its
    /// own state is nobody's concern (it is faulty).
    pub(super) fn apply_twin_effects(&mut self, node: ReplicaId, effects: Vec<Effect>) {
        let targets = self.nodes[node as usize].twin.as_ref().map(|t| t.replica.broadcast_targets());
        for e in effects {
            match e {
                Effect::Send { to, msg } => self.emit_as(node, true, msg, vec![to]),
                Effect::Broadcast(msg) => self.emit_as(node, true, msg, targets.clone().unwrap_or_default()),
                Effect::Reply { reply, .. } => {
                    self.messages += 1;
                    if let Some(d) = self.latency() {
                        self.push(d, Event::Reply { from: node, reply });
                    }
                }
                Effect::SetTimer { timer, after_ms } => {
                    let Some(t) = self.nodes[node as usize].twin.as_mut() else { continue };
                    let generation = t.timers.arm(timer);
                    self.push(after_ms, Event::Timer { node, timer, generation, twin: true });
                }
                Effect::CancelTimer(timer) => {
                    if let Some(t) = self.nodes[node as usize].twin.as_mut() {
                        t.timers.cancel(timer);
                    }
                }
                _ => {}
            }
        }
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

    pub(super) fn apply_effects(&mut self, node: ReplicaId, effects: Vec<Effect>) {
        let i = node as usize;
        let honest = !self.faulty.contains(&node);
        let targets = self.nodes[i].replica.as_ref().map(|r| r.broadcast_targets()).unwrap_or_default();
        for e in effects {
            match e {
                Effect::Send { to, msg } => self.emit(node, msg, vec![to]),
                Effect::Broadcast(msg) => self.emit(node, msg, targets.clone()),
                Effect::Reply { reply, .. } => {
                    if self.nodes[i]
                        .strategy
                        .as_ref()
                        .is_some_and(|s| s.behaviours.contains(&Behaviour::Silent))
                    {
                        continue;
                    }
                    self.messages += 1;
                    if let Some(d) = self.latency() {
                        self.push(d, Event::Reply { from: node, reply });
                    }
                }
                Effect::SetTimer { timer, after_ms } => {
                    let generation = self.nodes[i].timers.arm(timer);
                    self.push(after_ms, Event::Timer { node, timer, generation, twin: false });
                }
                Effect::CancelTimer(timer) => self.nodes[i].timers.cancel(timer),
                Effect::EpochEntered { epoch } => {
                    self.log(format!("replica {node} enters epoch {}", epoch.number))
                }
                Effect::Persist(rec) => {
                    if let phalanx_core::consensus::Record::ViewChange(v) = &rec {
                        self.log(format!("replica {node} asks for view {v}"));
                    }
                    self.nodes[i].disk.write(rec)
                }
                Effect::Executed { seq, batch, entries } => {
                    if !honest {
                        continue;
                    }
                    let last = self.nodes[i].last_executed;
                    if seq != last + 1 {
                        self.checker.violations.push(format!(
                            "t={}ms: exactly-once: replica {node} executed seq {seq} after {last}",
                            self.now
                        ));
                    }
                    self.nodes[i].last_executed = seq;
                    let r = self.nodes[i].replica.as_ref().expect("a replica that executes exists");
                    let total = r.state().app.total_balance();
                    let acc = &r.state().accountability;
                    let mut wrong = Vec::new();
                    // A primary may move the replicated clock only within the skew bound.
                    let ahead = r.state().clock_ms.saturating_sub(self.now);
                    if ahead > self.config.params.max_clock_skew_ms {
                        wrong.push(format!(
                            "clock jump: replica {node}'s replicated clock runs {ahead} ms ahead"
                        ));
                    }
                    for key in acc.quarantined.keys() {
                        if !self.byzantine_keys.contains(key) {
                            wrong.push(format!("false positive: replica {node} quarantined an honest agent"));
                        }
                    }
                    for (accused, by) in &acc.accusations {
                        if !self.byzantine_keys.contains(accused)
                            && by.keys().any(|k| !self.byzantine_keys.contains(k))
                        {
                            wrong.push(
                                "false accusation: an honest agent accused an honest one of bad signatures"
                                    .into(),
                            );
                        }
                    }
                    self.checker.executed(self.now, i, seq, &batch, &entries, total);
                    for w in wrong {
                        self.checker.violations.push(format!("t={}ms: {w}", self.now));
                    }
                }
                Effect::Checkpoint { seq, state } | Effect::Stable { seq, state } => {
                    if honest {
                        self.checker.checkpoint(self.now, i, seq, state);
                    }
                }
                Effect::StateInstalled { seq, state } => {
                    if !honest {
                        continue;
                    }
                    self.log(format!("replica {node} installed state at seq {seq}"));
                    let last = self.nodes[i].last_executed;
                    if seq <= last {
                        self.checker.violations.push(format!(
                            "t={}ms: state transfer moved replica {node} back from {last} to {seq}",
                            self.now
                        ));
                    }
                    self.nodes[i].last_executed = seq;
                    self.checker.checkpoint(self.now, i, seq, state);
                }
                Effect::ViewEntered { view, primary, cause } => {
                    if honest {
                        self.log(format!(
                            "replica {node} entered view {view} (primary {primary}) after {cause}"
                        ));
                        self.max_view = self.max_view.max(view);
                    }
                }
                // Operator fault injection is a node feature; the simulator's faulty agents are
                // chosen from the seed.
                Effect::InjectFault { .. } => {}
                Effect::Evidence(ev) => {
                    if !honest {
                        continue;
                    }
                    self.evidence += 1;
                    self.log(format!("replica {node} reports {}", ev.fault_type()));
                    let keys: Vec<PublicKey> = self.config.epoch.members.iter().map(|m| m.key).collect();
                    if let Err(e) = ev.verify(&self.config.cluster_id, &keys, self.config.genesis.testing) {
                        self.checker
                            .violations
                            .push(format!("t={}ms: replica {node} emitted invalid evidence: {e}", self.now));
                    }
                    let guilty = match ev.culprit() {
                        Culprit::Member(m) => self.faulty.contains(&m),
                        Culprit::Client(k) => self.byzantine_keys.contains(&k),
                    };
                    if !guilty {
                        self.checker.violations.push(format!(
                            "t={}ms: false accusation: replica {node} accused an honest party of {}",
                            self.now,
                            ev.fault_type()
                        ));
                    }
                }
            }
        }
    }

    /// Whatever peers send, an honest replica's memory stays bounded.
    pub(super) fn check_bounds(&mut self, node: ReplicaId) {
        if self.faulty.contains(&node) {
            return;
        }
        let Some(r) = self.nodes[node as usize].replica.as_ref() else { return };
        let p = &self.config.params;
        let log_cap = 2 * p.log_window as usize + 64;
        let buf_cap = self.cfg.nodes * p.max_buffered_per_sender;
        if r.log_len() > log_cap || r.buffered() > buf_cap {
            let (l, b) = (r.log_len(), r.buffered());
            self.checker
                .violations
                .push(format!("t={}ms: memory: replica {node} holds {l} slots, {b} buffered", self.now));
        }
    }
}
