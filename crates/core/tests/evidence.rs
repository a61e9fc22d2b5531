//! Evidence verifies only when it proves what it claims.

mod common;

use common::Fixture;
use phalanx_core::evidence::{Culprit, Evidence, EvidenceError};
use phalanx_core::wire::{Checkpoint, NewView, Phase, PrePrepare, Signed};
use phalanx_crypto::digest;

#[test]
fn vote_equivocation_is_proven_and_forgeries_are_not() {
    let fx = Fixture::new(4);
    let keys: Vec<_> = fx.keys.iter().map(|k| k.public()).collect();
    let (a, b) = (digest(b"a"), digest(b"b"));
    let v1 = fx.sign(2, fx.vote_body(Phase::Prepare, 0, 5, a));
    let v2 = fx.sign(2, fx.vote_body(Phase::Prepare, 0, 5, b));
    let ev = Evidence::VoteEquivocation(v1.clone(), v2.clone());
    assert_eq!(ev.verify(fx.cluster(), &keys, false), Ok(()));
    assert_eq!(ev.culprit(), Culprit::Member(2));

    let mut forged = v2.clone();
    forged.sig.s[3] ^= 1;
    assert_eq!(
        Evidence::VoteEquivocation(v1.clone(), forged).verify(fx.cluster(), &keys, false),
        Err(EvidenceError::BadSignature)
    );
    let other_slot = fx.sign(2, fx.vote_body(Phase::Prepare, 0, 6, b));
    assert_eq!(
        Evidence::VoteEquivocation(v1.clone(), other_slot).verify(fx.cluster(), &keys, false),
        Err(EvidenceError::DifferentSlots)
    );
    let other_view = fx.sign(2, fx.vote_body(Phase::Prepare, 1, 5, b));
    assert_eq!(
        Evidence::VoteEquivocation(v1.clone(), other_view).verify(fx.cluster(), &keys, false),
        Err(EvidenceError::DifferentSlots)
    );
    let other_signer = fx.sign(3, fx.vote_body(Phase::Prepare, 0, 5, b));
    assert_eq!(
        Evidence::VoteEquivocation(v1.clone(), other_signer).verify(fx.cluster(), &keys, false),
        Err(EvidenceError::DifferentSigners)
    );
    assert_eq!(
        Evidence::VoteEquivocation(v1.clone(), v1.clone()).verify(fx.cluster(), &keys, false),
        Err(EvidenceError::NoConflict)
    );
    // Same identity for the same evidence: duplicates deduplicate.
    assert_eq!(ev.id(), Evidence::VoteEquivocation(v1, v2).id());
}

#[test]
fn invalid_proposal_needs_a_really_bad_request() {
    let fx = Fixture::new(4);
    let keys: Vec<_> = fx.keys.iter().map(|k| k.public()).collect();
    let good = fx.batch(vec![fx.request(1, 5)]);
    let pp = |d| fx.sign(0, PrePrepare { epoch: 0, view: 0, seq: 1, digest: d });
    let ev = Evidence::InvalidProposal(pp(good.digest()), good.clone());
    assert_eq!(ev.verify(fx.cluster(), &keys, false), Err(EvidenceError::ProposalValid));
    let mut bad = good.clone();
    let mut requests = bad.requests.to_vec();
    requests[0].sig.r[0] ^= 1;
    bad.requests = requests.into();
    assert_eq!(
        Evidence::InvalidProposal(pp(bad.digest()), bad.clone()).verify(fx.cluster(), &keys, false),
        Ok(())
    );
    assert_eq!(
        Evidence::InvalidProposal(pp(good.digest()), bad).verify(fx.cluster(), &keys, false),
        Err(EvidenceError::BatchMismatch)
    );
}

#[test]
fn double_spend_is_two_operations_under_one_nonce() {
    let fx = Fixture::new(4);
    let a = fx.request(7, 10);
    let b = fx.request(7, 11);
    assert_eq!(Evidence::DoubleSpend(a.clone(), b.clone()).verify(fx.cluster(), &[], false), Ok(()));
    assert_eq!(
        Evidence::DoubleSpend(a.clone(), a.clone()).verify(fx.cluster(), &[], false),
        Err(EvidenceError::NoConflict)
    );
    assert_eq!(
        Evidence::DoubleSpend(a, fx.request(8, 11)).verify(fx.cluster(), &[], false),
        Err(EvidenceError::DifferentSlots)
    );
}

/// The honest NEW-VIEW of `Fixture::new_view_reproposing` (the checkpoint's state is not
/// judged by evidence).
fn new_view_body(fx: &Fixture) -> NewView {
    fx.new_view_reproposing(&fx.batch(vec![fx.request(1, 5)]), digest(b"genesis"))
}

