//! Whom a client believes, epoch by epoch. It starts from genesis and takes a later epoch only on
//! a proof it checks itself: the operator-signed reconfiguration, a commit certificate of the
//! batch that ordered it from a quorum of the previous epoch's voters, and f+1 signed replies
//! from distinct voters of that epoch saying it was applied. The new epoch is then computed here
//! from the request, exactly as the replicas compute it. A reply counts only if it is signed by
//! a voter of the epoch it names, toward that epoch's f+1: a member removed by a
//! reconfiguration no longer speaks for the cluster.

use phalanx_app::Config;
use phalanx_core::consensus::Epoch;
use phalanx_core::consensus::certs::commits_certify;
use phalanx_core::wire::{EpochProof, Operation, OperatorAction, Outcome, ReplicaId, Reply, Signed};
use phalanx_crypto::{Digest, PublicKey, verify_one};
use std::collections::BTreeSet;

/// How long after a reconfiguration was committed (by the replicated clock) a request created
/// by the client may still have executed in the epoch before it. The primary pads to the
/// boundary with empty batches at once, so the hand-over takes milliseconds; the margin covers
/// clock differences between client and cluster.
pub const HANDOVER_MS: u64 = 60_000;

#[derive(Clone, Debug)]
pub struct Membership {
    cluster: Digest,
    operator: Option<PublicKey>,
    /// The cluster's checkpoint interval and log window (a reconfiguration is computed from them).
    windows: (u64, u64),
    /// Verified epochs, from genesis on, with the replicated time each was committed (0 for
    /// genesis).
    epochs: Vec<(Epoch, u64)>,
}

impl Membership {
    pub fn genesis(config: &Config) -> Self {
        Membership {
            cluster: config.cluster_id,
            operator: config.genesis.operator,
            windows: (config.params.checkpoint_interval, config.params.log_window),
            epochs: vec![(config.epoch.clone(), 0)],
        }
    }

    pub fn epoch(&self, n: u64) -> Option<&Epoch> {
        self.epochs.get(n as usize).map(|(e, _)| e)
    }

    pub fn latest(&self) -> &Epoch {
        &self.epochs.last().expect("genesis is always known").0
    }

    /// Checks a reply's signature against the voter of the epoch it names; returns that
    /// epoch's f (the reply counts toward f+1 of that epoch), or why it does not count.
    pub fn reply_weight(&self, reply: &Signed<Reply>) -> Result<usize, String> {
        let n = reply.body.epoch;
        let epoch = self
            .epoch(n)
            .ok_or_else(|| format!("reply from epoch {n}, which this client has not verified"))?;
        let key = epoch
            .voter_key(reply.from)
            .ok_or_else(|| format!("agent {} is not a voter of epoch {n}", reply.from))?;
        let item = reply.verify_item(key, &self.cluster);
        if !verify_one(&item.key, &item.message, &item.signature) {
            return Err(format!("reply of agent {} does not verify", reply.from));
        }
        Ok(epoch.f)
    }

    /// Whether a request the client created at `created_ms` (its clock) can have executed in
    /// epoch `n`: not if a later epoch was committed well before.
    pub fn may_have_executed_in(&self, n: u64, created_ms: u64) -> bool {
        match self.epochs.get(n as usize + 1) {
            Some((_, committed_ms)) => created_ms <= committed_ms.saturating_add(HANDOVER_MS),
            None => self.epoch(n).is_some(),
        }
    }

    /// Takes epoch `n` (the next one) on the proofs gathered from agents, if they prove it.
    pub fn learn(&mut self, n: u64, proofs: &[EpochProof]) -> Result<(), String> {
        if n as usize != self.epochs.len() {
            return Err(format!(
                "epoch {n} is not the next one (this client knows {})",
                self.epochs.len() - 1
            ));
        }
        let prev = self.latest().clone();
        let mut last_err = format!("no agent sent a proof of epoch {n}");
        for candidate in proofs {
            match self.check(&prev, candidate, proofs) {
                Ok(next) => {
                    let at = candidate.cert.batch.timestamp_ms;
                    self.epochs.push((next, at));
                    return Ok(());
                }
                Err(e) => last_err = e,
            }
        }
        Err(format!("epoch {n} not proven: {last_err}"))
    }

    /// The epoch `candidate` proves after `prev`, with replies from all `proofs` counted.
    fn check(&self, prev: &Epoch, candidate: &EpochProof, proofs: &[EpochProof]) -> Result<Epoch, String> {
        let req = &candidate.request;
        let Operation::Operator(OperatorAction::UpdateQuorum { remove, add, f }) = &req.body.op else {
            return Err("the proof's request is not a reconfiguration".into());
        };
        if self.operator != Some(req.body.client) {
            return Err("the reconfiguration is not signed by the operator".into());
        }
        let signed =
            req.verify_item(&self.cluster).is_some_and(|it| verify_one(&it.key, &it.message, &it.signature));
        if !signed {
            return Err("the reconfiguration's signature does not verify".into());
        }
        let cert = &candidate.cert;
        if !commits_certify(&self.cluster, prev, cert) || !cert.batch.requests.iter().any(|r| r == req) {
            return Err(format!("no commit certificate of epoch {} for the reconfiguration", prev.number));
        }
        let seq = cert.commits[0].body.seq;
        let op = req.op_digest();
        let mut applied: BTreeSet<ReplicaId> = BTreeSet::new();
        for p in proofs {
            let r = &p.reply;
            let says_applied = r.body.entries.iter().any(|e| {
                (e.client, e.nonce, e.op) == (req.body.client, req.body.nonce, op)
                    && e.outcome == Outcome::Applied
            });
            if r.body.epoch == prev.number
                && r.body.seq == seq
                && says_applied
                && self.reply_weight(r).is_ok()
            {
                applied.insert(r.from);
            }
        }
        if applied.len() < prev.f + 1 {
            return Err(format!(
                "{} of the f+1 = {} voters of epoch {} confirm the reconfiguration was applied",
                applied.len(),
                prev.f + 1,
                prev.number
            ));
        }
        prev.reconfigured(seq, self.windows, remove, add, *f)
            .ok_or_else(|| "the reconfiguration does not yield a valid epoch".to_string())
    }
}
