//! Committed reports: valid evidence quarantines its culprit once; forged, malformed or
//! other-epoch evidence is rejected and counted; duplicates change nothing; accusations
//! quarantine only with f+1 distinct accusers; operator actions need the operator's key.

mod common;

use common::Fixture;
use phalanx_app::State as AppState;
use phalanx_core::evidence::{Accusation, Evidence, Report};
use phalanx_core::state::Execution;
use phalanx_core::wire::{
    ClientRequest, Operation, OperatorAction, Outcome, Phase, RejectReason, RequestBody,
};
use phalanx_crypto::{Keypair, digest};

fn request(key: &Keypair, nonce: u64, op: Operation, fx: &Fixture) -> ClientRequest {
    ClientRequest::sign(RequestBody { client: key.public(), nonce, op }, key, fx.cluster())
}

fn report(fx: &Fixture, reporter: usize, nonce: u64, r: &Report) -> ClientRequest {
    request(&fx.keys[reporter], nonce, r.operation(), fx)
}

fn outcome(e: Execution) -> Outcome {
    match e {
        Execution::Executed(o) | Execution::Duplicate(o) => o,
        Execution::Stale => panic!("stale"),
    }
}

fn equivocation(fx: &Fixture, culprit: u32, view: u64) -> Evidence {
    let v1 = fx.sign(culprit, fx.vote_body(Phase::Commit, view, 5, digest(b"a")));
    let v2 = fx.sign(culprit, fx.vote_body(Phase::Commit, view, 5, digest(b"b")));
    Evidence::VoteEquivocation(v1, v2)
}

#[test]
fn valid_evidence_quarantines_and_duplicates_change_nothing() {
    let fx = Fixture::new(4);
    let mut s: AppState = fx.config.genesis_state();
    let ev = Report::Evidence(equivocation(&fx, 2, 0));
    s.begin_batch(1, 1_000);
    assert_eq!(outcome(s.execute(1, &report(&fx, 0, 1, &ev))), Outcome::Applied);
    let culprit = fx.keys[2].public();
    assert!(s.accountability.is_quarantined(&culprit));
    assert_eq!(s.accountability.quarantined[&culprit].expires_ms, 1_000 + 60_000);
    assert_eq!(s.accountability.log.back().unwrap().action, "quarantined");
    let before = s.digest();
    let log_len = s.accountability.log.len();

    // The same proof from another member, and a different pair for the same slot: duplicates.
    assert_eq!(outcome(s.execute(2, &report(&fx, 1, 1, &ev))), Outcome::Rejected(RejectReason::Duplicate));
    let v3 = fx.sign(2, fx.vote_body(Phase::Commit, 0, 5, digest(b"c")));
    let Report::Evidence(Evidence::VoteEquivocation(v1, _)) = &ev else { unreachable!() };
    let variant = Report::Evidence(Evidence::VoteEquivocation(v1.clone(), v3));
    assert_eq!(
        outcome(s.execute(3, &report(&fx, 3, 1, &variant))),
        Outcome::Rejected(RejectReason::Duplicate)
    );
    assert_eq!(s.accountability.log.len(), log_len);
    assert_eq!(s.accountability.evidence_duplicates, 2);
    assert_eq!(s.accountability.quarantined.len(), 1);
    // Only the client table moved (the reporters' nonces); the quarantine is untouched.
    assert_ne!(s.digest(), before);

    // Quarantine expires on committed time.
    s.begin_batch(2, 1_000 + 60_001);
    assert!(!s.accountability.is_quarantined(&culprit));
}