#[test]
fn a_new_view_that_drops_or_invents_re_proposals_is_proven() {
    let fx = Fixture::new(4);
    let keys: Vec<_> = fx.keys.iter().map(|k| k.public()).collect();
    let check = |body: NewView| Evidence::InvalidNewView(fx.sign(1, body)).verify(fx.cluster(), &keys, false);

    let honest = new_view_body(&fx);
    assert_eq!(check(honest.clone()), Err(EvidenceError::NewViewValid));
    assert_eq!(Evidence::InvalidNewView(fx.sign(1, honest.clone())).culprit(), Culprit::Member(1));

    // The prepared request is dropped: the attack the recomputation exists for.
    let mut dropped = honest.clone();
    dropped.pre_prepares.clear();
    assert_eq!(check(dropped), Ok(()));
    // A re-proposal with another digest, or one more slot than the view changes justify.
    let mut swapped = honest.clone();
    swapped.pre_prepares[0] = fx.sign(1, PrePrepare { epoch: 0, view: 1, seq: 1, digest: digest(b"x") });
    assert_eq!(check(swapped), Ok(()));
    let mut invented = honest.clone();
    invented.pre_prepares.push(fx.sign(1, PrePrepare { epoch: 0, view: 1, seq: 2, digest: digest(b"y") }));
    assert_eq!(check(invented), Ok(()));
    // No view changes at all, or one for another view, or one with a broken signature: an
    // honest primary verifies each before including it.
    let mut empty = honest.clone();
    empty.view_changes.clear();
    empty.pre_prepares.clear();
    assert_eq!(check(empty), Ok(()));
    let mut other_view = honest.clone();
    other_view.view_changes[0].body.new_view = 2;
    other_view.view_changes[0] = fx.sign(0, other_view.view_changes[0].body.clone());
    assert_eq!(check(other_view), Ok(()));
    let mut broken: NewView = honest.clone();
    broken.view_changes[2].sig.s[0] ^= 1;
    assert_eq!(check(broken), Ok(()));

    // Forged evidence: the NEW-VIEW's own signature is bad, or its signer is unknown.
    let mut forged: Signed<NewView> = fx.sign(1, honest.clone());
    forged.body.pre_prepares.clear();
    assert_eq!(
        Evidence::InvalidNewView(forged).verify(fx.cluster(), &keys, false),
        Err(EvidenceError::BadSignature)
    );
    let mut stranger = fx.sign(1, honest);
    stranger.from = 9;
    assert_eq!(
        Evidence::InvalidNewView(stranger).verify(fx.cluster(), &keys, false),
        Err(EvidenceError::UnknownSigner(9))
    );
}

#[test]
fn proposal_and_checkpoint_equivocation_need_one_slot_and_two_values() {
    let fx = Fixture::new(4);
    let keys: Vec<_> = fx.keys.iter().map(|k| k.public()).collect();
    let pp = |view, seq, d: &[u8]| fx.sign(0, PrePrepare { epoch: 0, view, seq, digest: digest(d) });
    let ev = Evidence::ProposalEquivocation(pp(0, 3, b"a"), pp(0, 3, b"b"));
    assert_eq!(ev.verify(fx.cluster(), &keys, false), Ok(()));
    assert_eq!(ev.culprit(), Culprit::Member(0));
    assert_eq!(
        Evidence::ProposalEquivocation(pp(0, 3, b"a"), pp(1, 3, b"b")).verify(fx.cluster(), &keys, false),
        Err(EvidenceError::DifferentSlots)
    );
    assert_eq!(
        Evidence::ProposalEquivocation(pp(0, 3, b"a"), pp(0, 3, b"a")).verify(fx.cluster(), &keys, false),
        Err(EvidenceError::NoConflict)
    );

    let cp = |from, seq, s: &[u8]| fx.sign(from, Checkpoint { epoch: 0, seq, state: digest(s) });
    let ev = Evidence::CheckpointEquivocation(cp(3, 10, b"x"), cp(3, 10, b"y"));
    assert_eq!(ev.verify(fx.cluster(), &keys, false), Ok(()));
    assert_eq!(ev.fault_type(), "checkpoint-equivocation");
    assert_eq!(
        Evidence::CheckpointEquivocation(cp(3, 10, b"x"), cp(3, 20, b"y")).verify(fx.cluster(), &keys, false),
        Err(EvidenceError::DifferentSlots)
    );
    assert_eq!(
        Evidence::CheckpointEquivocation(cp(3, 10, b"x"), cp(2, 10, b"y")).verify(fx.cluster(), &keys, false),
        Err(EvidenceError::DifferentSigners)
    );
    let mut forged = cp(3, 10, b"y");
    forged.sig.s[3] ^= 1;
    assert_eq!(
        Evidence::CheckpointEquivocation(cp(3, 10, b"x"), forged).verify(fx.cluster(), &keys, false),
        Err(EvidenceError::BadSignature)
    );
}
