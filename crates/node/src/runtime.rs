//! The node's event loop: one task owns the replica; network, HTTP and timers feed it inputs;
//! it performs the replica's effects (persist first, then send).

use crate::directory::SharedDirectory;
use crate::injected::{self, Fault};
use crate::metrics::{Metrics, PeerCounters};
use crate::storage::Store;
use crate::transport::{FairInbound, Outbox};
use bytes::Bytes;
use phalanx_app::{MemoryEntry, Replica};
use phalanx_core::consensus::reputation::Reputation;
use phalanx_core::consensus::{Effect, Host, Input, Record, ReplicaStatus, Timer, Timers, perform};
use phalanx_core::state::Accountability;
use phalanx_core::wire::{
    self, ClientRequest, CommitCert, EpochProof, Message, Operation, OperatorAction, Outcome, ReplicaId,
    Reply, Signed,
};
use phalanx_crypto::{Digest, PublicKey};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// What the HTTP API asks the replica loop.
pub enum Query {
    Status(oneshot::Sender<ReplicaStatus>),
    /// Applied and rejected operation counts.
    Counters(oneshot::Sender<(u64, u64)>),
    /// The ledger accounts (name, owner, balance).
    Accounts(oneshot::Sender<Vec<(String, PublicKey, u64)>>),
    /// The signed reply for (client, nonce), if this replica executed it recently.
    /// The signed reply and, while the seq is still in the log, its commit certificate.
    Reply(PublicKey, u64, oneshot::Sender<Option<(SharedReply, Option<CommitCert>)>>),
    /// A live memory value from committed state, with the replicated clock.
    Memory(String, String, oneshot::Sender<Option<(MemoryEntry, u64)>>),
    /// The committed accountability state and this replica's view of each member.
    Accountability(oneshot::Sender<(Box<Accountability>, Vec<Reputation>, Option<String>)>),
    /// The proof of the reconfiguration that created an epoch, if this replica executed it.
    EpochProof(u64, oneshot::Sender<Option<EpochProof>>),
    /// The view changes this node went through (most recent last).
    ViewChanges(oneshot::Sender<Vec<ViewChangeEvent>>),
    /// What a view of federated rounds needs, copied from committed state (`None`: no such
    /// model, or no aggregate yet).
    Federated(crate::federated::View, oneshot::Sender<Option<Box<crate::federated::Snapshot>>>),
    /// The live keys of a memory namespace (key, stored seq, expiry), at most `MEMORY_LIST`.
    MemoryList(String, oneshot::Sender<Vec<(String, u64, Option<u64>)>>),
    /// What `GET /metrics` reads of the replica's state.
    Metrics(oneshot::Sender<Box<crate::metrics::Snapshot>>),
    /// One line per decision held.
    Decisions(oneshot::Sender<Vec<serde_json::Value>>),
    /// A decision with the names it mentions and the proof of its closing batch.
    Decision(String, oneshot::Sender<Option<Box<crate::decisions::Copy>>>),
}

/// One view change as this node saw it (field names as in docs/operations.md, "View-change events").
#[derive(Clone, Debug, serde::Serialize)]
pub struct ViewChangeEvent {
    pub old_primary: String,
    pub new_primary: String,
    pub view_number: u64,
    /// From leaving the old view to entering the new one, on this node's clock.
    pub view_change_duration_ms: u64,
    pub triggered_by: String,
    pub quorum_met: bool,
    pub at_ms: u64,
}

/// View changes remembered for the API.
const VIEW_CHANGE_EVENTS: usize = 256;

/// One signed reply covers a whole batch; it is shared by every request it answers.
pub type SharedReply = Arc<Signed<Reply>>;

pub enum Command {
    /// A message that arrived on the authenticated link of this member.
    Net(ReplicaId, Message),
    /// Client requests from the HTTP API's batch endpoint (signatures already checked); each
    /// answer is sent when its request executes.
    SubmitMany(Vec<(ClientRequest, oneshot::Sender<SharedReply>)>),
    /// Periodic actions of an injected fault (double spends, replays).
    FaultTick,
    /// A client request from the HTTP API; the reply is sent when it executes.
    Submit(ClientRequest, oneshot::Sender<SharedReply>),
    Timer(Timer, u64),
    Query(Query),
}

