//! `--flood`: one member turns Byzantine. Its node is stopped and the benchmark takes its key. It
//! accepts the links the others open to it and never reads them, and it dials every other agent
//! as that member and floods them for the measured phase with validly
//! signed junk (votes and checkpoints for slots and views far ahead, view changes, fetches, state
//! and batch requests that ask for big answers, batches nobody asked for, proposals although it
//! is not the primary, full of badly signed requests) and with garbage frames, while the load keeps running. Each honest
//! node's resident memory is sampled throughout.

use phalanx_client::Cluster;
use phalanx_core::wire::{
    self, Batch, BatchRequest, Checkpoint, CheckpointCert, ClientRequest, Fetch, Message, Operation, Phase,
    PrePrepare, RequestBody, Signed, StateRequest, ViewChange, Vote,
};
use phalanx_crypto::{Digest, Keypair, Signature};
use phalanx_node::transport::{Identity, Link};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The memory an honest node may use while flooded.
pub const TARGET_RSS_MIB: f64 = 256.0;
/// Distinct signed messages prepared before the flood (signing is the attacker's own cost).
const PREPARED: u64 = 4096;

pub struct Flood {
    attacker: String,
    stop: Arc<AtomicBool>,
    frames: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
    sampler: std::thread::JoinHandle<Vec<f64>>,
    victims: Vec<String>,
    /// Links the others opened to the member that never reads them.
    deaf: std::thread::JoinHandle<usize>,
}

/// Stops the last member's node, signs the junk, and starts flooding at `from`: every other
/// member, or the `first` ones.
pub fn start(cluster: &Cluster, dir: &Path, from: Instant, first: Option<usize>) -> Result<Flood, String> {
    let n = cluster.genesis.members.len();
    let me = n - 1;
    let attacker = cluster.genesis.members[me].name.clone();
    let pem = std::fs::read_to_string(dir.join("keys").join(format!("{attacker}.pem")))
        .map_err(|e| format!("the attacker needs {attacker}'s key: {e}"))?;
    let key = Keypair::from_pem(&pem).map_err(|e| format!("{attacker}'s key: {e}"))?;
    let status = cluster.get(0, "/v1/status")?;
    let view = status["view"].as_u64().unwrap_or(0);
    let low = status["stable_checkpoint"].as_u64().unwrap_or(0);
    let cluster_id = cluster.config.cluster_id;
    let frames = Arc::new(junk(&key, me as u32, &cluster_id, view, low));

    // The member's own node goes away: from now on its key speaks only junk.
    let pid = std::fs::read_to_string(dir.join("data").join(&attacker).join("node.pid")).unwrap_or_default();
    let _ = std::process::Command::new("kill").args(["-KILL", pid.trim()]).status();

    let directory = phalanx_node::directory::Directory::from_genesis(&cluster.genesis, me as u32);
    let identity = Identity {
        key,
        cluster: cluster_id,
        directory: Arc::new(RwLock::new(directory)),
        views: Default::default(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    // In its place, the member takes the links the others open to it and never reads them: what
    // they send it (answers to its fetches included) piles up on their side.
    let deaf = {
        let (identity, stop) = (identity.clone(), stop.clone());
        let addr = cluster.genesis.members[me].replica_addr;
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return 0 };
            rt.block_on(never_read(identity, addr, stop))
        })
    };
    let (sent_frames, sent_bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut threads = Vec::new();
    let mut victims = Vec::new();
    let mut pids: Vec<PathBuf> = Vec::new();
    for (i, m) in cluster.genesis.members.iter().enumerate().take(me.min(first.unwrap_or(me))) {
        victims.push(m.name.clone());
        pids.push(dir.join("data").join(&m.name).join("node.pid"));
        let (identity, frames, stop) = (identity.clone(), frames.clone(), stop.clone());
        let (fc, bc) = (sent_frames.clone(), sent_bytes.clone());
        let addr = m.replica_addr;
        threads.push(std::thread::spawn(move || {
            std::thread::sleep(from.saturating_duration_since(Instant::now()));
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(flood_one(identity, addr, i as u8, frames, stop, fc, bc));
        }));
    }
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = vec![0.0f64; pids.len()];
            while !stop.load(Ordering::Relaxed) {
                for (p, path) in peak.iter_mut().zip(&pids) {
                    let pid = std::fs::read_to_string(path).unwrap_or_default();
                    *p = p.max(rss_mib(pid.trim(), "VmHWM:").max(rss_mib(pid.trim(), "VmRSS:")));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        })
    };
    Ok(Flood { attacker, stop, frames: sent_frames, bytes: sent_bytes, threads, sampler, victims, deaf })
}

impl Flood {
    /// Stops the flood; the row's `flood` object.
    pub fn finish(self) -> Value {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let peak = self.sampler.join().unwrap_or_default();
        let unread_links = self.deaf.join().unwrap_or(0);
        let worst = peak.iter().cloned().fold(0.0, f64::max);
        json!({
            "attacker": self.attacker,
            "unread_links": unread_links,
            "frames_sent": self.frames.load(Ordering::Relaxed),
            "mib_sent": (self.bytes.load(Ordering::Relaxed) as f64 / (1 << 20) as f64).round(),
            "peak_rss_mib": self.victims.iter().zip(&peak).map(|(v, p)| (v.clone(), json!(p.round()))).collect::<serde_json::Map<_, _>>(),
            "worst_rss_mib": worst.round(),
            "target_rss_mib": TARGET_RSS_MIB,
            "rss_met": worst > 0.0 && worst < TARGET_RSS_MIB,
        })
    }
}

