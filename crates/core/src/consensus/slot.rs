//! What one replica knows about one sequence number.

use crate::evidence::Evidence;
use crate::wire::{Batch, CommitCert, Phase, PrePrepare, PreparedCert, ReplicaId, Signed, View, Vote};
use phalanx_crypto::Digest;
use std::collections::{BTreeMap, BTreeSet};

/// Earlier views' pre-prepared batches kept per slot. A batch that matters was proposed by a
/// Byzantine primary and later named by a certificate; consecutive views with Byzantine
/// primaries, each proposing something new here, could push it out only after this many.
/// Round-robin primaries give at most f such views in a row before an honest one, and an honest
/// primary's view re-proposes the certified batch (or decides the slot); 8 covers f up to 7
/// (n = 22) and keeps the memory at 8 batches per slot of the log window.
const MAX_PRE_PREPARED: usize = 8;

#[derive(Clone, Debug, Default)]
pub(crate) struct Slot {
    /// The view the votes below belong to.
    pub view: View,
    pub pre_prepare: Option<Signed<PrePrepare>>,
    pub batch: Option<Batch>,
    /// The digest `batch` hashes to, known when it was stored (a decided batch may differ from
    /// a later view's proposal, so the two are compared before a certificate pairs them).
    pub batch_digest: Option<Digest>,
    /// The operation digests of `batch`'s requests when known (empty otherwise): execution
    /// answers with them instead of hashing every request again.
    pub ops: Vec<Digest>,
    /// One vote per sender for `view`; counted only where the digest matches the pre-prepare.
    pub prepares: BTreeMap<ReplicaId, Signed<Vote>>,
    pub commits: BTreeMap<ReplicaId, Signed<Vote>>,
    pub sent_prepare: bool,
    pub sent_commit: bool,
    /// The highest-view prepared certificate this replica holds for the slot (kept across views:
    /// a later VIEW-CHANGE must carry it).
    pub prepared: Option<PreparedCert>,
    /// The batch `prepared` names (kept across views with it, to answer `BatchRequest`s).
    pub prepared_batch: Option<Batch>,
    /// Batches of earlier views' proposals this replica accepted, by digest, with the view of
    /// the latest such proposal (the Q-set of Castro and Liskov), kept until the seq is stable.
    /// A member may hold a valid prepared certificate for a batch that no honest replica
    /// prepared (its accomplice's PREPARE went to it alone); a later honest primary must then
    /// re-propose it, and only replicas that kept what they pre-prepared can hand it over.
    pub pre_prepared: BTreeMap<Digest, (View, Batch)>,
    /// The decided batch digest and its commit certificate.
    pub decided: Option<CommitCert>,
    /// Peers sent the commit certificate in this view (they voted on a re-proposal of it).
    pub certified: BTreeSet<ReplicaId>,
    /// When this replica started on the slot in its current view: only slots undecided for a
    /// full resend interval are retransmitted.
    pub since_ms: u64,
}

impl Slot {
    pub fn new(view: View) -> Self {
        Slot { view, ..Default::default() }
    }

    /// Moves the slot to a later view: votes and the proposal of the old view no longer count.
    pub fn enter_view(&mut self, view: View) {
        if view > self.view {
            if self.decided.is_none()
                && let (Some(pp), Some(batch), Some(d)) =
                    (&self.pre_prepare, self.batch.take(), self.batch_digest)
            {
                self.keep_pre_prepared(pp.body.view, d, batch);
            }
            self.view = view;
            self.pre_prepare = None;
            if self.decided.is_none() {
                self.batch = None;
                self.batch_digest = None;
                self.ops = Vec::new();
            }
            self.prepares.clear();
            self.commits.clear();
            self.certified.clear();
            self.sent_prepare = false;
            self.sent_commit = false;
        }
    }