/// What this node sent and wrote, for benchmarks (`GET /v1/status`, `traffic`).
#[derive(Default, Debug)]
pub struct Traffic {
    pub messages_sent: AtomicU64,
    /// Messages sent, by kind (indexed like `Message::NAMES`), to see what traffic is made of.
    pub sent_by_kind: [AtomicU64; Message::NAMES.len()],
    pub bytes_sent: AtomicU64,
    /// Frames dropped because a peer's queue was full (it stopped reading or is unreachable).
    pub frames_dropped: AtomicU64,
    /// Durable journal commits (each one fsync).
    pub fsyncs: AtomicU64,
    /// Loop rounds: inputs handled together, persisted with one fsync, then sent.
    pub rounds: AtomicU64,
    pub inputs: AtomicU64,
}

/// Inputs handled in one round at most, so queries and timers are never starved.
const ROUND_INPUTS: usize = 1024;

/// Keys listed per memory namespace, at most.
pub const MEMORY_LIST: usize = 1000;

/// A closing batch larger than this is not kept as a decision's proof (the outcome is still
/// confirmed by f+1 agents).
const MAX_DECISION_PROOF_BYTES: usize = 1 << 20;

/// Replies kept to answer status queries and retransmissions.
const RECENT_REPLIES: usize = 100_000;
/// Requests with waiting HTTP clients before closed waiters are swept.
const MAX_WAITING: usize = 10_000;
/// Clients waiting on one request, at most.
const WAITERS_PER_REQUEST: usize = 16;

/// A request as replies name it: client, nonce and operation digest.
type ReplyKey = (PublicKey, u64, Digest);
/// An HTTP client waiting for the reply to the request whose operation digest this is, and
/// when the request reached this node.
type Waiter = (Digest, oneshot::Sender<SharedReply>, Instant);

/// Opens the outbound link to a peer (and keeps it open, reconnecting).
pub struct Connector {
    pub identity: crate::transport::Identity,
    /// Peer name → where to dial it instead of its listed address (`dial` in node.toml).
    pub dial: std::collections::BTreeMap<String, std::net::SocketAddr>,
}

impl Connector {
    fn connect(&self, peer: ReplicaId, addr: std::net::SocketAddr) -> Outbox {
        let (tx, rx) = crate::transport::outbox();
        tokio::spawn(crate::transport::connect_loop(self.identity.clone(), peer, addr, rx));
        tx
    }
}

pub struct Runtime {
    pub replica: Replica,
    pub store: Store,
    /// Outbound links by member id (None: not connected, or this node).
    pub peers: Vec<Option<Outbox>>,
    /// What is sent to each peer, counted (indexed like `peers`).
    outbound: Vec<Option<PeerCounters>>,
    metrics: Arc<Metrics>,
    /// Detection-log entries already counted in `metrics`.
    detections_counted: u64,
    pub commands: mpsc::Sender<Command>,
    connector: Connector,
    directory: SharedDirectory,
    timers: Timers,
    /// Indexed by (client, nonce), each waiter and reply kept with its request's operation
    /// digest and matched on it: a reply to another request under the same nonce (a rejected
    /// payload anyone could have made up) must not answer or shadow the honest client's.
    waiters: HashMap<(PublicKey, u64), Vec<Waiter>>,
    recent: HashMap<(PublicKey, u64), Vec<(Digest, SharedReply)>>,
    recent_order: VecDeque<ReplyKey>,
    fault: Option<Fault>,
    /// When this node left its last active view, and that view's primary.
    left_view: Option<(u64, ReplicaId)>,
    view_changes: VecDeque<ViewChangeEvent>,
    pub traffic: Arc<Traffic>,
}

impl Runtime {
    pub fn new(
        replica: Replica,
        store: Store,
        connector: Connector,
        directory: SharedDirectory,
        commands: mpsc::Sender<Command>,
        traffic: Arc<Traffic>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let detections_counted = replica.state().accountability.log_total;
        let mut rt = Runtime {
            replica,
            store,
            peers: Vec::new(),
            outbound: Vec::new(),
            metrics,
            detections_counted,
            commands,
            connector,
            directory,
            timers: Timers::default(),
            waiters: HashMap::new(),
            recent: HashMap::new(),
            recent_order: VecDeque::new(),
            fault: None,
            left_view: None,
            view_changes: VecDeque::new(),
            traffic,
        };
        rt.connect_all();
        rt.publish_counters();
        rt
    }

