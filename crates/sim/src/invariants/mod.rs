//! Safety invariants, checked after every simulation step. Each invariant has its own checker
//! in its own file; [`Checker`] only routes what honest replicas do to them and keeps the
//! violations they find.
//!
//! | checker | holds when |
//! |---|---|
//! | `agreement` | honest replicas execute the same batch at a seq, with the same results |
//! | `ledger` | results match an independent reference ledger, and money is conserved |
//! | `requests` | no forged request executes, and one operation at most per (client, nonce) |
//! | `exactly_once` | each replica executes seq after seq; state transfer only moves forward |
//! | `checkpoints` | honest state digests agree at every checkpoint |
//! | `clock` | the replicated clock never runs ahead of real time by more than the skew bound |
//! | `accountability` | only faulty parties are accused or quarantined, on valid evidence |
//! | `bounds` | whatever peers send, an honest replica's log and buffers stay bounded |
//! | `replies` | every result a client accepted is what the agreed history executed |

mod accountability;
mod agreement;
mod bounds;
mod checkpoints;
mod clock;
mod exactly_once;
mod ledger;
mod replies;
mod requests;

use phalanx_app::State;
use phalanx_core::evidence::Evidence;
use phalanx_core::wire::{Batch, Outcome, ReplicaId, ReplyEntry, Seq};
use phalanx_crypto::{Digest, PublicKey};
use std::collections::BTreeSet;

pub use bounds::Bounds;

/// Violations found, with the virtual time of each. The first few are kept: one broken
/// invariant tends to break others after it.
#[derive(Default)]
pub struct Violations(Vec<String>);

const KEPT_VIOLATIONS: usize = 20;

impl Violations {
    pub fn push(&mut self, at: u64, what: impl std::fmt::Display) {
        if self.0.len() < KEPT_VIOLATIONS {
            self.0.push(format!("t={at}ms: {what}"));
        }
    }
}

/// What the checkers know about a run before it starts.
pub struct Run {
    /// Genesis accounts: name, owner, balance.
    pub genesis: Vec<(String, PublicKey, u64)>,
    pub faulty: BTreeSet<ReplicaId>,
    /// The faulty members' keys, and any client key the adversary holds.
    pub byzantine_keys: BTreeSet<PublicKey>,
    pub cluster: Digest,
    /// The genesis members' keys, by id.
    pub members: Vec<PublicKey>,
    pub testing: bool,
    pub max_clock_skew_ms: u64,
    pub bounds: Bounds,
}

pub struct Checker {
    agreement: agreement::Agreement,
    ledger: ledger::Ledger,
    requests: requests::Requests,
    exactly_once: exactly_once::ExactlyOnce,
    checkpoints: checkpoints::Checkpoints,
    clock: clock::Clock,
    accountability: accountability::Accountability,
    bounds: Bounds,
    replies: replies::Replies,
    violations: Violations,
}

impl Checker {
    pub fn new(run: Run) -> Self {
        Checker {
            agreement: Default::default(),
            ledger: ledger::Ledger::new(&run.genesis),
            requests: Default::default(),
            exactly_once: Default::default(),
            checkpoints: Default::default(),
            clock: clock::Clock { max_skew_ms: run.max_clock_skew_ms },
            accountability: accountability::Accountability {
                faulty: run.faulty,
                byzantine_keys: run.byzantine_keys,
                cluster: run.cluster,
                members: run.members,
                testing: run.testing,
            },
            bounds: run.bounds,
            replies: Default::default(),
            violations: Violations::default(),
        }
    }

    /// An honest replica executed `batch` at `seq` with these results; `state` is its state now.
    pub fn executed(
        &mut self,
        at: u64,
        replica: usize,
        seq: Seq,
        batch: &Batch,
        entries: &[ReplyEntry],
        state: &State,
    ) {
        let v = &mut self.violations;
        self.exactly_once.executed(v, at, replica, seq);
        self.clock.executed(v, at, replica, state.clock_ms);
        self.accountability.executed(v, at, replica, &state.accountability);
        if self.agreement.executed(v, at, replica, seq, batch, entries) {
            self.ledger.agreed(v, at, seq, batch, entries);
        }
        self.ledger.executed(v, at, replica, state.app.total_balance());
        self.requests.executed(v, at, replica, seq, batch, entries);
    }

    /// An honest replica's state digest at a checkpoint seq.
    pub fn checkpoint(&mut self, at: u64, replica: usize, seq: Seq, state: Digest) {
        self.checkpoints.taken(&mut self.violations, at, replica, seq, state);
    }

    /// An honest replica installed a certified snapshot (state transfer).
    pub fn installed(&mut self, at: u64, replica: usize, seq: Seq, state: Digest) {
        self.exactly_once.installed(&mut self.violations, at, replica, seq);
        self.checkpoints.taken(&mut self.violations, at, replica, seq, state);
    }

    /// A replica restarted from its disk at `seq`.
    pub fn recovered(&mut self, replica: usize, seq: Seq) {
        self.exactly_once.recovered(replica, seq);
    }