#[test]
fn forged_evidence_is_rejected_and_counted() {
    let fx = Fixture::new(4);
    let mut s = fx.config.genesis_state();
    let Evidence::VoteEquivocation(v1, v2) = equivocation(&fx, 2, 0) else { unreachable!() };

    // One invalid signature.
    let mut bad = v2.clone();
    bad.sig.s[0] ^= 1;
    // Two messages from different slots, and from different views.
    let other_seq = fx.sign(2, fx.vote_body(Phase::Commit, 0, 6, digest(b"b")));
    let other_view = fx.sign(2, fx.vote_body(Phase::Commit, 1, 5, digest(b"b")));
    // A member of another epoch: same messages, but claiming epoch 7.
    let mut e7a = fx.vote_body(Phase::Commit, 0, 5, digest(b"a"));
    e7a.epoch = 7;
    let mut e7b = e7a.clone();
    e7b.digest = digest(b"b");
    let other_epoch = Evidence::VoteEquivocation(fx.sign(2, e7a), fx.sign(2, e7b));
    // An honest member framed with messages signed by someone else.
    let mut framed = fx.sign(3, fx.vote_body(Phase::Commit, 0, 5, digest(b"b")));
    framed.from = 2;

    let forgeries = [
        Evidence::VoteEquivocation(v1.clone(), bad),
        Evidence::VoteEquivocation(v1.clone(), other_seq),
        Evidence::VoteEquivocation(v1.clone(), other_view),
        other_epoch,
        Evidence::VoteEquivocation(v1.clone(), framed),
    ];
    for (i, ev) in forgeries.into_iter().enumerate() {
        let r = report(&fx, 0, 10 + i as u64, &Report::Evidence(ev));
        assert_eq!(
            outcome(s.execute(1, &r)),
            Outcome::Rejected(RejectReason::InvalidEvidence),
            "forgery {i}"
        );
    }
    // Malformed bytes in place of a report.
    let junk = request(&fx.keys[0], 20, Operation::Report(vec![9, 9, 9]), &fx);
    assert_eq!(outcome(s.execute(1, &junk)), Outcome::Rejected(RejectReason::InvalidEvidence));
    assert_eq!(s.accountability.evidence_rejected, 6);
    assert!(s.accountability.quarantined.is_empty());
    // The genuine pair still convicts afterwards (forgeries did not poison deduplication).
    let real = report(&fx, 0, 30, &Report::Evidence(Evidence::VoteEquivocation(v1, v2)));
    assert_eq!(outcome(s.execute(2, &real)), Outcome::Applied);
    assert!(s.accountability.is_quarantined(&fx.keys[2].public()));
}

#[test]
fn only_members_report_and_bad_signature_accusations_need_f_plus_1() {
    let fx = Fixture::new(4); // f = 1: two distinct accusers quarantine
    let mut s = fx.config.genesis_state();
    let acc = |accused| Report::Accusation { epoch: 0, accused, fault: Accusation::BadSignature };
    // A client that is not a member may not report.
    let r = request(&fx.client, 1, Report::Evidence(equivocation(&fx, 2, 0)).operation(), &fx);
    assert_eq!(outcome(s.execute(1, &r)), Outcome::Rejected(RejectReason::Unauthorized));
    assert_eq!(outcome(s.execute(1, &report(&fx, 0, 1, &acc(3)))), Outcome::Applied);
    assert!(!s.accountability.is_quarantined(&fx.keys[3].public()));
    // The same accuser again does not count twice.
    assert_eq!(
        outcome(s.execute(2, &report(&fx, 0, 2, &acc(3)))),
        Outcome::Rejected(RejectReason::Duplicate)
    );
    assert!(!s.accountability.is_quarantined(&fx.keys[3].public()));
    // Censorship accusations never quarantine, however many.
    for who in [0, 1, 2] {
        let c = Report::Accusation { epoch: 0, accused: 3, fault: Accusation::Censorship };
        assert_eq!(outcome(s.execute(3, &report(&fx, who, 10, &c))), Outcome::Applied);
    }
    assert!(!s.accountability.is_quarantined(&fx.keys[3].public()));
    // A second distinct accuser: f+1 = 2.
    assert_eq!(outcome(s.execute(4, &report(&fx, 1, 20, &acc(3)))), Outcome::Applied);
    assert!(s.accountability.is_quarantined(&fx.keys[3].public()));
    assert_eq!(s.accountability.log.back().unwrap().detection_method, "accusations");
}

