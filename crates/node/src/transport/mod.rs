//! Replica-to-replica links over TCP, each an encrypted channel (`noise`) whose frames only the
//! two members at its ends can write or read. At connection time each side proves it holds the
//! key of an agent in the other's directory (genesis members and those admitted by committed
//! reconfigurations); anything else is refused and logged. A frame that fails to open, garbage,
//! or an oversized frame closes that one connection. Inbound messages are decoded and their signatures batch-verified here, on the
//! connection's task, so the replica's event loop finds the verdicts in the cache.

mod fair;
mod meter;
pub mod noise;

pub use fair::{FairInbound, Registrations};

use crate::directory::SharedDirectory;
use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use phalanx_core::wire::{self, Message, ReplicaId};
use phalanx_crypto::{Digest, Keypair, PublicKey, SeededRng, VerdictCache, VerifyItem};
use snow::TransportState;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Handshake frames are tiny; a peer that is not authenticated yet cannot make us buffer more.
const HANDSHAKE_MAX_FRAME: usize = 256;
/// Inbound connections at once from the hosts of members (by the addresses in the directory):
/// bounds tasks and file handles.
const MAX_INBOUND: usize = 256;
/// Inbound connections at once from any other host. Strangers have their own, smaller share of
/// slots, so however many connections they open and leave hanging in the handshake, a member
/// can always link.
const MAX_STRANGERS: usize = 32;

/// What both ends need to authenticate each other.
#[derive(Clone)]
pub struct Identity {
    pub key: Keypair,
    pub cluster: Digest,
    pub directory: SharedDirectory,
    /// The views this node is in, as its replica loop last published them.
    pub views: Arc<Views>,
}

/// The view a node is in and the one it is changing to: what makes a proposal or a NEW-VIEW
/// one it is waiting for.
#[derive(Debug, Default)]
pub struct Views {
    current: AtomicU64,
    target: AtomicU64,
}

impl Views {
    pub fn set(&self, current: u64, target: u64) {
        self.current.store(current, Ordering::Relaxed);
        self.target.store(target.max(current), Ordering::Relaxed);
    }
}

impl Identity {
    fn key_of(&self, id: ReplicaId) -> Option<PublicKey> {
        self.directory.read().ok()?.key(id)
    }

    /// Whether a proposal for `view` from `id` is one this node is waiting for: `id` leads
    /// the view this node is in.
    fn leads_current_view(&self, id: ReplicaId, epoch: u64, view: u64) -> bool {
        view == self.views.current.load(Ordering::Relaxed) && self.is_primary(id, epoch, view)
    }

    /// Whether a NEW-VIEW for `view` from `id` is one this node is waiting for: `id` leads a
    /// view above this node's, up to the one it is changing to.
    fn leads_next_view(&self, id: ReplicaId, epoch: u64, view: u64) -> bool {
        let (current, target) =
            (self.views.current.load(Ordering::Relaxed), self.views.target.load(Ordering::Relaxed));
        view > current && view <= target.max(current + 1) && self.is_primary(id, epoch, view)
    }

    /// The voters of the current epoch other than this node, and how many may be faulty.
    fn other_voters(&self) -> (Vec<usize>, usize) {
        let Ok(d) = self.directory.read() else { return (Vec::new(), 0) };
        let voters =
            d.agents.iter().enumerate().filter(|(i, a)| a.voter && *i != d.id as usize).map(|(i, _)| i);
        (voters.collect(), d.f)
    }

    /// Whether `id` is the primary of `view` in the current epoch, as far as this node knows.
    fn is_primary(&self, id: ReplicaId, epoch: u64, view: u64) -> bool {
        let Ok(d) = self.directory.read() else { return false };
        let voters = d.agents.iter().filter(|a| a.voter).count() as u64;
        let mut ids = d.agents.iter().enumerate().filter(|(_, a)| a.voter).map(|(i, _)| i);
        d.epoch == epoch && voters > 0 && ids.nth((view % voters) as usize) == Some(id as usize)
    }
}

/// When each member was last heard from (for `agents` and `health`).
pub type LastSeen = Arc<Mutex<Vec<Option<Instant>>>>;

pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().max_frame_length(noise::MAX_SEALED_FRAME).new_codec()
}

/// A link after its handshake: the framed stream, the session that seals and opens its frames,
/// and the peer's member id.
type Session = (Framed<TcpStream, LengthDelimitedCodec>, TransportState, ReplicaId);

/// The member that signed a message's envelope, where it travels only on that member's link.
/// NEW-VIEWs are also relayed to replicas that missed them (they prove themselves).
fn sender(m: &Message) -> Option<ReplicaId> {
    match m {
        Message::NewView(_) => None,
        m => m.signer(),
    }
}

/// Runs the handshake on a fresh connection (frames capped while the peer is unauthenticated)
/// and returns the session, ready for protocol messages.
async fn authenticate(stream: TcpStream, me: &Identity, initiator: bool) -> Result<Session, String> {
    let _ = stream.set_nodelay(true);
    authenticate_over(stream, me, initiator).await
}

/// The same handshake over any byte stream (the handshake fuzz target drives it in memory).
pub async fn authenticate_over<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: S,
    me: &Identity,
    initiator: bool,
) -> Result<(Framed<S, LengthDelimitedCodec>, TransportState, ReplicaId), String> {
    let mut framed = Framed::new(stream, codec());
    framed.codec_mut().set_max_frame_length(HANDSHAKE_MAX_FRAME);
    let (noise, peer) = tokio::time::timeout(HANDSHAKE_TIMEOUT, noise::handshake(&mut framed, me, initiator))
        .await
        .map_err(|_| "handshake timed out".to_string())??;
    framed.codec_mut().set_max_frame_length(noise::MAX_SEALED_FRAME);
    Ok((framed, noise, peer))
}

/// Signatures a message carries that the replica will check: outer signature, and client
/// signatures of requests (alone or inside a proposal).
fn verify_items(m: &Message, me: &Identity) -> Vec<VerifyItem> {
    let key = |from: ReplicaId| me.key_of(from);
    let mut items = Vec::new();
    let mut outer = |from: ReplicaId, f: &dyn Fn(PublicKey) -> VerifyItem| {
        if let Some(k) = key(from) {
            items.push(f(k));
        }
    };
    match m {
        Message::Request(r) => return r.verify_item(&me.cluster).into_iter().collect(),
        Message::PrePrepare(pp, batch) => {
            outer(pp.from, &|k| pp.verify_item(k, &me.cluster));
            // Client signatures only in a proposal that can count: the replica drops anyone
            // else's unread, and checking thousands of them would let any member buy much of
            // this node's CPU with one message.
            if me.leads_current_view(pp.from, pp.body.epoch, pp.body.view) {
                items.extend(batch.requests.iter().filter_map(|r| r.verify_item(&me.cluster)));
            }
        }
        Message::Vote(v) => outer(v.from, &|k| v.verify_item(k, &me.cluster)),
        Message::Checkpoint(c) => outer(c.from, &|k| c.verify_item(k, &me.cluster)),
        Message::Fetch(f) => outer(f.from, &|k| f.verify_item(k, &me.cluster)),
        Message::BatchRequest(r) => outer(r.from, &|k| r.verify_item(k, &me.cluster)),
        Message::Committed(c) => {
            for v in &c.commits {
                outer(v.from, &|k| v.verify_item(k, &me.cluster));
            }
        }
        // Large, rare messages: the replica verifies them in full itself.
        Message::ViewChange(_)
        | Message::NewView(_)
        | Message::StateRequest(_)
        | Message::StateResponse(_) => {}
        // Checked by its digest, against the slot waiting for it.
        Message::Batch(..) => {}
    }
    items
}

