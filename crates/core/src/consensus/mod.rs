//! The PBFT replica as a pure state machine: `Replica::handle(now, input) -> Vec<Effect>`.
//!
//! - [`replica`]: the replica's state, input dispatch and the normal case
//!   (pre-prepare, prepare, commit, execution in seq order).
//! - [`view_change`]: VIEW-CHANGE / NEW-VIEW, including the pure re-proposal computation that
//!   backups repeat to check the new primary.
//! - [`checkpoint`]: checkpoints, garbage collection, state transfer and catch-up.
//! - [`certs`]: verification of certificates carried inside messages.
//! - [`pool`]: client requests waiting to be ordered, bounded per client.
//! - [`slot`]: what a replica knows about one sequence number.

mod batch_fetch;
pub mod certs;
mod checkpoint;
mod journal;
mod pool;
mod reconfig;
mod replica;
pub mod reputation;
mod slot;
mod view_change;

pub use journal::Journal;
pub use replica::{Replica, ReplicaStatus};
pub use view_change::{NewViewPlan, Proposal, plan_new_view};

use crate::evidence::Evidence;
use crate::quorum::{Quorum, QuorumError};
use crate::state::Genesis;
use crate::wire::{CheckpointCert, EpochNo, Message, ReplicaId, ReplyEntry, Seq, Signed, View};
use phalanx_crypto::{BatchVerifier, Digest, PublicKey, SeededRng, VerdictCache, VerifyItem};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A member of an epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub key: PublicKey,
}

/// One configuration of the cluster: who votes, and how many may be faulty.
///
/// `members` is the directory of every agent ever admitted, in admission order: an agent's
/// index there is its [`ReplicaId`] for good, so ids in signed messages, evidence and
/// reputation never shift when the membership changes. `voters` are the members that order
/// requests in this epoch; quorums count only them. Every signed message names its epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epoch {
    pub number: EpochNo,
    pub members: Vec<Member>,
    /// Ids of this epoch's voters, ascending.
    pub voters: Vec<ReplicaId>,
    pub f: usize,
    /// The last seq ordered by the previous epoch: this one orders `start + 1` onwards. It is
    /// a checkpoint boundary, so the previous epoch's checkpoint there hands over the state.
    pub start: Seq,
}

impl Epoch {
    /// The first epoch: every member votes.
    pub fn genesis(members: Vec<Member>, f: usize) -> Self {
        let voters = (0..members.len() as ReplicaId).collect();
        Epoch { number: 0, members, voters, f, start: 0 }
    }

    pub fn quorum(&self) -> Result<Quorum, QuorumError> {
        Quorum::new(self.voters.len(), self.f)
    }

    /// The epoch after this one that a reconfiguration committed at `seq` creates, if allowed:
    /// known names, n >= 3f+1, and at most f members leaving and f joining (so at least a quorum
    /// of the old voters stays, and a quorum of the new ones has state already), and a worst-case
    /// NEW-VIEW that still fits a frame with the cluster's log window. It starts at the next
    /// checkpoint boundary. Pure, so clients derive the same epoch from the committed
    /// request as the replicas do.
    pub fn reconfigured(
        &self,
        seq: Seq,
        (checkpoint_interval, log_window): (u64, u64),
        remove: &[String],
        add: &[crate::wire::Joiner],
        f: Option<u32>,
    ) -> Option<Epoch> {
        if remove.is_empty() && add.is_empty() && f.is_none() {
            return None;
        }
        let f = f.map_or(self.f, |f| f as usize);
        if remove.len() > self.f || add.len() > f {
            return None;
        }
        let mut members = self.members.clone();
        let mut voters: std::collections::BTreeSet<ReplicaId> = self.voters.iter().copied().collect();
        for name in remove {
            let id = members.iter().position(|m| &m.name == name)?;
            if !voters.remove(&(id as ReplicaId)) {
                return None;
            }
        }
        for j in add {
            match members.iter().position(|m| m.name == j.name || m.key == j.key) {
                // A former member may come back with its own key.
                Some(id) if members[id].name == j.name && members[id].key == j.key => {
                    if !voters.insert(id as ReplicaId) {
                        return None;
                    }
                }
                Some(_) => return None,
                None => {
                    if members.len() >= crate::wire::limits::MAX_MEMBERS {
                        return None;
                    }
                    voters.insert(members.len() as ReplicaId);
                    members.push(Member { name: j.name.clone(), key: j.key });
                }
            }
        }
        let voters: Vec<ReplicaId> = voters.into_iter().collect();
        Quorum::new(voters.len(), f).ok()?;
        // Growing is refused where a view change could no longer fit a frame.
        if worst_new_view_bytes(voters.len(), f, log_window) > crate::wire::limits::MAX_MESSAGE_BYTES {
            return None;
        }
        let k = checkpoint_interval.max(1);
        let start = (seq / k).saturating_add(1).saturating_mul(k);
        Some(Epoch { number: self.number + 1, members, voters, f, start })
    }

