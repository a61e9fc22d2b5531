//! One test per entry of docs/architecture.md, "Mistakes others made". Each fails if the mistake
//! is made.

mod common;

use common::*;
use phalanx_core::consensus::{Effect, Input, Timer};
use phalanx_core::evidence::{Culprit, Evidence};
use phalanx_core::wire::{
    Batch, CheckpointCert, Message, NewView, Phase, PrePrepare, PreparedCert, Signed, ViewChange,
};

#[test]
fn primary_neither_sends_nor_counts_prepares() {
    let fx = Fixture::new(4);
    // The primary proposes and sends no PREPARE of its own.
    let mut primary = fx.replica(0);
    let out = feed(&mut primary, Message::Request(fx.request(1, 5)));
    assert!(sent(&out).iter().any(|m| matches!(m, Message::PrePrepare(..))), "the primary proposes");
    assert!(!sent_vote(&out, Phase::Prepare, 1), "the primary must not send a PREPARE");

    // A backup does not count a PREPARE signed by the primary.
    let mut backup = fx.replica(1);
    let batch = fx.batch(vec![fx.request(1, 5)]);
    let d = batch.digest();
    feed(&mut backup, fx.pre_prepare(0, 1, &batch));
    let out = feed(&mut backup, fx.vote(0, Phase::Prepare, 0, 1, d));
    assert!(!sent_vote(&out, Phase::Commit, 1), "a PREPARE from the primary was counted");
    let out = feed(&mut backup, fx.vote(2, Phase::Prepare, 0, 1, d));
    assert!(sent_vote(&out, Phase::Commit, 1), "own + one backup PREPARE is 2f: prepared");
}

#[test]
fn two_f_prepares_suffice_not_two_f_plus_one() {
    let fx = Fixture::new(4); // f = 1
    let mut backup = fx.replica(1);
    let batch = fx.batch(vec![fx.request(1, 5)]);
    let out = feed(&mut backup, fx.pre_prepare(0, 1, &batch));
    assert!(sent_vote(&out, Phase::Prepare, 1));
    assert!(!sent_vote(&out, Phase::Commit, 1), "one PREPARE (its own) is not 2f");
    let out = feed(&mut backup, fx.vote(2, Phase::Prepare, 0, 1, batch.digest()));
    assert!(sent_vote(&out, Phase::Commit, 1), "pre-prepare + 2f PREPAREs must prepare");
}

#[test]
fn one_sender_is_never_counted_twice() {
    let fx = Fixture::new(4);
    let mut backup = fx.replica(1);
    let batch = fx.batch(vec![fx.request(1, 5)]);
    let d = batch.digest();
    feed(&mut backup, fx.pre_prepare(0, 1, &batch));
    feed(&mut backup, fx.vote(2, Phase::Prepare, 0, 1, d));
    // Own COMMIT + replica 2's COMMIT delivered three times: two distinct senders, not a quorum.
    for _ in 0..3 {
        let out = feed(&mut backup, fx.vote(2, Phase::Commit, 0, 1, d));
        assert!(executed(&out).is_empty(), "a repeated COMMIT was counted again");
    }
    let out = feed(&mut backup, fx.vote(3, Phase::Commit, 0, 1, d));
    assert_eq!(executed(&out), vec![1]);
}

#[test]
fn execution_is_strictly_in_sequence_order() {
    let fx = Fixture::new(4);
    let mut backup = fx.replica(1);
    let b1 = fx.batch(vec![fx.request(1, 5)]);
    let b2 = fx.batch(vec![fx.request(2, 7)]);
    let out = commit_slot(&fx, &mut backup, 2, &b2);
    assert!(executed(&out).is_empty(), "seq 2 executed before seq 1");
    let out = commit_slot(&fx, &mut backup, 1, &b1);
    assert_eq!(executed(&out), vec![1, 2]);
    assert_eq!(backup.state().app.accounts["bob"].balance, 12);
}

#[test]
fn early_votes_are_kept_until_the_pre_prepare_arrives() {
    let fx = Fixture::new(4);
    let mut backup = fx.replica(1);
    let batch = fx.batch(vec![fx.request(1, 5)]);
    let d = batch.digest();
    for m in [
        fx.vote(2, Phase::Prepare, 0, 1, d),
        fx.vote(2, Phase::Commit, 0, 1, d),
        fx.vote(3, Phase::Commit, 0, 1, d),
    ] {
        assert!(executed(&feed(&mut backup, m)).is_empty());
    }
    // The pre-prepare completes the picture: prepared, committed and executed at once.
    let out = feed(&mut backup, fx.pre_prepare(0, 1, &batch));
    assert_eq!(executed(&out), vec![1], "votes that arrived early were dropped");
}