    fn name(&self, id: ReplicaId) -> String {
        self.directory.read().map(|d| d.name(id)).unwrap_or_default()
    }

    /// Opens links to every agent in the directory we are not linked to yet (a standby joiner
    /// links to the genesis members; everyone links to joiners once their epoch starts).
    fn connect_all(&mut self) {
        let me = self.replica.id();
        let agents = self.directory.read().map(|d| d.agents.clone()).unwrap_or_default();
        if self.peers.len() < agents.len() {
            self.peers.resize(agents.len(), None);
            self.outbound.resize(agents.len(), None);
        }
        for (i, a) in agents.iter().enumerate() {
            if i as ReplicaId == me || self.peers[i].is_some() {
                continue;
            }
            if let Some(addr) = self.connector.dial.get(&a.name).copied().or(a.replica_addr) {
                self.peers[i] = Some(self.connector.connect(i as ReplicaId, addr));
                self.outbound[i] = Some(self.metrics.outbound(&a.name));
            }
        }
    }

    /// A new epoch started here: learn its members and where joiners listen, link to them.
    fn epoch_entered(&mut self, epoch: &phalanx_core::consensus::Epoch) {
        let addresses = self.replica.state().accountability.addresses.clone();
        let me = self.replica.id();
        if let Ok(mut d) = self.directory.write() {
            d.enter(epoch, &addresses, me);
        }
        let role = if self.replica.is_voter() { "voter" } else { "not a voter" };
        tracing::warn!(epoch = epoch.number, start = epoch.start, voters = ?epoch.voters, role, "entered a new epoch");
        self.connect_all();
    }