    /// Every member's key, indexed by id (voters or not: old evidence names former members).
    pub fn keys(&self) -> Vec<PublicKey> {
        self.members.iter().map(|m| m.key).collect()
    }

    pub fn is_voter(&self, id: ReplicaId) -> bool {
        self.voters.binary_search(&id).is_ok()
    }

    /// The key of a voter of this epoch.
    pub fn voter_key(&self, id: ReplicaId) -> Option<PublicKey> {
        if self.is_voter(id) { self.members.get(id as usize).map(|m| m.key) } else { None }
    }

    pub fn id_of(&self, key: &PublicKey) -> Option<ReplicaId> {
        self.members.iter().position(|m| m.key == *key).map(|i| i as ReplicaId)
    }

    /// The primary of view `v`: the voters in turn.
    pub fn primary(&self, view: View) -> ReplicaId {
        if self.voters.is_empty() {
            return ReplicaId::MAX;
        }
        self.voters[(view % self.voters.len() as u64) as usize]
    }
}

/// Protocol parameters; every replica of a cluster uses the same values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// K: a checkpoint every K sequence numbers.
    pub checkpoint_interval: u64,
    /// L: sequence numbers accepted above the low water mark h (H = h + L, default 2K).
    pub log_window: u64,
    /// Instances the primary runs concurrently (proposed but not yet executed).
    pub max_inflight: u64,
    /// A batch is cut when this many requests wait...
    pub batch_size: usize,
    /// ...or when the oldest has waited this long.
    pub batch_delay_ms: u64,
    /// A backup that waits longer than this for a request starts a view change; doubled on each
    /// consecutive failed view.
    pub view_change_timeout_ms: u64,
    /// Period for retransmitting one's own votes of undecided slots (lossy networks).
    pub resend_interval_ms: u64,
    /// A backup refuses a fresh batch whose timestamp is further than this from its clock, either
    /// way. Synchronised hosts differ by milliseconds; the bound is how far a Byzantine primary
    /// can move the replicated clock.
    pub max_clock_skew_ms: u64,
    /// Requests waiting in the pool, in total and per client.
    pub max_pending: usize,
    pub max_pending_per_client: usize,
    /// Messages from one sender kept for a later view or above the high water mark, by count
    /// and by encoded size.
    pub max_buffered_per_sender: usize,
    pub max_buffered_bytes_per_sender: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            checkpoint_interval: 100,
            log_window: 200,
            max_inflight: 50,
            batch_size: 256,
            batch_delay_ms: 2,
            view_change_timeout_ms: 1000,
            resend_interval_ms: 500,
            max_clock_skew_ms: 5_000,
            max_pending: 100_000,
            max_pending_per_client: 16,
            max_buffered_per_sender: 1024,
            max_buffered_bytes_per_sender: 4 << 20,
        }
    }
}

/// Everything a replica needs to start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub cluster_id: Digest,
    pub epoch: Epoch,
    pub params: Params,
    pub genesis: Genesis,
}

impl Config {
    /// The replicated state this configuration starts from.
    pub fn genesis_state(&self) -> crate::state::AppState {
        crate::state::AppState::from_genesis(
            &self.genesis,
            self.cluster_id,
            &self.epoch,
            (self.params.checkpoint_interval, self.params.log_window),
        )
    }