/// Accepts replica connections; each authenticated peer's messages go to its own queue, which
/// registers with the replica loop's [`FairInbound`].
pub async fn accept_loop(
    listener: TcpListener,
    me: Identity,
    inbound: Registrations,
    cache: Arc<VerdictCache>,
    seen: LastSeen,
    seed: [u8; 32],
    metrics: Arc<crate::metrics::Metrics>,
) {
    let mut n: u64 = 0;
    let meter = Arc::new(meter::Meter::default());
    let shared = Inbound { registrations: inbound, cache, meter, seen, metrics };
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_INBOUND));
    let stranger_slots = Arc::new(tokio::sync::Semaphore::new(MAX_STRANGERS));
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file handles, most likely: wait instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let member_host = me
            .directory
            .read()
            .is_ok_and(|d| d.agents.iter().any(|a| a.replica_addr.is_some_and(|r| r.ip() == addr.ip())));
        let pool = if member_host { &slots } else { &stranger_slots };
        let Ok(permit) = pool.clone().try_acquire_owned() else {
            tracing::warn!(%addr, member_host, "too many replica connections; refusing");
            continue;
        };
        n += 1;
        let (me, shared) = (me.clone(), shared.clone());
        let mut conn_seed = seed;
        conn_seed[..8].copy_from_slice(&n.to_le_bytes());
        tokio::spawn(async move {
            if let Err(e) = serve_peer(stream, addr, me, shared, conn_seed).await {
                tracing::warn!(%addr, "replica connection closed: {e}");
            }
            drop(permit);
        });
    }
}

/// What every inbound link of a node shares.
#[derive(Clone)]
struct Inbound {
    registrations: Registrations,
    cache: Arc<VerdictCache>,
    meter: Arc<meter::Meter>,
    seen: LastSeen,
    metrics: Arc<crate::metrics::Metrics>,
}

async fn serve_peer(
    stream: TcpStream,
    addr: SocketAddr,
    me: Identity,
    shared: Inbound,
    seed: [u8; 32],
) -> Result<(), String> {
    let Inbound { registrations: inbound, cache, meter, seen, metrics } = shared;
    let mut rng = SeededRng::new(seed);
    let (mut framed, mut session, peer) =
        authenticate(stream, &me, false).await.map_err(|e| format!("refused peer at {addr}: {e}"))?;
    let Some(queue) = fair::member_queue(&inbound, peer).await else { return Ok(()) };
    tracing::info!(%addr, peer, "replica connected");
    let name = me.directory.read().map(|d| d.name(peer)).unwrap_or_default();
    let received = metrics.inbound(&name);
    let mut ready: Vec<(Message, usize)> = Vec::new();
    while let Some(frame) = framed.next().await {
        // Everything already received is checked together: one batch verification instead of
        // one per vote, and one verdict pass before anything reaches the replica.
        let (voters, f) = me.other_voters();
        let first = decode_from(frame, &mut session, peer)?;
        received.count(first.0.name_index(), first.1);
        let mut wait = meter.charge(peer as usize, cost(&first.0, first.1, &me), Instant::now(), &voters, f);
        ready.push(first);
        while ready.len() < READY_MESSAGES && wait.is_zero() {
            match framed.next().now_or_never() {
                Some(Some(frame)) => {
                    let next = decode_from(frame, &mut session, peer)?;
                    received.count(next.0.name_index(), next.1);
                    wait =
                        meter.charge(peer as usize, cost(&next.0, next.1, &me), Instant::now(), &voters, f);
                    ready.push(next);
                }
                Some(None) | None => break,
            }
        }
        if let Ok(mut s) = seen.lock() {
            // Peers are directory members, so this grows only with committed reconfigurations.
            if s.len() <= peer as usize {
                s.resize(peer as usize + 1, None);
            }
            s[peer as usize] = Some(Instant::now());
        }
        let items: Vec<VerifyItem> = ready.iter().flat_map(|(m, _)| verify_items(m, &me)).collect();
        if items.len() > INLINE_VERIFICATIONS {
            // CPU-bound for milliseconds: tell the runtime so other tasks move off this worker.
            tokio::task::block_in_place(|| cache.verify(&mut rng, &items));
        } else if !items.is_empty() {
            // A few votes take tens of microseconds; handing the worker over would cost more.
            cache.verify(&mut rng, &items);
        }
        for (msg, len) in ready.drain(..) {
            // Waits while this member's queue is full: a flooding member is then read no
            // faster than the loop serves it its turn.
            if queue.send(msg, len).await.is_err() {
                return Ok(());
            }
        }
        if !wait.is_zero() {
            // Over its budget: the member's link is not read meanwhile, so its TCP window
            // closes and what it floods waits on its own side, unopened and unverified.
            tokio::time::sleep(wait).await;
        }
    }
    Ok(())
}

