//! After a view change, slots a replica already decided are re-proposed. It does not vote on
//! them again; a peer that still votes on one gets the commit certificate instead.

mod common;

use common::*;
use phalanx_core::consensus::Effect;
use phalanx_core::wire::{Message, Phase};

/// Commit certificates sent to member `to`.
fn certificates_to(effects: &[Effect], to: u32) -> usize {
    effects
        .iter()
        .filter(|e| matches!(e, Effect::Send { to: t, msg: Message::Committed(_) } if *t == to))
        .count()
}

#[test]
fn a_decided_slot_is_settled_by_its_certificate_not_by_new_votes() {
    let fx = Fixture::new(4);
    let mut r = fx.replica(2);
    let genesis = r.state().digest();
    let batch = fx.batch(vec![fx.request(1, 5)]);
    let d = batch.digest();
    assert_eq!(executed(&commit_slot(&fx, &mut r, 1, &batch)), vec![1]);
    // A late PREPARE of the view that decided the slot asks for nothing.
    assert_eq!(certificates_to(&feed(&mut r, fx.vote(3, Phase::Prepare, 0, 1, d)), 3), 0);

    // View 1 (primary 1) re-proposes seq 1 from replica 2's prepared certificate.
    let nv = fx.sign(1, fx.new_view_reproposing(&batch, genesis));
    let entered = feed(&mut r, Message::NewView(nv));
    assert!(
        entered.iter().any(|e| matches!(e, Effect::ViewEntered { view: 1, .. })),
        "the replica should enter view 1: {entered:?}"
    );
    assert!(!sent_vote(&entered, Phase::Prepare, 1), "no new vote on a slot already decided");

    // A peer still voting on the re-proposal has not decided it: it gets the certificate, once.
    let answer = feed(&mut r, fx.vote(3, Phase::Prepare, 1, 1, d));
    assert_eq!(certificates_to(&answer, 3), 1);
    let proof = answer.iter().find_map(|e| match e {
        Effect::Send { msg: Message::Committed(c), .. } => Some(c.clone()),
        _ => None,
    });
    assert!(proof.is_some_and(|c| c.batch.digest() == d && c.commits.iter().all(|v| v.body.digest == d)));
    assert_eq!(certificates_to(&feed(&mut r, fx.vote(3, Phase::Prepare, 1, 1, d)), 3), 0);
}
