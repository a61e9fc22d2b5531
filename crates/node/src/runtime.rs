//! The node's event loop: one task owns the replica; network, HTTP and timers feed it inputs;
//! it performs the replica's effects (persist first, then send).

use crate::storage::Store;
use bytes::Bytes;
use phalanx_core::consensus::{Effect, Input, Record, Replica, ReplicaStatus, Timer};
use phalanx_core::state::MemoryEntry;
use phalanx_core::wire::{self, ClientRequest, CommitCert, Message, ReplicaId, Reply, Signed};
use phalanx_crypto::PublicKey;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
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
}

/// One signed reply covers a whole batch; it is shared by every request it answers.
pub type SharedReply = Arc<Signed<Reply>>;

pub enum Command {
    Net(Message),
    /// A client request from the HTTP API; the reply is sent when it executes.
    Submit(ClientRequest, oneshot::Sender<SharedReply>),
    Timer(Timer, u64),
    Query(Query),
}

/// Replies kept to answer status queries and retransmissions.
const RECENT_REPLIES: usize = 100_000;
/// Requests with waiting HTTP clients before closed waiters are swept.
const MAX_WAITING: usize = 10_000;
/// Clients waiting on one request, at most.
const WAITERS_PER_REQUEST: usize = 16;

pub struct Runtime {
    pub id: ReplicaId,
    pub replica: Replica,
    pub store: Store,
    pub peers: Vec<Option<mpsc::Sender<Bytes>>>,
    pub commands: mpsc::Sender<Command>,
    generations: [u64; Timer::COUNT],
    waiters: BTreeMap<(PublicKey, u64), Vec<oneshot::Sender<SharedReply>>>,
    recent: BTreeMap<(PublicKey, u64), SharedReply>,
    recent_order: VecDeque<(PublicKey, u64)>,
}

impl Runtime {
    pub fn new(
        id: ReplicaId,
        replica: Replica,
        store: Store,
        peers: Vec<Option<mpsc::Sender<Bytes>>>,
        commands: mpsc::Sender<Command>,
    ) -> Self {
        Runtime {
            id,
            replica,
            store,
            peers,
            commands,
            generations: [0; Timer::COUNT],
            waiters: BTreeMap::new(),
            recent: BTreeMap::new(),
            recent_order: VecDeque::new(),
        }
    }

    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let effects = self.replica.start(now_ms());
        self.apply(effects);
        while let Some(cmd) = rx.recv().await {
            let effects = match cmd {
                Command::Net(m) => self.replica.handle(now_ms(), Input::Message(m)),
                Command::Submit(req, tx) => {
                    let key = (req.body.client, req.body.nonce);
                    if let Some(r) = self.recent.get(&key) {
                        let _ = tx.send(r.clone());
                        continue;
                    }
                    if self.waiters.len() > MAX_WAITING {
                        // Forget clients that gave up (their HTTP request timed out).
                        for ws in self.waiters.values_mut() {
                            ws.retain(|w| !w.is_closed());
                        }
                        self.waiters.retain(|_, ws| !ws.is_empty());
                    }
                    let w = self.waiters.entry(key).or_default();
                    if w.len() < WAITERS_PER_REQUEST {
                        w.push(tx);
                    }
                    self.replica.handle(now_ms(), Input::Message(Message::Request(req)))
                }
                Command::Timer(t, generation) => {
                    if self.generations[t.index()] != generation {
                        continue;
                    }
                    self.replica.handle(now_ms(), Input::Timeout(t))
                }
                Command::Query(q) => {
                    self.answer(q);
                    continue;
                }
            };
            self.apply(effects);
        }
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
                    .accounts
                    .iter()
                    .map(|(n, a)| (n.clone(), a.owner, a.balance))
                    .collect();
                let _ = tx.send(list);
            }
            Query::Memory(ns, key, tx) => {
                let st = self.replica.state();
                let live =
                    st.memory_get(&ns, &key).filter(|e| e.expires_at_ms.is_none_or(|t| t > st.clock_ms));
                let _ = tx.send(live.map(|e| (e.clone(), st.clock_ms)));
            }
            Query::Reply(client, nonce, tx) => {
                let found = self.recent.get(&(client, nonce)).map(|r| {
                    let cert = self.replica.commit_cert(r.body.seq).cloned();
                    (r.clone(), cert)
                });
                let _ = tx.send(found);
            }
        }
    }

    fn send(&self, to: ReplicaId, bytes: Bytes) {
        if let Some(Some(tx)) = self.peers.get(to as usize) {
            // A full queue means the peer is unreachable; retransmission covers what is dropped.
            let _ = tx.try_send(bytes);
        }
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        // Everything the replica asked to persist is written (one fsync) before anything leaves.
        let records: Vec<Record> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Persist(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        if let Err(e) = self.store.append(records) {
            tracing::error!("cannot persist, stopping rather than risk equivocation: {e}");
            std::process::exit(3);
        }
        for e in effects {
            match e {
                Effect::Send { to, msg } => self.send(to, Bytes::from(wire::encode(&msg))),
                Effect::Broadcast(msg) => {
                    let bytes = Bytes::from(wire::encode(&msg));
                    for to in 0..self.peers.len() as ReplicaId {
                        if to != self.id {
                            self.send(to, bytes.clone());
                        }
                    }
                }
                Effect::Reply { reply, .. } => self.deliver_reply(reply),
                Effect::SetTimer { timer, after_ms } => {
                    let i = timer.index();
                    self.generations[i] += 1;
                    let generation = self.generations[i];
                    let tx = self.commands.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(after_ms)).await;
                        let _ = tx.send(Command::Timer(timer, generation)).await;
                    });
                }
                Effect::CancelTimer(t) => self.generations[t.index()] += 1,
                Effect::Persist(_) => {}
                Effect::Executed { .. } => {}
                Effect::Checkpoint { seq, state } => tracing::debug!(seq, %state, "checkpoint"),
                Effect::Stable { seq, state } => tracing::info!(seq, %state, "stable checkpoint"),
                Effect::StateInstalled { seq, state } => tracing::info!(seq, %state, "state transferred"),
                Effect::ViewEntered { view, primary } => tracing::info!(view, primary, "entered view"),
                Effect::Evidence(ev) => {
                    tracing::warn!(fault = ev.fault_type(), culprit = ?ev.culprit(), "evidence")
                }
            }
        }
    }

    fn deliver_reply(&mut self, reply: Signed<Reply>) {
        let reply = Arc::new(reply);
        for e in &reply.body.entries {
            let key = (e.client, e.nonce);
            if let Some(ws) = self.waiters.remove(&key) {
                for w in ws {
                    let _ = w.send(reply.clone());
                }
            }
            if self.recent.insert(key, reply.clone()).is_none() {
                self.recent_order.push_back(key);
                if self.recent_order.len() > RECENT_REPLIES
                    && let Some(old) = self.recent_order.pop_front()
                {
                    self.recent.remove(&old);
                }
            }
        }
    }
}
