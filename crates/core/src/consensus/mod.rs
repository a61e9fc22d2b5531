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
//! - [`host`]: the one interpreter of effects that the node and the simulator share.

mod accusations;
mod batch_fetch;
pub mod certs;
mod checkpoint;
mod execution;
mod host;
mod ignored;
mod invariants;
mod journal;
mod pool;
mod reconfig;
mod recovery;
mod replica;
pub mod reputation;
mod requests;
mod slot;
mod view_change;

pub use crate::membership::{Epoch, Member, worst_new_view_bytes};
pub use crate::new_view::{NewViewPlan, Proposal, plan_new_view};
pub use checkpoint::DigestAgreement;
pub use host::{Host, Timers, perform};
pub use ignored::Ignored;
pub use journal::Journal;
pub use recovery::RecoverError;
pub use replica::{Replica, ReplicaStatus};
pub use view_change::ViewChangeCause;

use crate::application::Application;
use crate::evidence::Evidence;
use crate::state::Genesis;
use crate::wire::{CheckpointCert, Message, ReplicaId, ReplyEntry, Seq, Signed, View};
use phalanx_crypto::{BatchVerifier, Digest, PublicKey, SeededRng, VerdictCache, VerifyItem};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

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
#[serde(bound = "A: Application")]
pub struct Config<A: Application> {
    pub cluster_id: Digest,
    pub epoch: Epoch,
    pub params: Params,
    pub genesis: Genesis,
    /// The application's genesis (accounts, say).
    pub app: A::Genesis,
}

impl<A: Application> Config<A> {
    /// The replicated state this configuration starts from.
    pub fn genesis_state(&self) -> crate::state::State<A> {
        crate::state::State::from_genesis(
            &self.genesis,
            &self.app,
            self.cluster_id,
            &self.epoch,
            (self.params.checkpoint_interval, self.params.log_window),
        )
    }

    /// Refuses configurations a replica cannot run safely.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.epoch.quorum()?;
        let p = &self.params;
        if p.checkpoint_interval == 0 || p.batch_size == 0 || p.max_inflight == 0 {
            return Err(ConfigError::Zero);
        }
        if p.log_window < p.checkpoint_interval || p.max_inflight > p.log_window {
            return Err(ConfigError::WindowTooSmall {
                log_window: p.log_window,
                checkpoint_interval: p.checkpoint_interval,
                max_inflight: p.max_inflight,
            });
        }
        let max = crate::wire::limits::MAX_PREPARED_CERTS as u64;
        if p.log_window > max {
            return Err(ConfigError::WindowTooLarge { log_window: p.log_window, max });
        }
        let voters = self.epoch.voters.len();
        let worst = worst_new_view_bytes(voters, self.epoch.f, p.log_window);
        if worst > crate::wire::limits::MAX_MESSAGE_BYTES {
            let fits = (1..p.log_window).rev().find(|w| {
                worst_new_view_bytes(voters, self.epoch.f, *w) <= crate::wire::limits::MAX_MESSAGE_BYTES
            });
            return Err(ConfigError::NewViewTooLarge {
                voters,
                f: self.epoch.f,
                log_window: p.log_window,
                worst_mib: worst >> 20,
                limit_mib: crate::wire::limits::MAX_MESSAGE_BYTES >> 20,
                fits: fits.unwrap_or(0),
            });
        }
        let mut names = std::collections::BTreeSet::new();
        if !self.epoch.members.iter().all(|m| names.insert(&m.name)) {
            return Err(ConfigError::DuplicateNames);
        }
        let n = self.epoch.members.len();
        let sorted = self.epoch.voters.windows(2).all(|w| w[0] < w[1]);
        if !sorted || self.epoch.voters.iter().any(|v| *v as usize >= n) {
            return Err(ConfigError::BadVoters);
        }
        Ok(())
    }
}

/// A configuration a replica cannot run safely, and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(transparent)]
    Quorum(#[from] crate::quorum::QuorumError),
    #[error("checkpoint interval, batch size and max in-flight instances must be at least 1")]
    Zero,
    #[error(
        "the log window ({log_window}) must cover the checkpoint interval ({checkpoint_interval}) and the in-flight instances ({max_inflight})"
    )]
    WindowTooSmall { log_window: u64, checkpoint_interval: u64, max_inflight: u64 },
    #[error(
        "the log window ({log_window}) may be at most {max} slots (a VIEW-CHANGE carries one certificate per slot)"
    )]
    WindowTooLarge { log_window: u64, max: u64 },
    #[error(
        "with {voters} voters, f = {f} and a log window of {log_window}, a NEW-VIEW could reach {worst_mib} MiB, over the {limit_mib} MiB frame limit; lower the log window to at most {fits}"
    )]
    NewViewTooLarge {
        voters: usize,
        f: usize,
        log_window: u64,
        worst_mib: usize,
        limit_mib: usize,
        fits: u64,
    },
    #[error("member names must be unique")]
    DuplicateNames,
    #[error("voters must be distinct member ids, ascending")]
    BadVoters,
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
        cause: ViewChangeCause,
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
