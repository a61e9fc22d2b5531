//! The simulated world: virtual time, one seeded RNG, an event queue, a faulty network, the
//! replicas (honest and Byzantine), the clients, and the checker run after every step.

use crate::Report;
use crate::clients::{CLIENT_BALANCE, Clients};
use crate::config::{Behaviour, NetProfile, SimConfig};
use crate::disk::Disk;
use crate::invariants::Checker;
use phalanx_app::{Config, GenesisAccount, Replica};
use phalanx_core::consensus::{
    CachedVerifier, Effect, Epoch, Input, Member, Params, SignatureVerifier, Timer,
};
use phalanx_core::evidence::Culprit;
use phalanx_core::quorum::Quorum;
use phalanx_core::state::Genesis;
use phalanx_core::wire::{Message, ReplicaId, Reply, Signed};
use phalanx_crypto::{Keypair, PublicKey, VerdictCache, digest};
use phalanx_faults::{Blackboard, Outgoing, Strategy};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap};
use std::sync::Arc;

const CLIENT_RETRY_MS: u64 = 1000;
const BYZ_TICK_MS: u64 = 300;
const SETTLE_MS: u64 = 5000;

enum Event {
    /// `from`: the member whose link carried it (None for clients).
    Deliver {
        from: Option<ReplicaId>,
        to: ReplicaId,
        msg: Message,
    },
    Reply {
        from: ReplicaId,
        reply: Signed<Reply>,
    },
    Timer {
        node: ReplicaId,
        timer: Timer,
        generation: u64,
        /// For a faulty member's twin.
        twin: bool,
    },
    ClientSubmit {
        client: usize,
    },
    ClientRetry {
        client: usize,
        nonce: u64,
    },
    ByzTick {
        node: ReplicaId,
    },
    Crash {
        node: ReplicaId,
    },
    Restart {
        node: ReplicaId,
    },
    Partition {
        side: Vec<bool>,
    },
    Heal,
}

struct Scheduled {
    at: u64,
    order: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.order) == (o.at, o.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    /// Earliest first out of a max-heap.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.order).cmp(&(self.at, self.order))
    }
}

struct Node {
    key: Keypair,
    replica: Option<Replica>,
    strategy: Option<Strategy>,
    disk: Disk,
    generations: [u64; Timer::COUNT],
    last_executed: u64,
    /// A faulty member run as two replicas with one key (Twins, Bano et al.).
    twin: Option<Twin>,
}

/// The second replica of a faulty member. Each runs the honest protocol on its own; the members
/// in `peers` reach the twin, the others the original, so what they each see of the one key
/// differs the way a real equivocator's would, along paths the protocol itself takes.
struct Twin {
    replica: Replica,
    generations: [u64; Timer::COUNT],
    peers: BTreeSet<ReplicaId>,
    /// Whether each replica also sends only to its own side (two consistent identities, one
    /// per side) rather than to everyone.
    confined: bool,
}

pub struct World {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    now: u64,
    order: u64,
    queue: BinaryHeap<Scheduled>,
    nodes: Vec<Node>,
    config: Config,
    cache: Arc<VerdictCache>,
    client_verifier: CachedVerifier,
    clients: Clients,
    /// The federated-learning workload, when the run has one.
    trainer: Option<crate::federated::Trainer>,
    checker: Checker,
    board: Blackboard,
    faulty: BTreeSet<ReplicaId>,
    byzantine_keys: BTreeSet<PublicKey>,
    partition: Option<Vec<bool>>,
    messages: u64,
    evidence: u64,
    max_view: u64,
    /// When the last scheduled network fault or restart is over.
    faults_end: u64,
    verbose: bool,
    pub trace: Vec<String>,
}