/// What taking in a message of `len` bytes costs this node: its bytes, and the signatures it
/// carries (at least one check per message). The current primary's proposals, and a new
/// primary's NEW-VIEW, cost nothing.
fn cost(m: &Message, len: usize, me: &Identity) -> meter::Cost {
    let signatures = match m {
        Message::PrePrepare(pp, _) if me.leads_current_view(pp.from, pp.body.epoch, pp.body.view) => {
            return meter::Cost::default();
        }
        Message::NewView(nv) if me.leads_next_view(nv.from, nv.body.epoch, nv.body.view) => {
            return meter::Cost::default();
        }
        Message::Committed(c) => c.commits.len(),
        Message::ViewChange(vc) => view_change_signatures(&vc.body),
        Message::NewView(nv) => {
            nv.body.view_changes.iter().map(|vc| view_change_signatures(&vc.body)).sum::<usize>()
                + nv.body.pre_prepares.len()
        }
        Message::StateResponse(r) => r.body.cert.proofs.len(),
        _ => 1,
    };
    meter::Cost { bytes: len, signatures: signatures.max(1) }
}

fn view_change_signatures(vc: &wire::ViewChange) -> usize {
    1 + vc.stable.proofs.len() + vc.prepared.iter().map(|p| 1 + p.prepares.len()).sum::<usize>()
}

/// Messages read off one link before their signatures are checked together.
const READY_MESSAGES: usize = 64;
/// Signature checks done on the link's task without moving other tasks off its worker.
const INLINE_VERIFICATIONS: usize = 8;

/// Opens and decodes one frame from member `peer`; a frame the peer's session did not seal, a
/// garbage message, or one signed as another member costs the peer its link. Whatever passes
/// was written by the peer itself: a relay can inject nothing, so a bad signature on it is the
/// peer's own.
fn decode_from(
    frame: std::io::Result<bytes::BytesMut>,
    session: &mut TransportState,
    peer: ReplicaId,
) -> Result<(Message, usize), String> {
    let frame = frame.map_err(|e| format!("bad frame from member {peer}: {e}"))?;
    let len = frame.len();
    let frame = noise::open(session, &frame).map_err(|e| format!("frame from member {peer} refused: {e}"))?;
    let msg = wire::decode(&frame).map_err(|e| format!("garbage from member {peer}: {e}"))?;
    if sender(&msg).is_some_and(|from| from != peer) {
        // Only the member's own signed messages travel on its link.
        return Err(format!("member {peer} sent a message signed as another member"));
    }
    Ok((msg, len))
}

/// Frames queued for one peer, at most: a peer that stops reading (or cannot be reached) makes
/// its sender drop frames beyond this, never hold more. One largest frame fits, with room.
pub const MAX_QUEUED_BYTES: usize = wire::limits::MAX_MESSAGE_BYTES + (8 << 20);
/// Frames queued for one peer, at most, whatever their size.
const MAX_QUEUED_FRAMES: usize = 16_384;

/// The sending end of one peer's queue, bounded by frames and by bytes.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Bytes>,
    queued: Arc<AtomicUsize>,
}

/// The link's end of a peer's queue.
pub struct OutboxReceiver {
    rx: mpsc::Receiver<Bytes>,
    queued: Arc<AtomicUsize>,
}

/// A new queue for one peer.
pub fn outbox() -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::channel(MAX_QUEUED_FRAMES);
    let queued = Arc::new(AtomicUsize::new(0));
    (Outbox { tx, queued: queued.clone() }, OutboxReceiver { rx, queued })
}