    /// Adds a pre-prepared batch to the Q-set. Each view has at most one proposal per seq, so
    /// the set grows by one per view that proposed something different here; past
    /// `MAX_PRE_PREPARED` the oldest view's batch goes (a run of more Byzantine primaries than
    /// that in a row needs more faulty members than the bound allows, see the constant).
    fn keep_pre_prepared(&mut self, view: View, digest: Digest, batch: Batch) {
        self.pre_prepared.insert(digest, (view, batch));
        while self.pre_prepared.len() > MAX_PRE_PREPARED {
            let Some(oldest) = self.pre_prepared.iter().min_by_key(|(_, (v, _))| *v).map(|(d, _)| *d) else {
                break;
            };
            self.pre_prepared.remove(&oldest);
        }
    }

    /// The epoch the slot's proposal or prepared certificate belongs to.
    pub fn epoch(&self) -> Option<u64> {
        self.pre_prepare.as_ref().or(self.prepared.as_ref().map(|p| &p.pre_prepare)).map(|pp| pp.body.epoch)
    }

    /// The commit certificate, if the slot was decided for `digest`.
    pub fn decided_as(&self, digest: Digest) -> Option<&CommitCert> {
        self.decided.as_ref().filter(|c| c.commits.first().is_some_and(|v| v.body.digest == digest))
    }

    /// Stores the batch with the digest it was checked against and, if known, its requests'
    /// operation digests.
    pub fn set_batch(&mut self, batch: Batch, digest: Digest, ops: Vec<Digest>) {
        self.batch = Some(batch);
        self.batch_digest = Some(digest);
        self.ops = ops;
    }

    /// Any batch this replica holds for the slot that hashes to `digest`: the current
    /// proposal's, the prepared certificate's, or the decided one.
    pub fn known_batch(&self, digest: Digest) -> Option<&Batch> {
        let prepared = self
            .prepared_batch
            .as_ref()
            .filter(|_| self.prepared.as_ref().is_some_and(|p| p.pre_prepare.body.digest == digest));
        let decided = self.decided_as(digest).map(|c| &c.batch);
        let pre_prepared = self.pre_prepared.get(&digest).map(|(_, b)| b);
        self.batch_for(digest).or(prepared).or(decided).or(pre_prepared)
    }

    /// The stored batch, if it is the one `digest` names.
    pub fn batch_for(&self, digest: Digest) -> Option<&Batch> {
        self.batch.as_ref().filter(|_| self.batch_digest == Some(digest))
    }

    pub fn digest(&self) -> Option<Digest> {
        self.pre_prepare.as_ref().map(|p| p.body.digest)
    }

    /// Records a vote of this slot's view, one per sender. A second vote from the same sender
    /// for a different digest is equivocation: the first is kept and both are returned as
    /// evidence. Votes of another view are not this slot's to count or compare (two votes of
    /// different views prove nothing).
    pub fn insert_vote(&mut self, vote: Signed<Vote>) -> Option<Evidence> {
        if vote.body.view != self.view {
            return None;
        }
        let map = match vote.body.phase {
            Phase::Prepare => &mut self.prepares,
            Phase::Commit => &mut self.commits,
        };
        match map.get(&vote.from) {
            Some(old) if old.body.digest != vote.body.digest => {
                Some(Evidence::VoteEquivocation(old.clone(), vote))
            }
            Some(_) => None,
            None => {
                map.insert(vote.from, vote);
                None
            }
        }
    }

    /// Distinct senders whose vote matches the pre-prepare's digest. `exclude` is the primary for
    /// prepares: its pre-prepare is its vote and a PREPARE from it never counts.
    pub fn matching(&self, phase: Phase, exclude: Option<ReplicaId>) -> usize {
        let Some(d) = self.digest() else { return 0 };
        let map = match phase {
            Phase::Prepare => &self.prepares,
            Phase::Commit => &self.commits,
        };
        map.values().filter(|v| v.body.digest == d && Some(v.from) != exclude).count()
    }

    pub fn matching_votes(&self, phase: Phase, exclude: Option<ReplicaId>) -> Vec<Signed<Vote>> {
        let Some(d) = self.digest() else { return Vec::new() };
        let map = match phase {
            Phase::Prepare => &self.prepares,
            Phase::Commit => &self.commits,
        };
        map.values().filter(|v| v.body.digest == d && Some(v.from) != exclude).cloned().collect()
    }
}
