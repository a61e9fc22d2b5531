//! The load generator: pre-signed transfers go to every node in chunks through the batch
//! endpoint; a transfer counts once f+1 nodes returned matching signed replies for it (the same
//! acceptance rule as `phalanx submit`), and its latency is measured to that moment.

use phalanx_client::{Cluster, Membership};
use phalanx_core::wire::{self, ClientRequest, Outcome, Reply, Signed};
use phalanx_crypto::{Digest, PublicKey};
use phalanx_node::api::BatchAnswer;
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Posts in flight per node (open loop keeps several chunks outstanding).
const WORKERS_PER_NODE: usize = 12;

/// One chunk of requests, sent to every node.
struct Chunk {
    id: u64,
    body: Arc<Vec<u8>>,
}

/// What the collector knows about one request of a chunk.
struct Pending {
    client: PublicKey,
    nonce: u64,
    op: Digest,
    /// (outcome, seq, epoch) → the voters that replied so, one bit per replica id (the load
    /// generator drives clusters of up to 64 agents).
    votes: BTreeMap<(bool, u64, u64), u64>,
    done: bool,
}

struct ChunkState {
    sent: Instant,
    requests: Vec<Pending>,
    /// (client, nonce) → index in `requests`.
    lookup: HashMap<(PublicKey, u64), usize>,
    answered: usize,
    open: usize,
    /// Closed loop: the driver waiting for this chunk.
    notify: Option<Sender<()>>,
}

/// Results of a run.
#[derive(Default)]
pub struct Tally {
    /// Latencies (ms) of transfers sent and accepted inside the measured window.
    pub latencies: Vec<f64>,
    pub committed: usize,
    pub rejected: usize,
    /// Transfers that got no f+1 matching replies (all nodes answered or gave up).
    pub failed: usize,
    pub first_error: Option<String>,
    /// When the first request was accepted with replies from each view (kill-primary recovery).
    pub first_accept_in_view: BTreeMap<u64, Instant>,
}

/// The measured window: transfers sent in [start, end) count.
#[derive(Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
}

pub struct Load {
    queues: Vec<Sender<Chunk>>,
    chunks: Arc<Mutex<HashMap<u64, ChunkState>>>,
    tally: Arc<Mutex<Tally>>,
    next_id: u64,
}

impl Load {
    pub fn start(cluster: Arc<Cluster>, window: Window) -> Result<Self, String> {
        let membership = cluster.membership();
        let chunks = Arc::new(Mutex::new(HashMap::new()));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let (answer_tx, answer_rx) = channel::<(u64, usize, Result<BatchAnswer, String>)>();
        let mut queues = Vec::new();
        for i in 0..cluster.n() {
            let (tx, rx) = channel::<Chunk>();
            let rx = Arc::new(Mutex::new(rx));
            for _ in 0..WORKERS_PER_NODE {
                let (rx, answer_tx, url) =
                    (rx.clone(), answer_tx.clone(), cluster.url(i, "/v1/transactions/batch"));
                std::thread::spawn(move || post_worker(i, &url, &rx, &answer_tx));
            }
            queues.push(tx);
        }
        drop(answer_tx);
        let collector = Collector {
            cluster: cluster.clone(),
            membership,
            chunks: chunks.clone(),
            tally: tally.clone(),
            window,
        };
        std::thread::spawn(move || collector.run(answer_rx));
        Ok(Load { queues, chunks, tally, next_id: 0 })
    }

    /// Sends `reqs` to every node; with `notify`, signals when the chunk is settled.
    pub fn send(&mut self, reqs: &[ClientRequest], notify: Option<Sender<()>>) {
        self.next_id += 1;
        let id = self.next_id;
        let requests = reqs
            .iter()
            .map(|r| Pending {
                client: r.body.client,
                nonce: r.body.nonce,
                op: r.op_digest(),
                votes: BTreeMap::new(),
                done: false,
            })
            .collect::<Vec<_>>();
        let open = requests.len();
        let lookup = requests.iter().enumerate().map(|(i, p)| ((p.client, p.nonce), i)).collect();
        let body = Arc::new(wire::to_bytes(&reqs.to_vec()));
        self.chunks
            .lock()
            .unwrap()
            .insert(id, ChunkState { sent: Instant::now(), requests, lookup, answered: 0, open, notify });
        for q in &self.queues {
            let _ = q.send(Chunk { id, body: body.clone() });
        }
    }

    /// Chunks not settled yet.
    pub fn in_flight(&self) -> usize {
        self.chunks.lock().unwrap().len()
    }

    /// Waits (at most `limit`) for chunks in flight and returns the tally. Workers still
    /// waiting on a node that never executes (a removed or stopped member) are left behind:
    /// their answers no longer matter.
    pub fn finish(self, limit: Duration) -> Tally {
        let until = Instant::now() + limit;
        while self.in_flight() > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::mem::take(&mut *self.tally.lock().unwrap())
    }
}