#[test]
fn operator_actions_need_the_operator_key_and_injection_needs_a_testing_cluster() {
    let fx = Fixture::new(4);
    let mut s = fx.config.genesis_state();
    let force = Operation::Operator(OperatorAction::ForceViewChange { view: 0 });
    // Signed by a member, or by a client: refused.
    assert_eq!(
        outcome(s.execute(1, &request(&fx.keys[0], 1, force.clone(), &fx))),
        Outcome::Rejected(RejectReason::Unauthorized)
    );
    assert_eq!(
        outcome(s.execute(1, &request(&fx.client, 1, force.clone(), &fx))),
        Outcome::Rejected(RejectReason::Unauthorized)
    );
    assert_eq!(outcome(s.execute(1, &request(&fx.operator, 1, force, &fx))), Outcome::Applied);
    assert_eq!(s.accountability.forced_view_changes, 1);

    // The fixture is a production cluster: injection is refused and logged.
    let inject = Operation::Operator(OperatorAction::InjectFault {
        agent: "bft-agent-2".into(),
        fault: Some("silent".into()),
        probability_permille: 1000,
    });
    assert_eq!(
        outcome(s.execute(2, &request(&fx.operator, 2, inject.clone(), &fx))),
        Outcome::Rejected(RejectReason::Unauthorized)
    );
    assert_eq!(s.accountability.log.back().unwrap().action, "refused");
    assert!(s.accountability.injected.is_empty());

    let mut config = fx.config.clone();
    config.genesis.testing = true;
    let mut t = config.genesis_state();
    assert_eq!(outcome(t.execute(1, &request(&fx.operator, 1, inject, &fx))), Outcome::Applied);
    assert_eq!(t.accountability.injected["bft-agent-2"], "silent");
}

/// An accuser caught since (here: quarantined for equivocation) no longer counts toward the f+1
/// accusers of bad signatures: with it, one honest-looking accusation would have been enough to
/// quarantine the accused at n = 4.
#[test]
fn a_quarantined_member_no_longer_counts_as_an_accuser() {
    let fx = Fixture::new(4);
    let mut s = fx.config.genesis_state();
    s.begin_batch(1, 1_000);
    let accuse = |by: usize, nonce| {
        report(&fx, by, nonce, &Report::Accusation { epoch: 0, accused: 0, fault: Accusation::BadSignature })
    };
    // Member 2 accuses member 0, then is caught equivocating.
    assert_eq!(outcome(s.execute(1, &accuse(2, 1))), Outcome::Applied);
    let ev = Report::Evidence(equivocation(&fx, 2, 0));
    assert_eq!(outcome(s.execute(2, &report(&fx, 1, 1, &ev))), Outcome::Applied);
    assert!(s.accountability.is_quarantined(&fx.keys[2].public()));
    // One more accuser: two in all, but only one that still counts (f+1 = 2 needed).
    assert_eq!(outcome(s.execute(3, &accuse(3, 1))), Outcome::Applied);
    assert!(
        !s.accountability.is_quarantined(&fx.keys[0].public()),
        "member 0 was quarantined on a caught accuser's word"
    );
}

/// The detection log keeps its last 1,024 entries; a flood of accusations must not push out the
/// record of a quarantine still in force.
#[test]
fn the_detection_log_keeps_a_quarantine_record_while_it_is_in_force() {
    let fx = Fixture::new(4);
    let mut s = fx.config.genesis_state();
    s.begin_batch(1, 1_000);
    let ev = Report::Evidence(equivocation(&fx, 2, 0));
    assert_eq!(outcome(s.execute(1, &report(&fx, 0, 1, &ev))), Outcome::Applied);
    for nonce in 1..=1_100 {
        let r = Report::Accusation { epoch: 0, accused: 3, fault: Accusation::Censorship };
        s.execute(1 + nonce, &report(&fx, 1, nonce, &r));
    }
    assert!(s.accountability.log.len() <= 1_024 + 4);
    let kept =
        s.accountability.log.iter().any(|e| e.detected_agent == "bft-agent-3" && e.action == "quarantined");
    assert!(kept, "the quarantine record of bft-agent-3 was evicted while in force");
}

