//! After a view change, slots a replica already decided are re-proposed. It does not vote on
//! them again; a peer that still votes on one gets the commit certificate instead. A replica that
//! never received a re-proposed batch asks the members that prepared it.

mod common;

use common::*;
use phalanx_core::consensus::{Effect, Input, Timer};
use phalanx_core::wire::{Message, Phase, ReplicaId};

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

/// Batch requests sent, with the members they went to.
fn batch_requests(effects: &[Effect]) -> Vec<(ReplicaId, Vec<u64>)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { to, msg: Message::BatchRequest(r) } => {
                Some((*to, r.body.wanted.iter().map(|(seq, _)| *seq).collect()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_re_proposed_batch_never_received_is_fetched_before_commit() {
    let fx = Fixture::new(4);
    let batch = fx.batch(vec![fx.request(1, 5)]);
    let d = batch.digest();
    // Replica 2 prepared the batch in view 0 (the primary's proposal and 3's PREPARE).
    let mut holder = fx.replica(2);
    let genesis = holder.state().digest();
    feed(&mut holder, fx.pre_prepare(0, 1, &batch));
    assert!(sent_vote(&feed(&mut holder, fx.vote(3, Phase::Prepare, 0, 1, d)), Phase::Commit, 1));

    // Replica 3 never saw that proposal. View 1 re-proposes it by digest only: 3 votes PREPARE
    // and asks the certificate's signers (0, 2 and 3, itself excepted) for the batch.
    let mut lacking = fx.replica(3);
    let nv = fx.sign(1, fx.new_view_reproposing(&batch, genesis));
    let entered = feed(&mut lacking, Message::NewView(nv));
    assert_eq!(lacking.view(), 1);
    assert!(sent_vote(&entered, Phase::Prepare, 1));
    assert_eq!(batch_requests(&entered), vec![(0, vec![1]), (2, vec![1])]);
    let request = sent(&entered).into_iter().find(|m| matches!(m, Message::BatchRequest(_))).unwrap();

    // Prepared, but no COMMIT without the batch: a COMMIT promises a durable certificate and
    // batch, so a quorum of committers can give the batch to whoever lacks it.
    let prepared = feed(&mut lacking, fx.vote(2, Phase::Prepare, 1, 1, d));
    assert!(!sent_vote(&prepared, Phase::Commit, 1));
    // A batch that does not hash to the slot's digest is ignored.
    let other = fx.batch(vec![fx.request(1, 6)]);
    assert!(!sent_vote(&feed(&mut lacking, Message::Batch(1, other)), Phase::Commit, 1));

    // The holder answers (once per half resend interval), and the batch unblocks the COMMIT.
    let answer = sent(&feed(&mut holder, request.clone()));
    assert!(matches!(&answer[..], [Message::Batch(1, b)] if b.digest() == d), "{answer:?}");
    assert!(sent(&feed(&mut holder, request)).is_empty(), "asking again at once is not answered");
    let got = feed(&mut lacking, answer[0].clone());
    assert!(sent_vote(&got, Phase::Commit, 1));
    let mut out = Vec::new();
    for i in [0, 1] {
        out.extend(feed(&mut lacking, fx.vote(i, Phase::Commit, 1, 1, d)));
    }
    assert_eq!(executed(&out), vec![1]);
    assert_eq!(lacking.state().app.accounts["bob"].balance, 5);
    // Nothing is missing any more: the resend timer asks for nothing.
    let tick = lacking
        .handle(10_000, phalanx_core::consensus::Input::Timeout(phalanx_core::consensus::Timer::Resend));
    assert!(batch_requests(&tick).is_empty());
}

/// Replicas whose view-change timer ran out move on to the next view; if their VIEW-CHANGEs for
/// the lower view were lost, those still waiting for it see neither a quorum for it nor f+1 for
/// the higher one, and both groups wait for good (found by the randomized simulator). A replica
/// keeps resending the VIEW-CHANGEs it signed for views between its view and its target.
#[test]
fn a_replica_that_moved_on_still_resends_its_view_change_for_the_lower_view() {
    use phalanx_core::wire::{CheckpointCert, ViewChange};
    let fx = Fixture::new(4);
    let mut r = fx.replica(3);
    let stable = CheckpointCert { seq: 0, state: r.state().digest(), proofs: Vec::new() };
    let vc = |from, new_view| {
        Message::ViewChange(
            fx.sign(from, ViewChange { epoch: 0, new_view, stable: stable.clone(), prepared: Vec::new() }),
        )
    };
    // A quorum asks for view 1 (its primary never sends NEW-VIEW): the timer moves r to view 2.
    feed(&mut r, vc(0, 1));
    feed(&mut r, vc(2, 1));
    let out = r.handle(1, Input::Timeout(Timer::ViewChange));
    assert!(sent(&out).iter().any(|m| matches!(m, Message::ViewChange(v) if v.body.new_view >= 2)));
    let resent = r.handle(2, Input::Timeout(Timer::Resend));
    let views: Vec<u64> = sent(&resent)
        .iter()
        .filter_map(|m| match m {
            Message::ViewChange(v) if v.from == 3 => Some(v.body.new_view),
            _ => None,
        })
        .collect();
    assert!(views.contains(&1), "the VIEW-CHANGE for view 1 is no longer sent: {views:?}");
    assert!(views.iter().any(|v| *v >= 2), "{views:?}");
}
