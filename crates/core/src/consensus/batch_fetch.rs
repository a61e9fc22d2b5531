//! Batches of re-proposals. VIEW-CHANGEs and NEW-VIEWs name batches by digest only, so their size
//! does not grow with the load; a replica that enters a view re-proposing a batch it never
//! received asks the members that prepared it, and takes the first answer that hashes to the
//! digest its slot is waiting for.

use super::Effect;
use super::ignored::Ignored;
use super::pool::RequestDigests;
use super::replica::Replica;
use crate::application::Application;
use crate::wire::{Batch, BatchRequest, Message, ReplicaId, Seq, Signed, limits};
use phalanx_crypto::Digest;

impl<A: Application> Replica<A> {
    /// A batch this replica holds for `seq` that hashes to `digest` (the null batch is known
    /// to everyone).
    pub(super) fn local_batch(&self, seq: Seq, digest: Digest) -> Option<Batch> {
        if let Some(b) = self.log.get(&seq).and_then(|s| s.known_batch(digest)) {
            return Some(b.clone());
        }
        let null = Batch::null();
        (null.digest() == digest).then_some(null)
    }

    /// Slots of this view whose proposal is known but whose batch is not.
    fn missing_batches(&self) -> Vec<(Seq, Digest)> {
        self.log
            .range(self.stable.seq + 1..)
            .filter(|(_, s)| s.decided.is_none())
            .filter_map(|(seq, s)| s.digest().filter(|d| s.batch_for(*d).is_none()).map(|d| (*seq, d)))
            .take(limits::MAX_PREPARED_CERTS)
            .collect()
    }

    /// Asks `to` for every batch this replica is missing (nothing is sent if none is).
    pub(super) fn request_batches(&mut self, to: &[ReplicaId]) {
        let wanted = self.missing_batches();
        if wanted.is_empty() || to.is_empty() || !self.is_voter() {
            return;
        }
        let r = self.sign(BatchRequest { epoch: self.epoch.number, wanted });
        for t in to {
            self.out.push(Effect::Send { to: *t, msg: Message::BatchRequest(r.clone()) });
        }
    }

    /// Answers with the batches asked for that this replica holds. Each answer can be large, so
    /// a member is answered at most twice per resend interval: asking cannot become an
    /// amplification attack.
    pub(super) fn on_batch_request(&mut self, r: Signed<BatchRequest>) {
        if r.body.epoch != self.epoch.number {
            return self.ignore(Ignored::OtherEpoch);
        }
        if !self.verify_signed(&r) {
            return self.ignore(Ignored::BadSignature);
        }
        let last = self.catch_up.batches_served_at.get(&r.from).copied();
        if last.is_some_and(|t| self.now < t.saturating_add(self.params.resend_interval_ms / 2)) {
            return self.ignore(Ignored::RateLimited);
        }
        self.catch_up.batches_served_at.insert(r.from, self.now);
        for (seq, d) in &r.body.wanted {
            if let Some(batch) = self.log.get(seq).and_then(|s| s.known_batch(*d)).cloned() {
                self.out.push(Effect::Send { to: r.from, msg: Message::Batch(*seq, batch) });
            }
        }
    }

    /// A batch answering our request: kept if this slot waits for exactly it.
    pub(super) fn on_batch(&mut self, seq: Seq, batch: Batch) {
        let Some(d) = self.log.get(&seq).and_then(|s| s.digest()) else {
            return self.ignore(Ignored::Unsolicited);
        };
        if self.log.get(&seq).is_some_and(|s| s.decided.is_some() || s.batch_for(d).is_some()) {
            return self.ignore(Ignored::Duplicate);
        }
        let digests = RequestDigests::of(&batch.requests, &self.pool);
        if Batch::digest_over(batch.timestamp_ms, &digests.requests) != d {
            return self.ignore(Ignored::DigestMismatch);
        }
        // The digest is the one a quorum prepared, so its requests were checked then.
        for r in &digests.requests {
            self.pool.mark_proposed(r);
        }
        if let Some(slot) = self.log.get_mut(&seq) {
            slot.set_batch(batch, d, digests.ops);
        }
        self.advance(seq);
    }
}