#[test]
fn votes_outside_the_water_marks_create_no_state() {
    let fx = Fixture::new(4);
    let mut backup = fx.replica(1);
    let d = fx.batch(vec![]).digest();
    let high = fx.config.params.log_window + 1; // above H = h + L with h = 0
    feed(&mut backup, fx.vote(2, Phase::Prepare, 0, high, d));
    feed(&mut backup, fx.vote(2, Phase::Commit, 0, high + 1000, d));
    feed(&mut backup, fx.vote(2, Phase::Commit, 0, 0, d));
    assert_eq!(backup.log_len(), 0, "a vote outside (h, H] entered the log");
    let out = feed(&mut backup, fx.pre_prepare(0, high, &fx.batch(vec![])));
    assert!(!sent_vote(&out, Phase::Prepare, high), "a pre-prepare above H was accepted");
    // Buffering them is bounded per sender (two senders here: the primary and replica 2).
    for s in 0..5000 {
        feed(&mut backup, fx.vote(2, Phase::Commit, 0, high + s, d));
    }
    assert!(backup.buffered() <= 2 * fx.config.params.max_buffered_per_sender);
    assert!(backup.buffered() > 0, "early messages are kept, not dropped");
}

/// View changes for view 1 from replicas 0, 1 and 3; replica 0's carries a prepared certificate
/// for seq 1 (prepared in view 0 with PREPAREs from 2 and 3).
fn view_changes(fx: &Fixture, batch: &Batch) -> Vec<Signed<ViewChange>> {
    let genesis = fx.config.genesis_state().digest();
    let stable = CheckpointCert { seq: 0, state: genesis, proofs: vec![] };
    let d = batch.digest();
    let cert = PreparedCert {
        pre_prepare: fx.sign(0, PrePrepare { epoch: 0, view: 0, seq: 1, digest: d }),
        prepares: vec![
            fx.sign(2, fx.vote_body(Phase::Prepare, 0, 1, d)),
            fx.sign(3, fx.vote_body(Phase::Prepare, 0, 1, d)),
        ],
    };
    [0u32, 1, 3]
        .iter()
        .map(|&i| {
            let prepared = if i == 0 { vec![cert.clone()] } else { vec![] };
            fx.sign(i, ViewChange { epoch: 0, new_view: 1, stable: stable.clone(), prepared })
        })
        .collect()
}

fn new_view(fx: &Fixture, vcs: Vec<Signed<ViewChange>>, proposal: &Batch) -> Message {
    let pp = fx.sign(1, PrePrepare { epoch: 0, view: 1, seq: 1, digest: proposal.digest() });
    Message::NewView(fx.sign(1, NewView { epoch: 0, view: 1, view_changes: vcs, pre_prepares: vec![pp] }))
}

#[test]
fn a_new_view_that_does_not_follow_from_its_view_changes_is_rejected() {
    let fx = Fixture::new(4);
    let batch = fx.batch(vec![fx.request(1, 5)]);
    // The new primary drops the prepared request and re-proposes the null batch instead.
    let forged = new_view(&fx, view_changes(&fx, &batch), &Batch::null());
    let mut backup = fx.replica(2);
    // Unsolicited, it changes nothing (or any faulty member could force view changes), but the
    // signed NEW-VIEW is itself the proof: the backup reports it, and only that.
    let out = feed(&mut backup, forged.clone());
    assert_eq!((backup.view(), backup.is_active()), (0, true));
    assert!(sent(&out).iter().all(|m| matches!(m, Message::Request(_))));
    assert!(out.iter().any(|e| matches!(e, Effect::Evidence(Evidence::InvalidNewView(nv)) if nv.from == 1)));
    // A backup waiting for view 1 (f+1 members asked for it) rejects it and moves on to view 2.
    for vc in view_changes(&fx, &batch).into_iter().take(2) {
        feed(&mut backup, Message::ViewChange(vc));
    }
    assert_eq!((backup.is_active(), backup.status().view_change_target), (false, 1));
    let out = feed(&mut backup, forged);
    assert_eq!(backup.view(), 0, "a NEW-VIEW with wrong re-proposals was trusted");
    assert!(
        sent(&out).iter().any(|m| matches!(m, Message::ViewChange(vc) if vc.body.new_view == 2)),
        "the backup should move on to view 2"
    );
    // The honest NEW-VIEW re-proposes the prepared batch and is accepted.
    let mut backup = fx.replica(2);
    let out = feed(&mut backup, new_view(&fx, view_changes(&fx, &batch), &batch));
    assert_eq!(backup.view(), 1);
    assert!(backup.is_active());
    assert!(sent(&out).iter().any(|m| matches!(m,
        Message::Vote(v) if v.body.view == 1 && v.body.seq == 1 && v.body.digest == batch.digest())));
}

