//! The simulated world: virtual time, one seeded RNG, an event queue, a faulty network, the
//! replicas (honest and Byzantine), the clients, and the checker run after every step.

use crate::Report;
use crate::config::{Behaviour, NetProfile, SimConfig};
use crate::disk::Disk;
use crate::invariants::{Bounds, Checker, Run};
use crate::workload::clients::{CLIENT_BALANCE, Clients};
use phalanx_app::{Config, GenesisAccount, Replica};
use phalanx_core::consensus::{
    CachedVerifier, Effect, Epoch, Input, Member, Params, SignatureVerifier, Timer, Timers,
};
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

mod host;
mod network;
mod scheduler;
mod verdict;

use scheduler::{Event, Scheduled};

const CLIENT_RETRY_MS: u64 = 1000;
const BYZ_TICK_MS: u64 = 300;
const SETTLE_MS: u64 = 5000;

struct Node {
    key: Keypair,
    replica: Option<Replica>,
    strategy: Option<Strategy>,
    disk: Disk,
    timers: Timers,
    /// A faulty member run as two replicas with one key (Twins, Bano et al.).
    twin: Option<Twin>,
}

/// The second replica of a faulty member. Each runs the honest protocol on its own; the members
/// in `peers` reach the twin, the others the original, so what they each see of the one key
/// differs the way a real equivocator's would, along paths the protocol itself takes.
struct Twin {
    replica: Replica,
    timers: Timers,
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
    trainer: Option<crate::workload::federated::Trainer>,
    checker: Checker,
    board: Blackboard,
    faulty: BTreeSet<ReplicaId>,
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
        let genesis_accounts: Vec<(String, PublicKey, u64)> =
            accounts.iter().map(|a| (a.name.clone(), a.owner, a.balance)).collect();
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
                        timers: Timers::default(),
                        peers,
                        confined: rng.random_bool(0.5),
                    }
                });
            nodes.push(Node {
                key,
                replica: Some(replica),
                strategy,
                disk: Disk::default(),
                timers: Timers::default(),
                twin,
            });
        }
        let byzantine_keys: BTreeSet<PublicKey> =
            faulty.iter().map(|i| nodes[*i as usize].key.public()).collect();
        let checker = Checker::new(Run {
            genesis: genesis_accounts,
            faulty: faulty.clone(),
            byzantine_keys,
            cluster,
            members: config.epoch.members.iter().map(|m| m.key).collect(),
            testing: config.genesis.testing,
            max_clock_skew_ms: config.params.max_clock_skew_ms,
            bounds: Bounds {
                log_slots: 2 * config.params.log_window as usize + 64,
                buffered: n * config.params.max_buffered_per_sender,
            },
        });
        let mut clients = Clients::new(client_keys, cfg.txs, f, cluster);
        let trainer = (cfg.federated_rounds > 0)
            .then(|| {
                let op = clients.add_scripted(operator);
                crate::workload::federated::Trainer::new(cfg.federated_rounds, op, &clients, cfg.seed)
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
        let safety_violations = self.checker.finish();
        let mut lat = self.clients.latencies.clone();
        lat.sort_unstable();
        Report {
            seed: self.cfg.seed,
            committed: self.clients.committed,
            rejected: self.clients.rejected,
            messages: self.messages,
            virtual_ms: self.now,
            latency_p50_ms: lat.get(lat.len() / 2).copied().unwrap_or(0),
            safety_violations,
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
                    .is_some_and(|t| t.timers.is_current(timer, generation))
                    && !self.nodes[node as usize].strategy.as_ref().is_some_and(|s| s.crashed(self.now))
                {
                    self.input_twin(node, Input::Timeout(timer));
                }
            }
            Event::Timer { node, timer, generation, twin: false } => {
                if self.nodes[node as usize].timers.is_current(timer, generation) {
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
                n.timers.cancel_all();
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
                self.checker.recovered(node as usize, r.last_executed());
                self.nodes[node as usize].replica = Some(r);
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
}

/// Seed for a verifier's batch coefficients, derived from the run seed.
fn seed32(seed: u64, salt: u64) -> [u8; 32] {
    *digest(&[seed.to_le_bytes(), salt.to_le_bytes()].concat()).as_bytes()
}