/// An ordered operation that made execution panic would run again after every restart and stop
/// the cluster for good. Every kind of operation, with hostile contents, signed by the operator
/// and by a member, ends in an outcome.
#[test]
fn execution_is_total_for_hostile_operations_of_every_kind() {
    use phalanx_core::wire::{FederatedOp, Joiner, RoundSpec};
    let fx = Fixture::new(4);
    let mut s = fx.config.genesis_state();
    s.begin_batch(1, u64::MAX - 5);
    let long = "x".repeat(64);
    let spec = |dim, quorum, f, participants: Vec<phalanx_crypto::PublicKey>, timeout_ms| RoundSpec {
        model: long.clone(),
        round: u64::MAX,
        rule: "multikrum".into(),
        pre: vec!["bucketing".into(), "nnm".into(), "clip".into(), "nope".into()],
        params: vec!["f=999999".into(), "=".into(), "c=-1".into(), "s=NaN".into()],
        f,
        dim,
        participants,
        quorum,
        timeout_ms,
        seed: u64::MAX,
    };
    let keys: Vec<_> = fx.keys.iter().map(|k| k.public()).collect();
    let joiner = |i: u8| Joiner {
        name: format!("j{i}"),
        key: Keypair::from_seed([i; 32]).public(),
        replica_addr: "not an address".into(),
        http_addr: String::new(),
    };
    let ops = vec![
        Operation::Transfer { from: long.clone(), to: "alice".into(), amount: u64::MAX },
        Operation::Transfer { from: "alice".into(), to: "alice".into(), amount: 0 },
        Operation::Transfer { from: "alice".into(), to: "bob".into(), amount: u64::MAX },
        Operation::MemoryStore {
            namespace: String::new(),
            key: "k".into(),
            value: "v".into(),
            ttl_ms: Some(u64::MAX),
        },
        Operation::Report(Vec::new()),
        Operation::Report(vec![0xff; 4096]),
        Operation::Report(phalanx_core::wire::to_bytes(&Report::Accusation {
            epoch: u64::MAX,
            accused: u32::MAX,
            fault: Accusation::BadSignature,
        })),
        Operation::Operator(OperatorAction::ForceViewChange { view: u64::MAX }),
        Operation::Operator(OperatorAction::LiftQuarantine { member: long.clone() }),
        Operation::Operator(OperatorAction::InjectFault {
            agent: "bft-agent-1".into(),
            fault: Some("no such fault".into()),
            probability_permille: u32::MAX,
        }),
        Operation::Operator(OperatorAction::UpdateQuorum {
            remove: (1..=4).map(|i| format!("bft-agent-{i}")).collect(),
            add: (1..=20).map(joiner).collect(),
            f: Some(u32::MAX),
        }),
        Operation::Operator(OperatorAction::UpdateQuorum { remove: Vec::new(), add: Vec::new(), f: Some(0) }),
        Operation::Operator(OperatorAction::ShareNamespace { namespace: String::new() }),
        Operation::Federated(FederatedOp::Open(Box::new(spec(
            u32::MAX,
            u32::MAX,
            u32::MAX,
            keys.clone(),
            u64::MAX,
        )))),
        Operation::Federated(FederatedOp::Open(Box::new(spec(0, 0, 0, Vec::new(), 0)))),
        Operation::Federated(FederatedOp::Open(Box::new(spec(3, 4, 1, keys.clone(), 1)))),
        Operation::Federated(FederatedOp::Submit {
            model: long.clone(),
            round: u64::MAX,
            offset: u32::MAX,
            values: vec![0xff; 17],
        }),
        Operation::Federated(FederatedOp::Submit {
            model: long.clone(),
            round: u64::MAX,
            offset: 0,
            values: f64::NAN.to_le_bytes().to_vec(),
        }),
        Operation::Federated(FederatedOp::Close { model: long.clone(), round: 0 }),
        Operation::Federated(FederatedOp::Delete { model: String::new() }),
        Operation::Opaque(vec![0; 10]),
    ];
    let mut nonce = 0;
    for (i, op) in ops.iter().enumerate() {
        for signer in [&fx.operator, &fx.keys[1]] {
            nonce += 1;
            let seq = 2 + i as u64;
            let e = s.execute(seq, &request(signer, nonce, op.clone(), &fx));
            assert!(matches!(e, Execution::Executed(_)), "{op:?}: {e:?}");
        }
        s.begin_batch(2 + i as u64, (u64::MAX - 4).saturating_add(i as u64));
    }
    // And the state still encodes, restores and digests.
    let restored = AppState::restore(&s.snapshot()).unwrap();
    assert_eq!(restored.digest(), s.digest());
}