    /// An honest replica reported this evidence.
    pub fn evidence(&mut self, at: u64, replica: usize, evidence: &Evidence) {
        self.accountability.evidence(&mut self.violations, at, replica, evidence);
    }

    /// An honest replica's log and buffers after an input.
    pub fn bounds(&mut self, at: u64, replica: usize, log_slots: usize, buffered: usize) {
        self.bounds.check(&mut self.violations, at, replica, log_slots, buffered);
    }

    /// Requests the adversary sent with an invalid signature.
    pub fn forged(&mut self, requests: impl IntoIterator<Item = Digest>) {
        self.requests.forged.extend(requests);
    }

    /// A client accepted `outcome` for (client, nonce, op) on f+1 matching replies.
    pub fn accepted(&mut self, at: u64, client: PublicKey, nonce: u64, op: Digest, outcome: Outcome) {
        self.replies.accepted(at, client, nonce, op, outcome);
    }

    /// A violation found outside the checkers (the federated workload's own checks).
    pub fn violation(&mut self, at: u64, what: impl std::fmt::Display) {
        self.violations.push(at, what);
    }

    /// End of run: every accepted result must be what the agreed history executed. Returns the
    /// violations found.
    pub fn finish(&mut self) -> Vec<String> {
        self.replies.finish(&mut self.violations, self.ledger.results());
        std::mem::take(&mut self.violations.0)
    }
}

/// Each checker flags the violation it exists for (and only then): a checker that cannot fail
/// would pass every seed.
#[cfg(test)]
mod tests {
    use super::*;
    use phalanx_core::wire::Batch;
    use phalanx_crypto::digest;
    use std::collections::BTreeMap;

    fn batch(timestamp_ms: u64) -> Batch {
        Batch { timestamp_ms, ..Batch::default() }
    }

    #[test]
    fn agreement_flags_two_batches_at_one_seq() {
        let (mut a, mut v) = (agreement::Agreement::default(), Violations::default());
        assert!(a.executed(&mut v, 1, 0, 5, &batch(1), &[]));
        assert!(!a.executed(&mut v, 2, 1, 5, &batch(1), &[]));
        assert!(v.0.is_empty());
        a.executed(&mut v, 3, 2, 5, &batch(2), &[]);
        assert!(v.0[0].contains("agreement: replica 2"), "{:?}", v.0);
    }

    #[test]
    fn exactly_once_flags_a_gap_and_a_transfer_backwards() {
        let (mut e, mut v) = (exactly_once::ExactlyOnce::default(), Violations::default());
        e.executed(&mut v, 1, 0, 1);
        e.installed(&mut v, 1, 0, 10);
        e.executed(&mut v, 1, 0, 11);
        assert!(v.0.is_empty());
        e.executed(&mut v, 1, 0, 13);
        e.installed(&mut v, 1, 0, 12);
        assert_eq!(v.0.len(), 2, "{:?}", v.0);
    }

    #[test]
    fn checkpoints_flag_different_digests() {
        let (mut c, mut v) = (checkpoints::Checkpoints::default(), Violations::default());
        c.taken(&mut v, 1, 0, 10, digest(b"a"));
        c.taken(&mut v, 1, 1, 10, digest(b"a"));
        assert!(v.0.is_empty());
        c.taken(&mut v, 1, 2, 10, digest(b"b"));
        assert!(v.0[0].contains("state digests differ at checkpoint 10"));
    }

    #[test]
    fn the_clock_and_memory_bounds_flag_excess_only() {
        let mut v = Violations::default();
        let clock = clock::Clock { max_skew_ms: 100 };
        clock.executed(&mut v, 1_000, 0, 1_100);
        let bounds = Bounds { log_slots: 10, buffered: 5 };
        bounds.check(&mut v, 1, 0, 10, 5);
        assert!(v.0.is_empty());
        clock.executed(&mut v, 1_000, 0, 1_101);
        bounds.check(&mut v, 1, 0, 11, 0);
        assert_eq!(v.0.len(), 2);
    }

    #[test]
    fn a_result_no_one_executed_is_flagged_when_accepted() {
        let (mut r, mut v) = (replies::Replies::default(), Violations::default());
        let client = phalanx_crypto::Keypair::from_seed([3; 32]).public();
        let executed = BTreeMap::from([((client, 1, digest(b"op")), Outcome::Applied)]);
        r.accepted(1, client, 1, digest(b"op"), Outcome::Applied);
        r.finish(&mut v, &executed);
        assert!(v.0.is_empty());
        r.accepted(2, client, 2, digest(b"op"), Outcome::Applied);
        r.finish(&mut v, &executed);
        assert!(v.0[0].contains("no honest replica executed"));
    }

    #[test]
    fn only_the_first_violations_are_kept() {
        let mut v = Violations::default();
        for i in 0..100 {
            v.push(i, "x");
        }
        assert_eq!(v.0.len(), KEPT_VIOLATIONS);
    }
}