impl Outbox {
    /// Queues a frame unless the queue is full (by frames or bytes); false if it was dropped.
    /// Retransmission covers what a slow or unreachable peer misses.
    pub fn try_send(&self, frame: Bytes) -> bool {
        let len = frame.len();
        if self.queued.fetch_add(len, Ordering::Relaxed) + len > MAX_QUEUED_BYTES {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        if self.tx.try_send(frame).is_err() {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Bytes waiting for the peer.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

impl OutboxReceiver {
    async fn recv(&mut self) -> Option<Bytes> {
        let b = self.rx.recv().await?;
        self.queued.fetch_sub(b.len(), Ordering::Relaxed);
        Some(b)
    }

    fn try_recv(&mut self) -> Option<Bytes> {
        let b = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(b.len(), Ordering::Relaxed);
        Some(b)
    }

    fn is_closed(&self) -> bool {
        self.rx.is_closed()
    }
}

/// The longest wait between attempts to reach a peer. Well under the view-change timeout: a
/// partition that heals must not leave links down for longer than the cluster takes to notice
/// (with a 2 s cap, `phalanx chaos` saw commits resume only 1.9 s after a heal). An attempt
/// is one TCP connect, cheap to repeat.
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_millis(250);

/// Keeps one outbound connection to `peer` alive, reconnecting with backoff, and writes what
/// the replica sends it. Messages queued while disconnected wait (bounded, see [`Outbox`]).
pub async fn connect_loop(me: Identity, peer: ReplicaId, addr: SocketAddr, mut outbox: OutboxReceiver) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let attempt = async {
            let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let (framed, session, who) = authenticate(stream, &me, true).await?;
            if who != peer {
                return Err(format!("{addr} answered as member {who}, expected {peer}"));
            }
            Ok((framed, session))
        };
        match attempt.await {
            Ok((mut framed, mut session)) => {
                backoff = Duration::from_millis(100);
                // Everything queued goes out with one flush (one write syscall under load).
                'link: while let Some(bytes) = outbox.recv().await {
                    let mut next = Some(bytes);
                    let mut queued = 0;
                    while let Some(b) = next.take() {
                        let Ok(sealed) = noise::seal(&mut session, &b) else { break 'link };
                        if framed.feed(sealed).await.is_err() {
                            break 'link;
                        }
                        queued += 1;
                        if queued < 256 {
                            next = outbox.try_recv();
                        }
                    }
                    if SinkExt::<Bytes>::flush(&mut framed).await.is_err() {
                        break;
                    }
                }
                if outbox.is_closed() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(peer, %addr, "connect failed: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_RECONNECT_BACKOFF);
            }
        }
    }
}

/// An authenticated outbound link, as a peer opens one: for tools that must speak the replica
/// protocol themselves (the flood benchmark's Byzantine agent uses a member's own key).
pub struct Link(Framed<TcpStream, LengthDelimitedCodec>, TransportState);

impl Link {
    pub async fn dial(me: &Identity, addr: SocketAddr) -> Result<Link, String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| format!("{addr}: {e}"))?;
        let (framed, session, _) = authenticate(stream, me, true).await?;
        Ok(Link(framed, session))
    }

    /// Accepts a member's link as a replica does, for tools that play a member themselves (the
    /// flood benchmark's member that never reads what it is sent).
    pub async fn accept(me: &Identity, stream: TcpStream) -> Result<Link, String> {
        let (framed, session, _) = authenticate(stream, me, false).await?;
        Ok(Link(framed, session))
    }

    /// Sends frames as they are (encoded messages, or anything else), sealed, with one flush.
    pub async fn send(&mut self, frames: &[&[u8]]) -> Result<(), String> {
        for f in frames {
            let sealed = noise::seal(&mut self.1, f)?;
            self.0.feed(sealed).await.map_err(|e| e.to_string())?;
        }
        SinkExt::<Bytes>::flush(&mut self.0).await.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_queue_is_bounded_in_bytes_whatever_the_frame_count() {
        let (tx, mut rx) = outbox();
        let frame = Bytes::from(vec![0u8; 8 << 20]);
        let taken = (0..10).filter(|_| tx.try_send(frame.clone())).count();
        assert_eq!(taken, MAX_QUEUED_BYTES / (8 << 20));
        assert!(tx.queued_bytes() <= MAX_QUEUED_BYTES);
        // Draining makes room again.
        assert!(rx.try_recv().is_some());
        assert!(tx.try_send(frame));
    }
}