/// A report that proves nothing costs every replica its checks: it costs its sender reputation,
/// and the same bytes sent again are refused without being verified again.
#[test]
fn a_rejected_report_costs_its_sender() {
    use phalanx_core::consensus::reputation::{PeerStats, Reputation};
    let fx = Fixture::new(4);
    let mut s = fx.config.genesis_state();
    s.begin_batch(1, 1_000);
    let Evidence::VoteEquivocation(v1, mut v2) = equivocation(&fx, 2, 0) else { unreachable!() };
    v2.sig.s[0] ^= 1;
    let forged = Report::Evidence(Evidence::VoteEquivocation(v1, v2));
    for nonce in 1..=3 {
        let o = outcome(s.execute(nonce, &report(&fx, 1, nonce, &forged)));
        assert_eq!(o, Outcome::Rejected(RejectReason::InvalidEvidence));
    }
    let record = s.accountability.members[&fx.keys[1].public()].clone();
    assert_eq!(record.reports_rejected, 3);
    assert!(Reputation::new(&PeerStats::default(), &record, false).score < 1.0);
    assert!(!s.accountability.is_quarantined(&fx.keys[2].public()));
}

/// Evidence of an invalid NEW-VIEW is checked by recomputing its re-proposals from the
/// VIEW-CHANGEs inside, whose certificates are not verified first. One made up at seq u64::MAX
/// had every replica build 2^64 re-proposals when the report executed: a crash, and the same
/// crash after every restart. Now the span is bounded; such a NEW-VIEW is itself proof.
#[test]
fn evidence_with_a_certificate_at_the_last_seq_is_judged_without_blowing_up() {
    use phalanx_core::wire::{CheckpointCert, NewView, PrePrepare, PreparedCert, ViewChange};
    let fx = Fixture::new(4);
    let mut s = fx.config.genesis_state();
    s.begin_batch(1, 1_000);
    let stable = CheckpointCert { seq: 0, state: digest(b"s"), proofs: Vec::new() };
    let far = PreparedCert {
        pre_prepare: fx.sign(1, PrePrepare { epoch: 0, view: 0, seq: u64::MAX, digest: digest(b"d") }),
        prepares: Vec::new(),
    };
    let vc = fx.sign(1, ViewChange { epoch: 0, new_view: 1, stable, prepared: vec![far] });
    let nv = fx.sign(1, NewView { epoch: 0, view: 1, view_changes: vec![vc], pre_prepares: Vec::new() });
    let ev = Report::Evidence(Evidence::InvalidNewView(nv));
    let started = std::time::Instant::now();
    let o = outcome(s.execute(1, &report(&fx, 2, 1, &ev)));
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert_eq!(o, Outcome::Applied, "a NEW-VIEW no honest primary could sign is proof against its signer");
    assert!(s.accountability.is_quarantined(&fx.keys[1].public()));
}