    /// The loop. Under load, whatever is queued is handled together in one round: its records
    /// are persisted with a single fsync, then its messages leave (group commit). An idle node
    /// handles each input as it comes, so light load adds no delay.
    ///
    /// Peer messages come from `inbound`, one member at a time, and alternate with commands
    /// (client requests, timers, queries): neither a flooding member nor a flood of client
    /// requests can hold the other back.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>, mut inbound: FairInbound) {
        let effects = self.replica.start(now_ms());
        self.apply(effects);
        self.connector.identity.views.set(self.replica.view(), self.replica.view_change_target());
        loop {
            let first = tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => cmd,
                    None => return,
                },
                (peer, m) = inbound.recv() => Command::Net(peer, m),
            };
            let mut effects = Vec::new();
            let mut next = Some(first);
            let mut handled = 0;
            while let Some(cmd) = next.take() {
                handled += 1;
                effects.extend(self.handle(cmd));
                if handled < ROUND_INPUTS {
                    let mut net = || inbound.try_recv().map(|(peer, m)| Command::Net(peer, m));
                    next = if handled % 2 == 0 {
                        net().or_else(|| rx.try_recv().ok())
                    } else {
                        rx.try_recv().ok().or_else(net)
                    };
                }
            }
            self.traffic.rounds.fetch_add(1, Ordering::Relaxed);
            self.traffic.inputs.fetch_add(handled as u64, Ordering::Relaxed);
            self.apply(effects);
            self.connector.identity.views.set(self.replica.view(), self.replica.view_change_target());
        }
    }

    fn handle(&mut self, cmd: Command) -> Vec<Effect> {
        match cmd {
            Command::Net(peer, m) => self.replica.handle(now_ms(), Input::FromPeer(peer, m)),
            Command::FaultTick => {
                self.fault_tick();
                Vec::new()
            }
            Command::Submit(req, tx) => self.submit(req, tx),
            Command::SubmitMany(reqs) => {
                let mut effects = Vec::new();
                for (req, tx) in reqs {
                    effects.extend(self.submit(req, tx));
                }
                effects
            }
            Command::Timer(t, generation) => {
                if !self.timers.is_current(t, generation) {
                    return Vec::new();
                }
                self.replica.handle(now_ms(), Input::Timeout(t))
            }
            Command::Query(q) => {
                self.answer(q);
                Vec::new()
            }
        }
    }

    /// A client request: answered at once if it executed recently, else remembered until it does.
    fn submit(&mut self, req: ClientRequest, tx: oneshot::Sender<SharedReply>) -> Vec<Effect> {
        let (key, op) = ((req.body.client, req.body.nonce), req.op_digest());
        if let Some((_, r)) = self.recent.get(&key).and_then(|v| v.iter().find(|(d, _)| *d == op)) {
            let _ = tx.send(r.clone());
            return Vec::new();
        }
        if self.waiters.len() > MAX_WAITING {
            // Forget clients that gave up (their HTTP request timed out).
            for ws in self.waiters.values_mut() {
                ws.retain(|(_, w, _)| !w.is_closed());
            }
            self.waiters.retain(|_, ws| !ws.is_empty());
        }
        let w = self.waiters.entry(key).or_default();
        if w.len() < WAITERS_PER_REQUEST {
            w.push((op, tx, Instant::now()));
        }
        self.replica.handle(now_ms(), Input::Message(Message::Request(req)))
    }

    fn answer(&self, q: Query) {
        match q {
            Query::Status(tx) => {
                let _ = tx.send(self.replica.status());
            }
            Query::Counters(tx) => {
                let c = &self.replica.state().counters;
                let _ = tx.send((c.applied, c.rejected_total()));
            }
            Query::Accounts(tx) => {
                let list = self
                    .replica
                    .state()
                    .app
                    .accounts
                    .iter()
                    .map(|(n, a)| (n.clone(), a.owner, a.balance))
                    .collect();
                let _ = tx.send(list);
            }
            Query::Memory(ns, key, tx) => {
                let st = self.replica.state();
                let live =
                    st.app.memory_get(&ns, &key).filter(|e| e.expires_at_ms.is_none_or(|t| t > st.clock_ms));
                let _ = tx.send(live.map(|e| (e.clone(), st.clock_ms)));
            }
            Query::Federated(view, tx) => {
                let state = self.replica.state();
                let snapshot = crate::federated::snapshot(state, self.replica.last_executed(), &view);
                let _ = tx.send(snapshot.map(Box::new));
            }
            Query::MemoryList(ns, tx) => {
                let st = self.replica.state();
                let live = (st.app.memory.range((ns.clone(), String::new())..))
                    .take_while(|((n, _), _)| *n == ns)
                    .filter(|(_, e)| e.expires_at_ms.is_none_or(|t| t > st.clock_ms))
                    .take(MEMORY_LIST)
                    .map(|((_, k), e)| (k.clone(), e.stored_seq, e.expires_at_ms))
                    .collect();
                let _ = tx.send(live);
            }
            Query::Metrics(tx) => {
                let _ = tx.send(Box::new(self.metrics_snapshot()));
            }
            Query::Decisions(tx) => {
                let _ = tx.send(crate::decisions::summaries(self.replica.state()));
            }
            Query::Decision(id, tx) => {
                let copy = crate::decisions::copy(self.replica.state(), &id, self.replica.last_executed());
                let copy = copy.map(|mut c| {
                    c.proof = self.store.decision_proof(&id).unwrap_or_else(|e| {
                        tracing::error!("{e}");
                        None
                    });
                    Box::new(c)
                });
                let _ = tx.send(copy);
            }
            Query::Accountability(tx) => {
                let acc = Box::new(self.replica.state().accountability.clone());
                let _ = tx.send((
                    acc,
                    self.replica.reputations(),
                    self.fault.as_ref().map(|f| f.name().to_string()),
                ));
            }
            Query::EpochProof(epoch, tx) => {
                let _ = tx.send(self.store.epoch_proof(epoch).unwrap_or_else(|e| {
                    tracing::error!("{e}");
                    None
                }));
            }
            Query::ViewChanges(tx) => {
                let _ = tx.send(self.view_changes.iter().cloned().collect());
            }
            Query::Reply(client, nonce, tx) => {
                // Signed requests: one executed operation per (client, nonce).
                let found = self.recent.get(&(client, nonce)).and_then(|v| v.first()).map(|(_, r)| {
                    let cert = self.replica.commit_cert(r.body.seq).cloned();
                    (r.clone(), cert)
                });
                let _ = tx.send(found);
            }
        }
    }

    fn metrics_snapshot(&self) -> crate::metrics::Snapshot {
        let state = self.replica.state();
        let acc = &state.accountability;
        let epoch = self.replica.epoch();
        let quorum = epoch.quorum().ok();
        crate::metrics::Snapshot {
            status: self.replica.status(),
            epoch_voters: epoch.voters.len(),
            quorum: quorum.map(|q| q.quorum()).unwrap_or(0),
            max_faults: quorum.map(|q| q.f).unwrap_or(0),
            applied: state.counters.applied,
            rejected: state.counters.rejected_total(),
            evidence_accepted: acc.evidence_accepted,
            evidence_rejected: acc.evidence_rejected,
            forced_view_changes: acc.forced_view_changes,
            quarantined: acc.quarantined.values().map(|q| q.name.clone()).collect(),
            reputations: self.replica.reputations().iter().map(|r| r.score).collect(),
            digests: self.replica.digest_agreement(),
        }
    }

    /// Queues `bytes`, a message of kind `kind` (`Message::name_index`), for member `to`.
    fn send_frame(&self, to: ReplicaId, kind: usize, bytes: Bytes) {
        if let Some(Some(tx)) = self.peers.get(to as usize) {
            self.traffic.messages_sent.fetch_add(1, Ordering::Relaxed);
            self.traffic.sent_by_kind[kind].fetch_add(1, Ordering::Relaxed);
            self.traffic.bytes_sent.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            let counters = self.outbound.get(to as usize).and_then(Option::as_ref);
            if let Some(c) = counters {
                c.count(kind, bytes.len());
            }
            if Metrics::is_catch_up(kind) {
                self.metrics.catch_up_requests.inc();
            }
            // A full queue means the peer is unreachable or stopped reading; retransmission
            // covers what is dropped.
            if !tx.try_send(bytes) {
                self.traffic.frames_dropped.fetch_add(1, Ordering::Relaxed);
                if let Some(c) = counters {
                    c.dropped();
                }
            }
        }
    }

    /// Sends what the replica wants sent: directly, or through the injected fault's strategy.
    fn emit(&mut self, msg: Message, to: Vec<ReplicaId>) {
        let Some(f) = self.fault.as_mut() else {
            let bytes = Bytes::from(wire::encode(&msg));
            for t in to {
                self.send_frame(t, msg.name_index(), bytes.clone());
            }
            return;
        };
        let out = f.rewrite(msg, &to);
        self.send_outgoing(out);
    }

    fn send_outgoing(&self, out: Vec<injected::Outgoing>) {
        for o in out {
            if o.to == self.replica.id() {
                continue;
            }
            let bytes = Bytes::from(wire::encode(&o.msg));
            if o.extra_delay_ms == 0 {
                self.send_frame(o.to, o.msg.name_index(), bytes);
            } else if let Some(Some(tx)) = self.peers.get(o.to as usize) {
                let tx = tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(o.extra_delay_ms)).await;
                    let _ = tx.try_send(bytes);
                });
            }
        }
    }

    fn fault_tick(&mut self) {
        let (view, stable) = (self.replica.view(), self.replica.stable_cert().clone());
        let Some(f) = self.fault.as_mut() else { return };
        // Above the nonces the replica gives its own reports (clock ms × 1000), or the ledger
        // would drop the double spends as stale.
        let out = f.tick(view, stable, now_ms().saturating_mul(1000) + 500);
        self.send_outgoing(out);
    }

    /// The operator's committed injection reached this agent: misbehave from now on.
    fn inject(&mut self, fault: Option<String>, probability_permille: u32) {
        let Some(name) = fault else {
            tracing::warn!("fault injection cleared: behaving again");
            self.fault = None;
            return;
        };
        let me = self.replica.id();
        let host = injected::Host {
            key: self.replica.keypair(),
            cluster: self.replica.cluster(),
            id: me,
            members: self.peers.len(),
            account: self.name(me),
            seed: crate::os_seed().unwrap_or([7; 32]),
        };
        match Fault::new(name.clone(), probability_permille, host) {
            Ok(fault) => {
                tracing::warn!(fault = %name, probability = probability_permille as f64 / 1000.0, "fault injected by the operator: misbehaving on purpose");
                self.fault = Some(fault);
            }
            Err(e) => tracing::error!("ignoring fault injection: {e}"),
        }
    }

    /// Records the view change that ended in `view`.
    fn view_entered(&mut self, view: u64, primary: ReplicaId, cause: &str) {
        let now = now_ms();
        let (left, old) = self.left_view.take().unwrap_or((now, primary));
        let event = ViewChangeEvent {
            old_primary: self.name(old),
            new_primary: self.name(primary),
            view_number: view,
            view_change_duration_ms: now.saturating_sub(left),
            triggered_by: if cause.is_empty() { "catch-up".into() } else { cause.into() },
            // A NEW-VIEW is only accepted with a quorum of VIEW-CHANGEs inside.
            quorum_met: true,
            at_ms: now,
        };
        tracing::info!(
            view_number = view,
            old_primary = %event.old_primary,
            new_primary = %event.new_primary,
            view_change_duration_ms = event.view_change_duration_ms,
            triggered_by = %event.triggered_by,
            "entered view"
        );
        self.metrics.view_change(&event.triggered_by);
        self.view_changes.push_back(event);
        if self.view_changes.len() > VIEW_CHANGE_EVENTS {
            self.view_changes.pop_front();
        }
    }

    /// Carries out a round's effects by the rules every host shares (`consensus::perform`).
    fn apply(&mut self, effects: Vec<Effect>) {
        self.count_executed(&effects);
        self.keep_epoch_proofs(&effects);
        self.keep_decision_proofs(&effects);
        let targets = self.replica.broadcast_targets();
        perform(self, &targets, effects);
    }

    /// The committed counters and height the dashboard's history samples.
    fn publish_counters(&self) {
        let counters = &self.replica.state().counters;
        self.metrics.applied.store(counters.applied, Ordering::Relaxed);
        self.metrics.rejected.store(counters.rejected_total(), Ordering::Relaxed);
        self.metrics.height.store(self.replica.last_executed(), Ordering::Relaxed);
    }

    /// Batch sizes, and the detection-log entries the executed batches committed.
    fn count_executed(&mut self, effects: &[Effect]) {
        let mut executed = false;
        for e in effects {
            if let Effect::Executed { batch, .. } = e {
                self.metrics.batch_size.observe(batch.requests.len() as f64);
                executed = true;
            }
        }
        if executed {
            self.publish_counters();
        }
        let acc = &self.replica.state().accountability;
        let new = (acc.log_total.saturating_sub(self.detections_counted) as usize).min(acc.log.len());
        for e in acc.log.iter().rev().take(new) {
            self.metrics.detection(&e.fault_type, &e.detection_method);
            tracing::warn!(
                seq = e.seq,
                detected_agent = %e.detected_agent,
                fault_type = %e.fault_type,
                detection_method = %e.detection_method,
                evidence = %e.evidence,
                reported_by = %e.reported_by,
                action = %e.action,
                "detection committed"
            );
        }
        self.detections_counted = acc.log_total;
    }

    /// Keeps, durably, the proof of every reconfiguration executed here: clients learn the next
    /// epoch from it without trusting one node.
    fn keep_epoch_proofs(&mut self, effects: &[Effect]) {
        for e in effects {
            let Effect::Executed { seq, batch, entries } = e else { continue };
            let applied = batch.requests.iter().find(|r| {
                matches!(r.body.op, Operation::Operator(OperatorAction::UpdateQuorum { .. }))
                    && entries.iter().any(|x| {
                        (x.client, x.nonce) == (r.body.client, r.body.nonce) && x.outcome == Outcome::Applied
                    })
            });
            let Some(request) = applied else { continue };
            let reply = effects.iter().find_map(|e| match e {
                Effect::Reply { reply, .. } if reply.body.seq == *seq => Some(reply.clone()),
                _ => None,
            });
            let (Some(reply), Some(cert)) = (reply, self.replica.commit_cert(*seq).cloned()) else {
                continue;
            };
            let epoch = reply.body.epoch + 1;
            let proof = EpochProof { request: request.clone(), cert, reply };
            if let Err(e) = self.store.save_epoch_proof(epoch, &proof) {
                tracing::error!("cannot keep the proof of epoch {epoch}: {e}");
            }
        }
    }

    /// Keeps, durably, the commit certificate of every batch that closed a decision: with it,
    /// a client checks the outcome without trusting one node.
    fn keep_decision_proofs(&mut self, effects: &[Effect]) {
        for e in effects {
            let Effect::Executed { seq, .. } = e else { continue };
            let decisions = &self.replica.state().app.decisions;
            let closed: Vec<String> = (decisions.by_id.iter())
                .filter(|(_, d)| d.outcome.as_ref().is_some_and(|o| o.seq == *seq))
                .map(|(id, _)| id.clone())
                .collect();
            // Most batches close no decision: only then is the certificate looked up and copied.
            if closed.is_empty() {
                continue;
            }
            let Some(cert) = self.replica.commit_cert(*seq).cloned() else { continue };
            if wire::encoded_len(&cert) > MAX_DECISION_PROOF_BYTES {
                continue;
            }
            for id in closed {
                let held = |id: &str| self.replica.state().app.decisions.by_id.contains_key(id);
                if let Err(e) = self.store.save_decision_proof(&id, &cert, &held) {
                    tracing::error!("cannot keep the proof of decision {id}: {e}");
                }
            }
        }
    }

    fn deliver_reply(&mut self, reply: Signed<Reply>) {
        let reply = Arc::new(reply);
        for e in &reply.body.entries {
            let key = (e.client, e.nonce);
            // Only the waiters of this very request: another one under the same (client,
            // nonce) waits for its own reply.
            let answer = |(_, w, since): Waiter| {
                self.metrics.committed_after(since.elapsed().as_secs_f64());
                let _ = w.send(reply.clone());
            };
            if self.waiters.get(&key).is_some_and(|ws| ws.iter().all(|(d, _, _)| *d == e.op)) {
                self.waiters.remove(&key).unwrap_or_default().into_iter().for_each(answer);
            } else if let Some(ws) = self.waiters.get_mut(&key) {
                ws.extract_if(.., |(d, _, _)| *d == e.op).for_each(answer);
            }
            let kept = self.recent.entry(key).or_default();
            if !kept.iter().any(|(d, _)| *d == e.op) {
                kept.push((e.op, reply.clone()));
                self.recent_order.push_back((e.client, e.nonce, e.op));
                if self.recent_order.len() > RECENT_REPLIES
                    && let Some((c, n, d)) = self.recent_order.pop_front()
                    && let Some(v) = self.recent.get_mut(&(c, n))
                {
                    v.retain(|(x, _)| *x != d);
                    if v.is_empty() {
                        self.recent.remove(&(c, n));
                    }
                }
            }
        }
    }
}

