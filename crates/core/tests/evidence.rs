//! Evidence verifies only when it proves what it claims.

mod common;

use common::Fixture;
use phalanx_core::evidence::{Culprit, Evidence, EvidenceError};
use phalanx_core::wire::{Phase, PrePrepare};
use phalanx_crypto::digest;

#[test]
fn vote_equivocation_is_proven_and_forgeries_are_not() {
    let fx = Fixture::new(4);
    let keys: Vec<_> = fx.keys.iter().map(|k| k.public()).collect();
    let (a, b) = (digest(b"a"), digest(b"b"));
    let v1 = fx.sign(2, fx.vote_body(Phase::Prepare, 0, 5, a));
    let v2 = fx.sign(2, fx.vote_body(Phase::Prepare, 0, 5, b));
    let ev = Evidence::VoteEquivocation(v1.clone(), v2.clone());
    assert_eq!(ev.verify(fx.cluster(), &keys), Ok(()));
    assert_eq!(ev.culprit(), Culprit::Member(2));

    let mut forged = v2.clone();
    forged.sig.s[3] ^= 1;
    assert_eq!(
        Evidence::VoteEquivocation(v1.clone(), forged).verify(fx.cluster(), &keys),
        Err(EvidenceError::BadSignature)
    );
    let other_slot = fx.sign(2, fx.vote_body(Phase::Prepare, 0, 6, b));
    assert_eq!(
        Evidence::VoteEquivocation(v1.clone(), other_slot).verify(fx.cluster(), &keys),
        Err(EvidenceError::DifferentSlots)
    );
    let other_view = fx.sign(2, fx.vote_body(Phase::Prepare, 1, 5, b));
    assert_eq!(
        Evidence::VoteEquivocation(v1.clone(), other_view).verify(fx.cluster(), &keys),
        Err(EvidenceError::DifferentSlots)
    );
    let other_signer = fx.sign(3, fx.vote_body(Phase::Prepare, 0, 5, b));
    assert_eq!(
        Evidence::VoteEquivocation(v1.clone(), other_signer).verify(fx.cluster(), &keys),
        Err(EvidenceError::DifferentSigners)
    );
    assert_eq!(
        Evidence::VoteEquivocation(v1.clone(), v1.clone()).verify(fx.cluster(), &keys),
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
    assert_eq!(ev.verify(fx.cluster(), &keys), Err(EvidenceError::ProposalValid));
    let mut bad = good.clone();
    bad.requests[0].sig.r[0] ^= 1;
    assert_eq!(Evidence::InvalidProposal(pp(bad.digest()), bad.clone()).verify(fx.cluster(), &keys), Ok(()));
    assert_eq!(
        Evidence::InvalidProposal(pp(good.digest()), bad).verify(fx.cluster(), &keys),
        Err(EvidenceError::BatchMismatch)
    );
}

#[test]
fn double_spend_is_two_operations_under_one_nonce() {
    let fx = Fixture::new(4);
    let a = fx.request(7, 10);
    let b = fx.request(7, 11);
    assert_eq!(Evidence::DoubleSpend(a.clone(), b.clone()).verify(fx.cluster(), &[]), Ok(()));
    assert_eq!(
        Evidence::DoubleSpend(a.clone(), a.clone()).verify(fx.cluster(), &[]),
        Err(EvidenceError::NoConflict)
    );
    assert_eq!(
        Evidence::DoubleSpend(a, fx.request(8, 11)).verify(fx.cluster(), &[]),
        Err(EvidenceError::DifferentSlots)
    );
}