/// Listens as the member, accepts the others' links and never reads them, until `stop`; returns
/// how many links it held.
async fn never_read(me: Identity, addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> usize {
    let mut held = Vec::new();
    let mut listener = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(l) = &listener else {
            // The member's node was just killed: its port frees up.
            listener = tokio::net::TcpListener::bind(addr).await.ok();
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if let Ok(Ok((stream, _))) = tokio::time::timeout(Duration::from_millis(200), l.accept()).await
            && let Ok(link) = Link::accept(&me, stream).await
        {
            held.push(link);
        }
    }
    held.len()
}

/// One honest node, flooded until `stop`; a closed link (garbage closes it) is dialled again.
async fn flood_one(
    me: Identity,
    addr: std::net::SocketAddr,
    salt: u8,
    frames: Arc<Vec<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    sent_frames: Arc<AtomicU64>,
    sent_bytes: Arc<AtomicU64>,
) {
    let mut next = salt as usize * 97;
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut link) = Link::dial(&me, addr).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        while !stop.load(Ordering::Relaxed) {
            let chunk: Vec<&[u8]> = (0..32).map(|k| frames[(next + k) % frames.len()].as_slice()).collect();
            next += chunk.len();
            // A victim that stops reading must not hold the attacker past the end.
            match tokio::time::timeout(Duration::from_millis(200), link.send(&chunk)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break,
                Err(_) => continue,
            }
            sent_frames.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            sent_bytes.fetch_add(chunk.iter().map(|c| c.len() as u64).sum(), Ordering::Relaxed);
        }
    }
}

/// The flood's frames: signed by the attacker's real member key, so each one costs its receiver
/// a signature check and, where the protocol keeps messages for later, a place in a buffer.
fn junk(key: &Keypair, from: u32, cluster: &Digest, view: u64, low: u64) -> Vec<Vec<u8>> {
    let sign = |i: u64| -> Message {
        let d = phalanx_crypto::digest(&i.to_le_bytes());
        let far = low + 1_000_000 + i * 7;
        match i % 16 {
            // Votes for slots far above the window, and for views far ahead.
            0 => Message::Vote(Signed::sign(
                Vote { phase: Phase::Prepare, epoch: 0, view, seq: far, digest: d },
                from,
                key,
                cluster,
            )),
            1 => Message::Vote(Signed::sign(
                Vote { phase: Phase::Commit, epoch: 0, view: view + 1 + i, seq: low + 1 + i % 50, digest: d },
                from,
                key,
                cluster,
            )),
            2 => Message::Checkpoint(Signed::sign(
                Checkpoint { epoch: 0, seq: far, state: d },
                from,
                key,
                cluster,
            )),
            3 => {
                let stable = CheckpointCert { seq: 0, state: d, proofs: Vec::new() };
                let vc = ViewChange { epoch: 0, new_view: view + 1 + i, stable, prepared: Vec::new() };
                Message::ViewChange(Signed::sign(vc, from, key, cluster))
            }
            // Requests for big answers (commit certificates, state snapshots), FETCH most of all.
            4 | 8..=11 => {
                Message::Fetch(Signed::sign(Fetch { epoch: 0, after: low, view }, from, key, cluster))
            }
            5 => Message::StateRequest(Signed::sign(StateRequest { epoch: 0, seq: low }, from, key, cluster)),
            // Asks for the batches of every slot of the window, and batches nobody asked for.
            6 => {
                let wanted =
                    (0..wire::limits::MAX_PREPARED_CERTS as u64).map(|k| (low + 1 + k % 200, d)).collect();
                Message::BatchRequest(Signed::sign(BatchRequest { epoch: 0, wanted }, from, key, cluster))
            }
            7 => Message::Batch(low + 1 + i % 50, Batch { timestamp_ms: i, requests: Vec::new().into() }),
            // A proposal although it is not the primary, full of badly signed requests.
            15 => {
                let requests: Vec<ClientRequest> = (0..1024)
                    .map(|k| ClientRequest {
                        body: RequestBody {
                            client: key.public(),
                            nonce: i * 4096 + k,
                            op: Operation::Transfer { from: "x".into(), to: "y".into(), amount: 1 },
                        },
                        sig: Signature { r: [k as u8; 32], s: [1; 32] },
                    })
                    .collect();
                let batch = Batch { timestamp_ms: 0, requests: requests.into() };
                let pp = PrePrepare { epoch: 0, view, seq: low + 1 + i % 50, digest: batch.digest() };
                Message::PrePrepare(Signed::sign(pp, from, key, cluster), batch)
            }
            _ => Message::Vote(Signed::sign(
                Vote { phase: Phase::Prepare, epoch: 0, view: view + i, seq: far, digest: d },
                from,
                key,
                cluster,
            )),
        }
    };
    let mut frames: Vec<Vec<u8>> = (0..PREPARED).map(|i| wire::to_bytes(&sign(i))).collect();
    // And every so often a frame that decodes to nothing (it costs the attacker its link).
    for k in 0..PREPARED / 1024 {
        frames.insert((k * 1024) as usize, vec![0xff; 512]);
    }
    frames
}

/// A memory figure of `/proc/PID/status` in MiB (0 if unreadable).
fn rss_mib(pid: &str, field: &str) -> f64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return 0.0 };
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