fn post_worker(
    node: usize,
    url: &str,
    rx: &Mutex<Receiver<Chunk>>,
    answers: &Sender<(u64, usize, Result<BatchAnswer, String>)>,
) {
    let http = phalanx_client::agent(Duration::from_secs(30));
    loop {
        let chunk = match rx.lock().unwrap().recv() {
            Ok(c) => c,
            Err(_) => return,
        };
        let result = http
            .post(url)
            .header("content-type", "application/octet-stream")
            .send(chunk.body.as_slice())
            .map_err(|e| e.to_string())
            .and_then(|mut r| {
                let code = r.status().as_u16();
                let bytes =
                    r.body_mut().with_config().limit(64 << 20).read_to_vec().map_err(|e| e.to_string())?;
                if code != 200 {
                    return Err(format!("HTTP {code}: {}", String::from_utf8_lossy(&bytes)));
                }
                wire::decode_value::<BatchAnswer>(&bytes).map_err(|e| format!("bad batch answer: {e}"))
            });
        if answers.send((chunk.id, node, result)).is_err() {
            return;
        }
    }
}

struct Collector {
    cluster: Arc<Cluster>,
    /// The client's verified epochs: a reply counts only from a voter of the epoch it names.
    membership: Membership,
    chunks: Arc<Mutex<HashMap<u64, ChunkState>>>,
    tally: Arc<Mutex<Tally>>,
    window: Window,
}

impl Collector {
    fn run(mut self, rx: Receiver<(u64, usize, Result<BatchAnswer, String>)>) {
        // A signed batch reply is checked once per node, however many chunks it answers.
        let mut verified: HashMap<(usize, Vec<u8>), Option<usize>> = HashMap::new();
        while let Ok((id, node, result)) = rx.recv() {
            let now = Instant::now();
            let replies: Vec<(&Signed<Reply>, usize)> = match &result {
                Ok(answer) => answer
                    .replies
                    .iter()
                    .filter_map(|r| Some((r, self.check(node, r, &mut verified)?)))
                    .collect(),
                Err(e) => {
                    self.tally
                        .lock()
                        .unwrap()
                        .first_error
                        .get_or_insert(format!("{}: {e}", self.cluster.agents[node].name));
                    Vec::new()
                }
            };
            let mut chunks = self.chunks.lock().unwrap();
            let Some(chunk) = chunks.get_mut(&id) else { continue };
            chunk.answered += 1;
            let counts = chunk.sent >= self.window.start && chunk.sent < self.window.end;
            let mut tally = self.tally.lock().unwrap();
            // A batch reply answers many chunks: look its entries up in this chunk.
            for (reply, f) in replies {
                let (seq, view, epoch) = (reply.body.seq, reply.body.view, reply.body.epoch);
                for e in &reply.body.entries {
                    let Some(&i) = chunk.lookup.get(&(e.client, e.nonce)) else { continue };
                    let p = &mut chunk.requests[i];
                    if p.done || e.op != p.op {
                        continue;
                    }
                    let applied = matches!(e.outcome, Outcome::Applied);
                    let voters = p.votes.entry((applied, seq, epoch)).or_default();
                    if reply.from >= 64 {
                        continue;
                    }
                    *voters |= 1 << reply.from;
                    if voters.count_ones() as usize > f {
                        p.done = true;
                        chunk.open -= 1;
                        // The view of the (f+1)th reply: at least one honest replica executed it then.
                        tally.first_accept_in_view.entry(view).or_insert(now);
                        if counts {
                            tally.latencies.push(now.duration_since(chunk.sent).as_secs_f64() * 1000.0);
                            if applied { tally.committed += 1 } else { tally.rejected += 1 }
                        }
                    }
                }
            }
            if chunk.open == 0 || chunk.answered == self.cluster.n() {
                if counts {
                    tally.failed += chunk.open;
                }
                if let Some(n) = chunk.notify.take() {
                    let _ = n.send(());
                }
                chunks.remove(&id);
            }
        }
    }

    /// The f of the epoch whose voter signed `reply` (it counts toward that epoch's f+1), or
    /// `None` if it does not count.
    fn check(
        &mut self,
        node: usize,
        reply: &Signed<Reply>,
        verified: &mut HashMap<(usize, Vec<u8>), Option<usize>>,
    ) -> Option<usize> {
        if reply.body.entries.is_empty() {
            return None;
        }
        if verified.len() > 100_000 {
            verified.clear();
        }
        if self.membership.epoch(reply.body.epoch).is_none() {
            // A reconfiguration happened during the run: learn the epoch from the agents' proofs.
            let _ = self.cluster.learn_epochs(reply.body.epoch);
            self.membership = self.cluster.membership();
        }
        let membership = &self.membership;
        *verified
            .entry((node, wire::to_bytes(&reply.sig)))
            .or_insert_with(|| membership.reply_weight(reply).ok())
    }
}