/// A primary that showed replica 2 one proposal and the others another is caught by replica 2
/// when a VIEW-CHANGE carries the others' prepared certificate: no single peer saw both.
#[test]
fn a_split_proposal_is_proven_from_a_view_changes_certificate() {
    let fx = Fixture::new(4);
    let (a, b) = (fx.batch(vec![fx.request(1, 5)]), fx.batch(vec![fx.request(1, 6)]));
    let mut backup = fx.replica(2);
    feed(&mut backup, fx.pre_prepare(0, 1, &a));
    let genesis = fx.config.genesis_state().digest();
    let cert = PreparedCert {
        pre_prepare: fx.sign(0, PrePrepare { epoch: 0, view: 0, seq: 1, digest: b.digest() }),
        prepares: [1, 3].map(|i| fx.sign(i, fx.vote_body(Phase::Prepare, 0, 1, b.digest()))).to_vec(),
    };
    let stable = CheckpointCert { seq: 0, state: genesis, proofs: vec![] };
    let vc = fx.sign(3, ViewChange { epoch: 0, new_view: 1, stable, prepared: vec![cert] });
    let out = feed(&mut backup, Message::ViewChange(vc));
    let proven = out.iter().any(|e| {
        matches!(e, Effect::Evidence(ev @ Evidence::ProposalEquivocation(x, y))
            if ev.culprit() == Culprit::Member(0) && x.body.digest == a.digest() && y.body.digest != a.digest())
    });
    assert!(proven, "the split proposal was not reported");
}

#[test]
fn nothing_is_executed_twice_across_a_view_change() {
    let fx = Fixture::new(4);
    let batch = fx.batch(vec![fx.request(1, 5)]);
    let d = batch.digest();
    let mut backup = fx.replica(2);
    assert_eq!(executed(&commit_slot(&fx, &mut backup, 1, &batch)), vec![1]);
    // View 1 re-proposes seq 1, and it commits again in view 1.
    let mut out = feed(&mut backup, new_view(&fx, view_changes(&fx, &batch), &batch));
    assert_eq!(backup.view(), 1);
    out.extend(feed(&mut backup, fx.vote(3, Phase::Prepare, 1, 1, d)));
    out.extend(feed(&mut backup, fx.vote(0, Phase::Prepare, 1, 1, d)));
    for i in [0, 1, 3] {
        out.extend(feed(&mut backup, fx.vote(i, Phase::Commit, 1, 1, d)));
    }
    assert!(executed(&out).is_empty(), "seq 1 executed again after the view change");
    assert_eq!(backup.state().counters.applied, 1);
    assert_eq!(backup.state().app.accounts["bob"].balance, 5);
}

#[test]
fn state_transfer_carries_the_client_table() {
    let fx = Fixture::new(4);
    let k = fx.config.params.checkpoint_interval;
    // Replica 1 executes K slots and takes a checkpoint; 0 and 2 agree: stable.
    let mut ahead = fx.replica(1);
    let mut state = None;
    for seq in 1..=k {
        for e in commit_slot(&fx, &mut ahead, seq, &fx.batch(vec![fx.request(seq, 1)])) {
            if let Effect::Checkpoint { state: s, .. } = e {
                state = Some(s);
            }
        }
    }
    let state = state.expect("a checkpoint at seq K");
    feed(&mut ahead, fx.checkpoint(0, k, state));
    feed(&mut ahead, fx.checkpoint(2, k, state));
    assert_eq!(ahead.stable_seq(), k);

    // Replica 3 missed everything: it sees the certificate and fetches the state.
    let mut behind = fx.replica(3);
    for i in 0..3 {
        feed(&mut behind, fx.checkpoint(i, k, state));
    }
    let out = behind.handle(1000, Input::Timeout(Timer::StateTransfer));
    let request =
        sent(&out).into_iter().find(|m| matches!(m, Message::StateRequest(_))).expect("a state request");
    let (to, request) = match request {
        Message::StateRequest(r) => (r.body.seq, Message::StateRequest(r)),
        _ => unreachable!(),
    };
    assert_eq!(to, k);
    let response = sent(&feed(&mut ahead, request)).pop().expect("a state response");
    let out = feed(&mut behind, response);
    assert!(out.iter().any(|e| matches!(e, Effect::StateInstalled { seq, .. } if *seq == k)));
    assert_eq!(behind.last_executed(), k);
    assert_eq!(behind.state(), ahead.state());
    assert_eq!(behind.state().last_nonce(&fx.client.public()), Some(k));

    // A retransmission of the last request is answered from the transferred reply cache.
    let out = feed(&mut behind, Message::Request(fx.request(k, 1)));
    assert!(out.iter().any(|e| matches!(e, Effect::Reply { reply, .. } if reply.body.seq == k)));
    assert_eq!(behind.status().pending_requests, 0, "an executed request was queued again");
}