impl World {
    pub fn new(cfg: SimConfig, verbose: bool) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let n = cfg.nodes;
        let f = Quorum::max_faults(n);
        let cluster = digest(format!("phalanx-sim/{}", cfg.seed).as_bytes());
        let key_for = |role: &str, i: usize| {
            Keypair::from_seed(*digest(format!("{}/{role}/{i}", cfg.seed).as_bytes()).as_bytes())
        };
        let agent_keys: Vec<Keypair> = (0..n).map(|i| key_for("agent", i)).collect();
        let client_keys: Vec<Keypair> = (0..cfg.clients).map(|i| key_for("client", i)).collect();
        let mut accounts: Vec<GenesisAccount> = client_keys
            .iter()
            .enumerate()
            .map(|(i, k)| GenesisAccount {
                name: Clients::name(i),
                owner: k.public(),
                balance: CLIENT_BALANCE,
            })
            .collect();
        accounts.extend(agent_keys.iter().enumerate().map(|(i, k)| GenesisAccount {
            name: format!("agent-{i}"),
            owner: k.public(),
            balance: 1_000,
        }));
        let members = agent_keys
            .iter()
            .enumerate()
            .map(|(i, k)| Member { name: format!("bft-agent-{}", i + 1), key: k.public() })
            .collect();
        let k = cfg.checkpoint_interval;
        let params = Params {
            checkpoint_interval: k,
            log_window: 2 * k,
            max_inflight: k,
            batch_size: 32,
            batch_delay_ms: 10,
            view_change_timeout_ms: 1000,
            resend_interval_ms: 300,
            ..Params::default()
        };
        let operator = key_for("operator", 0);
        // Only runs with federated rounds have an operator (the others keep their old genesis).
        let operator_key = (cfg.federated_rounds > 0).then(|| operator.public());
        let genesis = Genesis { operator: operator_key, ..Genesis::default() };
        let checker =
            Checker::new(&accounts.iter().map(|a| (a.name.clone(), a.owner, a.balance)).collect::<Vec<_>>());
        let app = phalanx_app::Genesis { accounts };
        let config = Config { cluster_id: cluster, epoch: Epoch::genesis(members, f), params, genesis, app };
        if let Err(e) = config.validate() {
            panic!("the simulator built an invalid configuration: {e}");
        }