impl Host for Runtime {
    fn persist(&mut self, records: Vec<Record>) {
        if self.left_view.is_none() && records.iter().any(|r| matches!(r, Record::ViewChange(_))) {
            self.left_view = Some((now_ms(), self.replica.primary()));
        }
        self.traffic.fsyncs.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let written = self.store.append(records);
        self.metrics.fsync.observe(started.elapsed().as_secs_f64());
        if let Err(e) = written {
            tracing::error!("cannot persist, stopping rather than risk equivocation: {e}");
            std::process::exit(3);
        }
    }

    fn send(&mut self, to: Vec<ReplicaId>, msg: Message) {
        self.emit(msg, to)
    }

    fn reply(&mut self, _clients: Vec<PublicKey>, reply: Signed<Reply>) {
        if self.fault.as_ref().is_none_or(|f| !f.silent()) {
            self.deliver_reply(reply)
        }
    }

    fn timers(&mut self) -> &mut Timers {
        &mut self.timers
    }

    fn schedule(&mut self, timer: Timer, generation: u64, after_ms: u64) {
        let tx = self.commands.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(after_ms)).await;
            let _ = tx.send(Command::Timer(timer, generation)).await;
        });
    }

    fn observe(&mut self, event: Effect) {
        match event {
            Effect::EpochEntered { epoch } => self.epoch_entered(&epoch),
            Effect::InjectFault { fault, probability_permille } => self.inject(fault, probability_permille),
            Effect::Checkpoint { seq, state } => tracing::debug!(seq, %state, "checkpoint"),
            Effect::Stable { seq, state } => tracing::info!(seq, %state, "stable checkpoint"),
            Effect::StateInstalled { seq, state } => {
                self.metrics.state_transfers.inc();
                tracing::info!(seq, %state, "state transferred")
            }
            Effect::ViewEntered { view, primary, cause } => self.view_entered(view, primary, cause.as_str()),
            Effect::Evidence(ev) => {
                self.metrics.evidence(ev.fault_type());
                tracing::warn!(fault = ev.fault_type(), culprit = ?ev.culprit(), "evidence")
            }
            _ => {}
        }
    }
}
