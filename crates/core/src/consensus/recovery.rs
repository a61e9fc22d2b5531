//! Restarting a replica from what it persisted: its stable checkpoint and snapshot, the views
//! it entered and everything it signed, so it never signs a conflicting message.

use super::replica::Replica;
use super::slot::Slot;
use super::{Config, Record, SignatureVerifier};
use crate::application::Application;
use crate::state::State;
use crate::wire::{Body, Kind, ReplicaId, Seq};
use phalanx_crypto::Keypair;
use std::collections::BTreeMap;

/// A journal a replica must not run from: running would risk signing against its own votes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecoverError {
    #[error("stable checkpoint {seq}: the snapshot does not decode ({cause})")]
    Undecodable { seq: Seq, cause: String },
    #[error("stable checkpoint {seq}: snapshot does not match its digest")]
    DigestMismatch { seq: Seq },
}

impl<A: Application> Replica<A> {
    /// A replica restarted from what it persisted: its stable checkpoint and snapshot, the views
    /// it entered, and everything it signed (so it never signs a conflicting message).
    pub fn recover(
        id: ReplicaId,
        key: Keypair,
        config: Config<A>,
        verifier: Box<dyn SignatureVerifier>,
        records: &[Record],
    ) -> Result<Self, RecoverError> {
        let mut r = Replica::new(id, key, config, verifier);
        for rec in records {
            match rec {
                Record::View(v) => {
                    if *v >= r.view {
                        r.view = *v;
                        r.active = true;
                        r.vc_target = r.vc_target.max(*v);
                    }
                }
                Record::ViewChange(v) => {
                    if *v > r.vc_target {
                        r.vc_target = *v;
                    }
                }
                Record::PrePrepare(pp, batch) => {
                    let b = &pp.body;
                    r.signed.insert((b.epoch, b.kind(), b.view, b.seq), b.digest);
                    let slot = r.log.entry(b.seq).or_insert_with(|| Slot::new(b.view));
                    if slot.view <= b.view {
                        slot.enter_view(b.view);
                        slot.pre_prepare = Some(pp.clone());
                        // Our own record: the batch is the one this pre-prepare signed.
                        if let Some(batch) = batch {
                            slot.set_batch(batch.clone(), b.digest, Vec::new());
                        }
                    }
                }
                Record::Prepared(cert, batch) => {
                    let b = &cert.pre_prepare.body;
                    let slot = r.log.entry(b.seq).or_insert_with(|| Slot::new(b.view));
                    if slot.prepared.as_ref().is_none_or(|p| p.pre_prepare.body.view < b.view) {
                        slot.prepared = Some(cert.clone());
                        slot.prepared_batch = Some(batch.clone());
                    }
                }
                Record::Vote(v) => {
                    let b = &v.body;
                    r.signed.insert((b.epoch, b.kind(), b.view, b.seq), b.digest);
                }
                Record::OwnNonce(n) => r.reports.own_nonce = r.reports.own_nonce.max(*n),
                Record::Stable { cert, snapshot } => {
                    if cert.seq > r.stable.seq {
                        // A snapshot that does not decode to its certified digest means the disk
                        // is damaged or from another version: refuse to run rather than diverge.
                        let state = State::<A>::restore(snapshot)
                            .map_err(|e| RecoverError::Undecodable { seq: cert.seq, cause: e.to_string() })?;
                        if state.digest() != cert.state {
                            return Err(RecoverError::DigestMismatch { seq: cert.seq });
                        }
                        r.state = state;
                        r.last_executed = cert.seq;
                        r.checkpoints.snapshots =
                            BTreeMap::from([(cert.seq, (cert.state, snapshot.clone()))]);
                        r.stable = cert.clone();
                    }
                }
            }
        }
        // The committed state knows our last executed report, should a record be missing.
        let own = r.key.public();
        r.reports.own_nonce = r.reports.own_nonce.max(r.state.last_nonce(&own).unwrap_or(0));
        // The stable state says which epoch we are in (we may have switched before the crash).
        r.sync_epoch();
        if r.vc_target > r.view {
            r.active = false;
        }
        let h = r.stable.seq;
        r.signed.retain(|(_, _, _, seq), _| *seq > h);
        // Slots of an epoch we left are void above its boundary.
        let epoch = r.epoch.number;
        r.log.retain(|seq, slot| *seq > h && slot.epoch().is_none_or(|e| e == epoch));
        // Restored slots keep their prepared certificates; only own pre-prepares of the current
        // view stay as proposals (to be resent).
        let view = r.view;
        for slot in r.log.values_mut() {
            slot.enter_view(view);
        }
        let floor = h.max(r.epoch.start) + 1;
        r.next_seq = r
            .signed
            .keys()
            .filter(|k| k.0 == epoch && k.1 == Kind::PrePrepare)
            .map(|k| k.3 + 1)
            .max()
            .unwrap_or(floor)
            .max(floor);
        Ok(r)
    }
}