        // Who is faulty, and how.
        let faulty: BTreeSet<ReplicaId> = match &cfg.faulty_ids {
            Some(ids) => ids.iter().map(|i| *i as ReplicaId).collect(),
            None => {
                let mut ids: Vec<ReplicaId> = (0..n as ReplicaId).collect();
                for i in (1..ids.len()).rev() {
                    ids.swap(i, rng.random_range(0..=i));
                }
                ids.into_iter().take(cfg.faulty).collect()
            }
        };
        // Never cleared within a run (a run is far smaller than this).
        let cache = Arc::new(VerdictCache::new(usize::MAX));
        let mut nodes = Vec::with_capacity(n);
        for (i, key) in agent_keys.into_iter().enumerate() {
            let id = i as ReplicaId;
            let strategy = (faulty.contains(&id) && !cfg.behaviours.is_empty()).then(|| {
                let mut set = BTreeSet::new();
                let k = rng.random_range(1..=cfg.behaviours.len().min(3));
                while set.len() < k {
                    set.insert(cfg.behaviours[rng.random_range(0..cfg.behaviours.len())]);
                }
                Strategy::new(id, set, key.clone(), cluster, n, &mut rng)
            });
            let verifier = Box::new(CachedVerifier::new(cache.clone(), seed32(cfg.seed, i as u64)));
            let replica = Replica::new(id, key.clone(), config.clone(), verifier);
            // Half the chaos members run as twins, each twin reached by a random half of the others.
            let twin = strategy
                .as_ref()
                .is_some_and(|s| s.behaviours.contains(&Behaviour::Chaos) && rng.random_bool(0.5))
                .then(|| {
                    let verifier =
                        Box::new(CachedVerifier::new(cache.clone(), seed32(cfg.seed, (1 << 32) + i as u64)));
                    let peers = (0..n as ReplicaId).filter(|p| *p != id && rng.random_bool(0.5)).collect();
                    Twin {
                        replica: Replica::new(id, key.clone(), config.clone(), verifier),
                        generations: [0; Timer::COUNT],
                        peers,
                        confined: rng.random_bool(0.5),
                    }
                });
            nodes.push(Node {
                key,
                replica: Some(replica),
                strategy,
                disk: Disk::default(),
                generations: [0; Timer::COUNT],
                last_executed: 0,
                twin,
            });
        }
        let byzantine_keys = faulty.iter().map(|i| nodes[*i as usize].key.public()).collect();
        let mut clients = Clients::new(client_keys, cfg.txs, f, cluster);
        let trainer = (cfg.federated_rounds > 0)
            .then(|| {
                let op = clients.add_scripted(operator);
                crate::federated::Trainer::new(cfg.federated_rounds, op, &clients, cfg.seed)
            })
            .flatten();
        let client_verifier = CachedVerifier::new(cache.clone(), seed32(cfg.seed, u64::MAX));
        let mut w = World {
            cfg,
            rng,
            now: 0,
            order: 0,
            queue: BinaryHeap::new(),
            nodes,
            config,
            cache,
            client_verifier,
            clients,
            trainer,
            checker,
            board: Blackboard { colluders: faulty.iter().copied().collect(), ..Blackboard::default() },
            faulty,
            byzantine_keys,
            partition: None,
            messages: 0,
            evidence: 0,
            max_view: 0,
            faults_end: 0,
            verbose,
            trace: Vec::new(),
        };
        w.schedule_faults();
        w
    }

    fn log(&mut self, line: String) {
        if self.verbose {
            self.trace.push(format!("[{:>7}ms] {line}", self.now));
        }
    }

    fn push(&mut self, after: u64, event: Event) {
        self.order += 1;
        self.queue.push(Scheduled { at: self.now + after, order: self.order, event });
    }

    fn schedule_faults(&mut self) {
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

    fn link_up(&self, a: ReplicaId, b: ReplicaId) -> bool {
        match &self.partition {
            Some(side) => side[a as usize] == side[b as usize],
            None => true,
        }
    }

    fn latency(&mut self) -> Option<u64> {
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
    fn send(&mut self, from: ReplicaId, to: ReplicaId, msg: Message, extra: u64) {
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

    fn client_broadcast(&mut self, req: phalanx_core::wire::ClientRequest) {
        for to in 0..self.cfg.nodes as ReplicaId {
            self.messages += 1;
            if let Some(d) = self.latency() {
                self.push(d, Event::Deliver { from: None, to, msg: Message::Request(req.clone()) });
            }
        }
    }

    pub fn run(mut self) -> Report {
        let started = std::time::Instant::now();
        for i in 0..self.nodes.len() {
            let effects = self.nodes[i].replica.as_mut().map(|r| r.start(0)).unwrap_or_default();
            self.apply_effects(i as ReplicaId, effects);
            let effects = self.nodes[i].twin.as_mut().map(|t| t.replica.start(0)).unwrap_or_default();
            self.apply_twin_effects(i as ReplicaId, effects);
        }
        for c in 0..self.cfg.clients {
            let at = self.rng.random_range(0..20);
            self.push(at, Event::ClientSubmit { client: c });
        }
        if let Some(t) = self.trainer.as_mut() {
            for client in t.open_next(&mut self.clients) {
                self.push(0, Event::ClientSubmit { client });
            }
        }
        let mut finish_at: Option<u64> = None;
        let mut converge_to = 0;
        let mut liveness = None;
        while let Some(s) = self.queue.pop() {
            self.now = s.at;
            if finish_at.is_some_and(|t| self.now > t) {
                break;
            }
            if self.now > self.cfg.deadline_ms {
                liveness = Some(format!(
                    "{} of {} transfers not accepted by t={}ms",
                    self.clients.unfinished(),
                    self.cfg.txs,
                    self.cfg.deadline_ms
                ));
                break;
            }
            self.step(s.event);
            if finish_at.is_none() && self.clients.done() {
                // Convergence is judged once the network is stable again: by then every honest
                // replica must have executed what the most advanced one had when clients finished.
                finish_at = Some(self.now.max(self.faults_end) + SETTLE_MS);
                converge_to = self.honest_progress().into_iter().map(|h| h.1).max().unwrap_or(0);
            }
        }
        if liveness.is_none() && !self.clients.done() {
            liveness =
                Some(format!("{} transfers not accepted and nothing left to do", self.clients.unfinished()));
        }
        if liveness.is_none() {
            liveness = self.convergence(converge_to);
        }
        let federated_rounds = self.check_federated(liveness.is_none());
        let (quarantined, detections, detection_failure) = self.detection();
        self.checker.finish();
        let mut lat = self.clients.latencies.clone();
        lat.sort_unstable();
        Report {
            seed: self.cfg.seed,
            committed: self.clients.committed,
            rejected: self.clients.rejected,
            messages: self.messages,
            virtual_ms: self.now,
            latency_p50_ms: lat.get(lat.len() / 2).copied().unwrap_or(0),
            safety_violations: std::mem::take(&mut self.checker.violations),
            liveness_failure: liveness,
            detection_failure,
            evidence: self.evidence,
            quarantined,
            detections,
            max_view: self.max_view,
            federated_rounds,
            faulty: self
                .nodes
                .iter()
                .filter_map(|n| n.strategy.as_ref())
                .map(|s| (s.id, s.behaviours.iter().copied().collect()))
                .collect(),
            wall_ms: started.elapsed().as_millis() as u64,
            replay: self.cfg.replay_command(),
            trace: std::mem::take(&mut self.trace),
        }
    }

    /// Honest replicas that are up hold the same result for every federated round they closed,
    /// and the most advanced one's results pass the workload's checks. Returns the last round
    /// that one closed.
    fn check_federated(&mut self, finished: bool) -> u64 {
        let Some(trainer) = &self.trainer else { return 0 };
        let honest: Vec<(usize, &Replica)> = (self.honest_progress().iter())
            .filter_map(|(i, _)| self.nodes[*i].replica.as_ref().map(|r| (*i, r)))
            .collect();
        let results = |r: &Replica| {
            r.state()
                .app
                .federated
                .models
                .values()
                .flat_map(|m| m.results.iter().cloned())
                .collect::<Vec<_>>()
        };
        let mut failures = Vec::new();
        let Some((_, top)) = honest.iter().max_by_key(|(_, r)| r.last_executed()) else { return 0 };
        let reference = results(top);
        for (i, r) in &honest {
            // Round by round: a lagging replica may still keep older results.
            let differs = results(r).iter().any(|a| reference.iter().any(|b| b.round == a.round && b != a));
            if differs {
                failures.push(format!("federated results differ between honest replicas: replica {i}"));
            }
        }
        failures.extend(trainer.check(&reference, finished));
        for f in failures {
            self.checker.violations.push(format!("t={}ms: {f}", self.now));
        }
        reference.last().map_or(0, |r| r.round)
    }

    /// (replica, last executed seq) of every honest replica that is up.
    fn honest_progress(&self) -> Vec<(usize, u64)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.faulty.contains(&(*i as ReplicaId)))
            .filter_map(|(i, n)| n.replica.as_ref().map(|r| (i, r.last_executed())))
            .collect()
    }

    /// Which faulty agents every honest replica that is up holds quarantined, the detection log
    /// of the most advanced one by fault type, and (if required) who escaped quarantine.
    fn detection(&self) -> (Vec<u32>, std::collections::BTreeMap<String, u64>, Option<String>) {
        let honest: Vec<&Replica> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.faulty.contains(&(*i as ReplicaId)))
            .filter_map(|(_, n)| n.replica.as_ref())
            .collect();
        let quarantined: Vec<u32> = self
            .faulty
            .iter()
            .copied()
            .filter(|id| {
                let key = self.nodes[*id as usize].key.public();
                !honest.is_empty() && honest.iter().all(|r| r.state().accountability.is_quarantined(&key))
            })
            .collect();
        let mut detections = std::collections::BTreeMap::new();
        if let Some(r) = honest.iter().max_by_key(|r| r.last_executed()) {
            for e in &r.state().accountability.log {
                *detections.entry(e.fault_type.clone()).or_insert(0) += 1;
            }
        }
        // An agent whose probabilistic fault never got its chance in the run has nothing to
        // be caught for.
        let acted = |id: &u32| self.nodes[*id as usize].strategy.as_ref().is_some_and(|s| s.acted);
        let missed: Vec<u32> =
            self.faulty.iter().copied().filter(|id| acted(id) && !quarantined.contains(id)).collect();
        let failure = (self.cfg.require_quarantine && !missed.is_empty())
            .then(|| format!("faulty agents {missed:?} were not quarantined on every honest replica"));
        (quarantined, detections, failure)
    }

    /// After the settle time every honest replica has caught up to `target`.
    fn convergence(&self, target: u64) -> Option<String> {
        self.honest_progress()
            .iter()
            .find(|h| h.1 < target)
            .map(|(i, s)| format!("honest replica {i} stuck at seq {s}; the cluster had reached {target}"))
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::Deliver { from, to, msg } => {
                let node = &mut self.nodes[to as usize];
                if let Some(s) = node.strategy.as_mut() {
                    if s.crashed(self.now) {
                        return;
                    }
                    s.remember(&msg);
                    // Colluders share what any of them sees.
                    if s.behaviours.contains(&Behaviour::Chaos) {
                        self.board.share(&msg);
                    }
                }
                if let Some(t) = &node.twin {
                    match from {
                        Some(peer) if t.peers.contains(&peer) => {
                            return self.input_twin(to, Input::FromPeer(peer, msg));
                        }
                        // Clients reach both.
                        None => self.input_twin(to, Input::Message(msg.clone())),
                        Some(_) => {}
                    }
                }
                let input = match from {
                    Some(peer) => Input::FromPeer(peer, msg),
                    None => Input::Message(msg),
                };
                self.input(to, input);
            }
            Event::Timer { node, timer, generation, twin: true } => {
                if self.nodes[node as usize]
                    .twin
                    .as_ref()
                    .is_some_and(|t| t.generations[timer.index()] == generation)
                    && !self.nodes[node as usize].strategy.as_ref().is_some_and(|s| s.crashed(self.now))
                {
                    self.input_twin(node, Input::Timeout(timer));
                }
            }
            Event::Timer { node, timer, generation, twin: false } => {
                if self.nodes[node as usize].generations[timer.index()] == generation {
                    if self.nodes[node as usize].strategy.as_ref().is_some_and(|s| s.crashed(self.now)) {
                        return;
                    }
                    self.input(node, Input::Timeout(timer));
                }
            }
            Event::Reply { from, reply } => {
                if !self.clients.wants(&reply.body) {
                    return;
                }
                let key = self.config.epoch.members[from as usize].key;
                let item = reply.verify_item(key, &self.config.cluster_id);
                if !self.client_verifier.verify(&[item])[0] {
                    return;
                }
                for a in self.clients.on_reply(from, &reply.body, self.now) {
                    self.checker.accepted(self.now, a.key, a.nonce, a.op, a.outcome);
                    let mut wake = vec![a.client];
                    if let Some(t) = self.trainer.as_mut().filter(|_| a.scripted) {
                        wake.extend(t.on_answer(a.client, &mut self.clients));
                    }
                    for client in wake {
                        let think = self.rng.random_range(0..5);
                        self.push(think, Event::ClientSubmit { client });
                    }
                }
            }
            Event::ClientSubmit { client } => {
                let now = self.now;
                if let Some(req) = self.clients.next_request(client, now, &mut self.rng) {
                    let nonce = req.body.nonce;
                    self.client_broadcast(req);
                    self.push(CLIENT_RETRY_MS, Event::ClientRetry { client, nonce });
                }
            }
            Event::ClientRetry { client, nonce } => {
                if let Some(req) = self.clients.outstanding(client, nonce) {
                    self.client_broadcast(req);
                    self.push(CLIENT_RETRY_MS, Event::ClientRetry { client, nonce });
                }
            }
            Event::ByzTick { node } => self.byzantine_tick(node),
            Event::Crash { node } => {
                self.log(format!("crash replica {node}"));
                let n = &mut self.nodes[node as usize];
                n.replica = None;
                for g in n.generations.iter_mut() {
                    *g += 1;
                }
            }
            Event::Restart { node } => {
                self.log(format!("restart replica {node} from disk"));
                let n = &self.nodes[node as usize];
                let verifier =
                    Box::new(CachedVerifier::new(self.cache.clone(), seed32(self.cfg.seed, 0xabc)));
                let mut r =
                    Replica::recover(node, n.key.clone(), self.config.clone(), verifier, n.disk.records())
                        .expect("a simulated disk is never corrupt");
                let effects = r.start(self.now);
                let n = &mut self.nodes[node as usize];
                n.last_executed = r.last_executed();
                n.replica = Some(r);
                self.apply_effects(node, effects);
            }
            Event::Partition { side } => {
                self.log(format!("partition {side:?}"));
                self.partition = Some(side);
            }
            Event::Heal => {
                self.log("partition healed".into());
                self.partition = None;
            }
        }
    }

    /// An input for a faulty member's twin.
    fn input_twin(&mut self, node: ReplicaId, input: Input) {
        let now = self.now;
        let Some(t) = self.nodes[node as usize].twin.as_mut() else { return };
        let effects = t.replica.handle(now, input);
        self.apply_twin_effects(node, effects);
    }

    /// What a twin does: it sends (through the member's strategy), replies and sets timers; its
    /// own state is nobody's concern (it is faulty).
    fn apply_twin_effects(&mut self, node: ReplicaId, effects: Vec<Effect>) {
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
                    t.generations[timer.index()] += 1;
                    let generation = t.generations[timer.index()];
                    self.push(after_ms, Event::Timer { node, timer, generation, twin: true });
                }
                Effect::CancelTimer(timer) => {
                    if let Some(t) = self.nodes[node as usize].twin.as_mut() {
                        t.generations[timer.index()] += 1;
                    }
                }
                _ => {}
            }
        }
    }

    fn input(&mut self, node: ReplicaId, input: Input) {
        let now = self.now;
        let Some(r) = self.nodes[node as usize].replica.as_mut() else { return };
        let effects = r.handle(now, input);
        self.apply_effects(node, effects);
        self.check_bounds(node);
    }

    fn byzantine_tick(&mut self, node: ReplicaId) {
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

    fn apply_effects(&mut self, node: ReplicaId, effects: Vec<Effect>) {
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
                    let g = &mut self.nodes[i].generations[timer.index()];
                    *g += 1;
                    let generation = *g;
                    self.push(after_ms, Event::Timer { node, timer, generation, twin: false });
                }
                Effect::CancelTimer(timer) => self.nodes[i].generations[timer.index()] += 1,
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

    /// Sends what a replica wants to send, through its Byzantine strategy if it has one.
    fn emit(&mut self, node: ReplicaId, msg: Message, to: Vec<ReplicaId>) {
        self.emit_as(node, false, msg, to)
    }

    /// Sends for a member's original replica or its twin; a confined twin pair each talk only
    /// to their own side.
    fn emit_as(&mut self, node: ReplicaId, twin: bool, msg: Message, mut to: Vec<ReplicaId>) {
        let i = node as usize;
        if let Some(t) = self.nodes[i].twin.as_ref().filter(|t| t.confined) {
            to.retain(|p| t.peers.contains(p) == twin);
        }
        if let Some(mut s) = self.nodes[i].strategy.take() {
            let forged_before = s.forged_requests.len();
            let out: Vec<Outgoing> = s.rewrite(msg, &to, &mut self.rng, &mut self.board);
            self.checker.forged.extend(s.forged_requests[forged_before..].iter().copied());
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

    /// Whatever peers send, an honest replica's memory stays bounded.
    fn check_bounds(&mut self, node: ReplicaId) {
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

/// Seed for a verifier's batch coefficients, derived from the run seed.
fn seed32(seed: u64, salt: u64) -> [u8; 32] {
    *digest(&[seed.to_le_bytes(), salt.to_le_bytes()].concat()).as_bytes()
}