    /// Refuses configurations a replica cannot run safely.
    pub fn validate(&self) -> Result<(), String> {
        self.epoch.quorum().map_err(|e| e.to_string())?;
        let p = &self.params;
        if p.checkpoint_interval == 0 || p.batch_size == 0 || p.max_inflight == 0 {
            return Err(
                "checkpoint interval, batch size and max in-flight instances must be at least 1".into()
            );
        }
        if p.log_window < p.checkpoint_interval || p.max_inflight > p.log_window {
            return Err(format!(
                "the log window ({}) must cover the checkpoint interval ({}) and the in-flight instances ({})",
                p.log_window, p.checkpoint_interval, p.max_inflight
            ));
        }
        if p.log_window > crate::wire::limits::MAX_PREPARED_CERTS as u64 {
            return Err(format!(
                "the log window ({}) may be at most {} slots (a VIEW-CHANGE carries one certificate per slot)",
                p.log_window,
                crate::wire::limits::MAX_PREPARED_CERTS
            ));
        }
        let voters = self.epoch.voters.len();
        let worst = worst_new_view_bytes(voters, self.epoch.f, p.log_window);
        if worst > crate::wire::limits::MAX_MESSAGE_BYTES {
            let fits = (1..p.log_window).rev().find(|w| {
                worst_new_view_bytes(voters, self.epoch.f, *w) <= crate::wire::limits::MAX_MESSAGE_BYTES
            });
            return Err(format!(
                "with {voters} voters, f = {} and a log window of {}, a NEW-VIEW could reach {} MiB, over the {} MiB frame limit; lower the log window to at most {}",
                self.epoch.f,
                p.log_window,
                worst >> 20,
                crate::wire::limits::MAX_MESSAGE_BYTES >> 20,
                fits.unwrap_or(0)
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        if !self.epoch.members.iter().all(|m| names.insert(&m.name)) {
            return Err("member names must be unique".into());
        }
        let n = self.epoch.members.len();
        let sorted = self.epoch.voters.windows(2).all(|w| w[0] < w[1]);
        if !sorted || self.epoch.voters.iter().any(|v| *v as usize >= n) {
            return Err("voters must be distinct member ids, ascending".into());
        }
        Ok(())
    }
}

/// The largest NEW-VIEW a replica could have to send: a quorum of VIEW-CHANGEs, each with a
/// stable checkpoint certificate and a prepared certificate (a pre-prepare and 2f PREPAREs) for
/// every slot of the log window, plus a re-proposal per slot; every number at its widest
/// encoding. No message a replica emits may exceed the frame limit, so configurations where this
/// would are refused.
pub fn worst_new_view_bytes(voters: usize, f: usize, log_window: u64) -> usize {
    use crate::wire::{Checkpoint, NewView, Phase, PrePrepare, Signed, ViewChange, Vote, encoded_len};
    let quorum = Quorum::new(voters, f).map_or(voters, |q| q.quorum());
    // Sizes only: a signature encodes to the same length whatever its bytes, so nothing is signed.
    fn signed<T>(body: T) -> Signed<T> {
        Signed { body, from: ReplicaId::MAX, sig: phalanx_crypto::Signature { r: [0; 32], s: [0; 32] } }
    }
    let max = u64::MAX;
    let vote = signed(Vote { phase: Phase::Prepare, epoch: max, view: max, seq: max, digest: Digest::ZERO });
    let pre_prepare = signed(PrePrepare { epoch: max, view: max, seq: max, digest: Digest::ZERO });
    let proof = signed(Checkpoint { epoch: max, seq: max, state: Digest::ZERO });
    let empty_vc = signed(ViewChange {
        epoch: max,
        new_view: max,
        stable: CheckpointCert { seq: max, state: Digest::ZERO, proofs: Vec::new() },
        prepared: Vec::new(),
    });
    let empty_nv =
        signed(NewView { epoch: max, view: max, view_changes: Vec::new(), pre_prepares: Vec::new() });
    // Length prefixes of the collections: at most 10 bytes each.
    let cert = encoded_len(&pre_prepare) + 10 + 2 * f * encoded_len(&vote);
    let window = log_window as usize;
    let view_change = encoded_len(&empty_vc) + 20 + quorum * encoded_len(&proof) + window * cert;
    encoded_len(&empty_nv) + 20 + quorum * view_change + window * encoded_len(&pre_prepare)
}

/// Timers a replica asks its host for. Setting a timer replaces the pending one of that kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// Primary: cut a partial batch.
    Batch,
    /// A request has waited; check whether the primary is stalling.
    Request,
    /// The view change to a target view has not completed in time.
    ViewChange,
    /// Retransmit own votes for undecided slots; ask for missing commits.
    Resend,
    /// A stable checkpoint above our execution did not get executed locally: fetch its state.
    StateTransfer,
}

impl Timer {
    /// Number of timer kinds; hosts keep one generation counter per kind.
    pub const COUNT: usize = 5;

    /// A dense index for per-kind arrays.
    pub fn index(self) -> usize {
        match self {
            Timer::Batch => 0,
            Timer::Request => 1,
            Timer::ViewChange => 2,
            Timer::Resend => 3,
            Timer::StateTransfer => 4,
        }
    }
}

/// What the host feeds the replica.
#[derive(Clone, Debug)]
pub enum Input {
    /// A message from a client or of unknown origin, not yet verified.
    Message(Message),
    /// A message that arrived on the authenticated link of this member: a bad signature made
    /// by the link's own member is attributable to it.
    FromPeer(ReplicaId, Message),
    Timeout(Timer),
}

/// What a replica durably records before acting on it, so a restart never equivocates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The replica entered this view.
    View(View),
    /// The replica started changing to this view: it no longer takes part in earlier ones.
    ViewChange(View),
    /// A pre-prepare this replica signed (primary), with its batch so it can be resent. A new
    /// primary may re-propose a batch it never received (it asks for it): then `None`.
    PrePrepare(Signed<crate::wire::PrePrepare>, Option<crate::wire::Batch>),
    /// A slot prepared here, with its batch: a later VIEW-CHANGE must carry this certificate,
    /// even after a restart, or a new primary could re-propose a different batch for a
    /// committed seq; and the batch lets this replica give it to those that lack it.
    Prepared(crate::wire::PreparedCert, crate::wire::Batch),
    /// A PREPARE or COMMIT this replica signed.
    Vote(Signed<crate::wire::Vote>),
    /// A stable checkpoint and the snapshot it certifies.
    Stable { cert: CheckpointCert, snapshot: Vec<u8> },
    /// The nonce of a report this replica signed as a client of the state: after a restart it
    /// never signs another report under a used nonce, whatever its clock says (two reports under
    /// one nonce would read as a double spend of its own). Last, so older journals still decode.
    OwnNonce(u64),
}

/// What a replica asks its host to do.
#[derive(Clone, Debug)]
pub enum Effect {
    Send {
        to: ReplicaId,
        msg: Message,
    },
    Broadcast(Message),
    /// Deliver a signed batch reply to these clients.
    Reply {
        clients: Vec<PublicKey>,
        reply: Signed<crate::wire::Reply>,
    },
    SetTimer {
        timer: Timer,
        after_ms: u64,
    },
    CancelTimer(Timer),
    /// Durably record this before any message sent after it leaves the process.
    Persist(Record),
    /// A committed batch was executed at `seq` with these results (in batch order; stale
    /// requests have no entry).
    Executed {
        seq: Seq,
        batch: crate::wire::Batch,
        entries: Vec<ReplyEntry>,
    },
    /// The state jumped to a certified snapshot (state transfer).
    StateInstalled {
        seq: Seq,
        state: Digest,
    },
    /// This replica took a checkpoint of its state after executing `seq`.
    Checkpoint {
        seq: Seq,
        state: Digest,
    },
    /// A checkpoint became stable.
    Stable {
        seq: Seq,
        state: Digest,
    },
    /// Entered a new epoch at its boundary (or by state transfer): the host connects to its
    /// voters and broadcasts to them from now on.
    EpochEntered {
        epoch: Epoch,
    },
    /// Entered a new view; `cause` is why this replica left the previous one.
    ViewEntered {
        view: View,
        primary: ReplicaId,
        cause: &'static str,
    },
    /// The operator injected a fault into this agent (testing clusters only): from now on its
    /// host rewrites what it sends with this behaviour (`None`: behave again).
    InjectFault {
        fault: Option<String>,
        probability_permille: u32,
    },
    /// Provable misbehaviour observed.
    Evidence(Evidence),
}

/// Signature checking, supplied by the host: the node verifies in batches on worker threads and
/// caches verdicts; the simulator memoises across replicas. Verdicts must equal single
/// verification under ZIP 215 (see `phalanx_crypto::BatchVerifier`).
pub trait SignatureVerifier: Send {
    fn verify(&mut self, items: &[VerifyItem]) -> Vec<bool>;
}

/// The default verifier: batch verification with a seeded CSPRNG for the coefficients.
pub struct DirectVerifier {
    rng: SeededRng,
}

impl DirectVerifier {
    pub fn new(seed: [u8; 32]) -> Self {
        DirectVerifier { rng: SeededRng::new(seed) }
    }
}

impl SignatureVerifier for DirectVerifier {
    fn verify(&mut self, items: &[VerifyItem]) -> Vec<bool> {
        BatchVerifier::verify(&mut self.rng, items)
    }
}

/// A verifier that consults (and fills) a shared verdict cache.
pub struct CachedVerifier {
    cache: Arc<VerdictCache>,
    rng: SeededRng,
}

impl CachedVerifier {
    pub fn new(cache: Arc<VerdictCache>, seed: [u8; 32]) -> Self {
        CachedVerifier { cache, rng: SeededRng::new(seed) }
    }
}

impl SignatureVerifier for CachedVerifier {
    fn verify(&mut self, items: &[VerifyItem]) -> Vec<bool> {
        self.cache.verify(&mut self.rng, items)
    }
}
