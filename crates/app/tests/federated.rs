//! Federated rounds in the replicated state: chunked uploads, closing at quorum, at the deadline
//! or on request, identical aggregates on every replica, reputation for removed updates, and a
//! clear rejection for every malformed operation.

// The consensus tests' hand-driven cluster: every key known, so a test plays any member.
#[path = "../../core/tests/common/mod.rs"]
mod common;

use common::Fixture;
use phalanx_app::State as AppState;
use phalanx_app::federated::{CloseCause, HISTORY, RoundOutcome, pipeline, result_charge};
use phalanx_core::state::Execution;
use phalanx_core::wire::federated::encode_values;
use phalanx_core::wire::{
    ClientRequest, FederatedOp, Operation, Outcome, RejectReason, RequestBody, RoundSpec,
};
use phalanx_crypto::{Keypair, PublicKey, digest};

/// The five participants: the four members and the client.
fn participants(fx: &Fixture) -> Vec<&Keypair> {
    fx.keys.iter().chain([&fx.client]).collect()
}

fn spec(fx: &Fixture, round: u64, rule: &str, quorum: u32) -> RoundSpec {
    RoundSpec {
        model: "digits".into(),
        round,
        rule: rule.into(),
        pre: Vec::new(),
        params: Vec::new(),
        f: 1,
        dim: 3,
        participants: participants(fx).iter().map(|k| k.public()).collect(),
        quorum,
        timeout_ms: 1_000,
        seed: 7,
    }
}

struct Driver {
    state: AppState,
    seq: u64,
    nonce: u64,
    cluster: phalanx_crypto::Digest,
}

impl Driver {
    fn new(fx: &Fixture) -> Self {
        let mut state: AppState = fx.config.genesis_state();
        state.begin_batch(1, 10_000);
        Driver { state, seq: 1, nonce: 0, cluster: *fx.cluster() }
    }

    fn run(&mut self, key: &Keypair, op: FederatedOp) -> Outcome {
        self.seq += 1;
        self.nonce += 1;
        let body = RequestBody { client: key.public(), nonce: self.nonce, op: Operation::Federated(op) };
        match self.state.execute(self.seq, &ClientRequest::sign(body, key, &self.cluster)) {
            Execution::Executed(o) => o,
            other => panic!("{other:?}"),
        }
    }

    fn submit(&mut self, key: &Keypair, round: u64, offset: u32, values: &[f64]) -> Outcome {
        let op = FederatedOp::Submit { model: "digits".into(), round, offset, values: encode_values(values) };
        self.run(key, op)
    }

    fn result(&self, round: u64) -> &phalanx_app::federated::RoundResult {
        let model = &self.state.app.federated.models["digits"];
        model.results.iter().find(|r| r.round == round).expect("round closed")
    }
}

/// A change that spoils a round's spec.
type Change = Box<dyn Fn(&mut RoundSpec)>;

fn rejected(r: RejectReason) -> Outcome {
    Outcome::Rejected(r)
}

const HONEST: [[f64; 3]; 4] = [[1.0, 2.0, 3.0], [1.5, 2.5, 3.5], [0.5, 1.5, 2.5], [1.0, 2.0, 4.0]];
const POISON: [f64; 3] = [100.0, -100.0, 50.0];

#[test]
fn a_round_closes_at_quorum_with_the_same_aggregate_on_every_replica() {
    let fx = Fixture::new(4);
    let mut a = Driver::new(&fx);
    assert_eq!(
        a.run(&fx.operator, FederatedOp::Open(Box::new(spec(&fx, 1, "multikrum", 5)))),
        Outcome::Applied
    );
    let keys = participants(&fx);
    // Honest members upload in two chunks (2 + 1 coordinates); the client sends poison.
    for (k, v) in keys[..4].iter().zip(HONEST) {
        assert_eq!(a.submit(k, 1, 0, &v[..2]), Outcome::Applied);
        assert_eq!(a.submit(k, 1, 2, &v[2..]), Outcome::Applied);
    }
    assert!(a.state.app.federated.models["digits"].open.is_some(), "4 of quorum 5: still open");
    let mut b = Driver { state: a.state.clone(), ..Driver::new(&fx) };
    b.seq = a.seq;
    b.nonce = a.nonce;
    assert_eq!(a.submit(keys[4], 1, 0, &POISON), Outcome::Applied);
    assert_eq!(b.submit(keys[4], 1, 0, &POISON), Outcome::Applied);

    let r = a.result(1);
    assert_eq!(r.cause, CloseCause::Quorum);
    // Multi-Krum keeps n − f = 4: the honest ones; their mean, by hand:
    let expected = [1.0, 2.0, 3.25];
    assert_eq!(r.outcome, RoundOutcome::Aggregated { digest: digest(&encode_values(&expected)) });
    let kept = r.kept.clone().unwrap();
    assert_eq!(kept.len(), 4);
    assert!(!kept.contains(&fx.client.public()));
    assert!(r.missing.is_empty());
    assert_eq!(a.state.app.federated.models["digits"].latest.as_ref().unwrap().vector(), expected);
    assert_eq!(a.state.digest(), b.state.digest(), "replicas agree bit for bit");
    // Snapshots carry the federated state.
    let restored = AppState::restore(&a.state.snapshot()).unwrap();
    assert_eq!(restored.digest(), a.state.digest());
    // Only the aggregate and the result stay reserved.
    assert_eq!(a.state.app.federated.reserved, 3 * 8 + result_charge(5));
}

#[test]
fn repeatedly_removed_agents_lose_reputation() {
    let fx = Fixture::new(4);
    let mut d = Driver::new(&fx);
    let keys = participants(&fx);
    for round in 1..=4 {
        assert_eq!(
            d.run(&fx.operator, FederatedOp::Open(Box::new(spec(&fx, round, "multikrum", 5)))),
            Outcome::Applied
        );
        for (k, v) in keys[..4].iter().zip(HONEST) {
            assert_eq!(d.submit(k, round, 0, &v), Outcome::Applied);
        }
        assert_eq!(d.submit(keys[4], round, 0, &POISON), Outcome::Applied);
        let poisoner = &d.state.app.federated.standing[&fx.client.public()];
        assert_eq!(poisoner.removed, round);
        assert_eq!(poisoner.suspect(), round >= 3);
    }
    let fed = &d.state.app.federated;
    assert_eq!(fed.standing[&fx.client.public()].score(), 0);
    for k in &keys[..4] {
        let s = &fed.standing[&k.public()];
        assert_eq!((s.submitted, s.kept, s.score(), s.suspect()), (4, 4, 100, false));
    }
}

#[test]
fn the_deadline_closes_with_what_arrived_and_a_refusal_keeps_the_last_aggregate() {
    let fx = Fixture::new(4);
    let mut d = Driver::new(&fx);
    let keys = participants(&fx);
    d.run(&fx.operator, FederatedOp::Open(Box::new(spec(&fx, 1, "median", 5))));
    for (k, v) in keys[..3].iter().zip(HONEST) {
        d.submit(k, 1, 0, &v);
    }
    d.submit(keys[3], 1, 0, &HONEST[3][..1]); // incomplete: counts as missing
    d.state.begin_batch(d.seq + 1, 10_999);
    assert!(d.state.app.federated.models["digits"].open.is_some(), "before the deadline");
    d.state.begin_batch(d.seq + 1, 11_000);
    let r = d.result(1);
    assert_eq!(r.cause, CloseCause::Deadline);
    assert_eq!(r.missing, vec![keys[3].public(), keys[4].public()]);
    assert_eq!(r.outcome, RoundOutcome::Aggregated { digest: digest(&encode_values(&[1.0, 2.0, 3.0])) });
    assert_eq!(d.state.app.federated.standing[&keys[4].public()].missed, 1);

    // Round 2: one update for f = 1 is too few; the rule refuses and round 1's aggregate stays.
    d.run(&fx.operator, FederatedOp::Open(Box::new(spec(&fx, 2, "median", 5))));
    d.submit(keys[0], 2, 0, &HONEST[0]);
    d.state.begin_batch(d.seq + 1, 20_000);
    assert!(matches!(&d.result(2).outcome, RoundOutcome::Refused { error } if error.contains("n > 2f")));
    let model = &d.state.app.federated.models["digits"];
    assert_eq!(model.latest.as_ref().unwrap().round, 1);
    assert_eq!(
        d.state.app.federated.reserved,
        3 * 8 + 2 * result_charge(5),
        "round 1's aggregate, two results"
    );
}

#[test]
fn only_the_operator_closes_a_round_early() {
    let fx = Fixture::new(4);
    let mut d = Driver::new(&fx);
    let keys = participants(&fx);
    assert_eq!(d.run(&fx.operator, FederatedOp::Open(Box::new(spec(&fx, 1, "median", 5)))), Outcome::Applied);
    for (k, v) in keys[..3].iter().zip(HONEST) {
        d.submit(k, 1, 0, &v);
    }
    let close = |round| FederatedOp::Close { model: "digits".into(), round };
    assert_eq!(d.run(&fx.keys[1], close(1)), rejected(RejectReason::Unauthorized));
    assert_eq!(d.run(&fx.operator, close(2)), rejected(RejectReason::RoundNotOpen));
    assert_eq!(d.run(&fx.operator, close(1)), Outcome::Applied);
    assert_eq!(d.result(1).cause, CloseCause::Closed);
    assert_eq!(d.run(&fx.operator, close(1)), rejected(RejectReason::RoundNotOpen));
}

#[test]
fn malformed_rounds_and_updates_are_rejected_with_reasons() {
    let fx = Fixture::new(4);
    let mut d = Driver::new(&fx);
    let keys = participants(&fx);
    let open = |s: RoundSpec| FederatedOp::Open(Box::new(s));
    let with = |f: &dyn Fn(&mut RoundSpec)| {
        let mut s = spec(&fx, 1, "median", 5);
        f(&mut s);
        open(s)
    };
    // Only the operator opens rounds: they reserve shared space.
    assert_eq!(d.run(&fx.client, with(&|_| {})), rejected(RejectReason::Unauthorized));
    assert_eq!(d.run(&fx.keys[0], with(&|_| {})), rejected(RejectReason::Unauthorized));
    let invalid = rejected(RejectReason::InvalidRound);
    let stranger = Keypair::from_seed([99; 32]).public();
    let cases: Vec<(&str, Change)> = vec![
        ("unknown rule", Box::new(|s| s.rule = "mode".into())),
        ("misspelt parameter", Box::new(|s| s.params = vec!["iteration=5".into()])),
        (
            "costly parameter",
            Box::new(|s| (s.rule, s.params) = ("geomed".into(), vec!["iterations=5000".into()])),
        ),
        ("unknown pre-aggregator", Box::new(|s| s.pre = vec!["shuffle".into()])),
        ("more than 4 pre-aggregators", Box::new(|s| s.pre = vec!["clip".into(); 5])),
        (
            "bucketing leaves too few for f",
            Box::new(|s| (s.pre, s.params) = (vec!["bucketing".into()], vec!["bucket_size=3".into()])),
        ),
        ("quorum above participants", Box::new(|s| s.quorum = 6)),
        ("quorum too small for f", Box::new(|s| s.quorum = 2)),
        ("participant twice", Box::new(|s| s.participants[1] = s.participants[0])),
        ("participant who is no client", Box::new(move |s| s.participants[0] = stranger)),
        ("round zero", Box::new(|s| s.round = 0)),
        ("dimension zero", Box::new(|s| s.dim = 0)),
        ("no timeout", Box::new(|s| s.timeout_ms = 0)),
    ];
    for (what, change) in &cases {
        assert_eq!(d.run(&fx.operator, with(change.as_ref())), invalid, "{what}");
    }
    let too_big = with(&|s| s.dim = 50_000);
    assert_eq!(d.run(&fx.operator, too_big), rejected(RejectReason::FederatedFull));
    assert!(d.state.app.federated.models.is_empty() && d.state.app.federated.reserved == 0);

    assert_eq!(d.run(&fx.operator, with(&|_| {})), Outcome::Applied);
    assert_eq!(d.run(&fx.operator, with(&|_| {})), invalid, "one open round per model");
    let bad = rejected(RejectReason::BadUpdate);
    assert_eq!(d.submit(&fx.operator, 1, 0, &[1.0]), rejected(RejectReason::NotParticipant));
    assert_eq!(d.submit(keys[0], 2, 0, &[1.0]), rejected(RejectReason::RoundNotOpen));
    assert_eq!(d.submit(keys[0], 1, 1, &[1.0]), bad, "offset ahead of the upload");
    assert_eq!(d.submit(keys[0], 1, 0, &[1.0, f64::NAN]), bad, "non-finite");
    assert_eq!(d.submit(keys[0], 1, 0, &[1.0, f64::INFINITY]), bad, "non-finite");
    assert_eq!(d.submit(keys[0], 1, 0, &[1.0; 4]), bad, "beyond the dimension");
    assert_eq!(d.submit(keys[0], 1, 0, &[]), bad, "empty chunk");
    let partial = FederatedOp::Submit { model: "digits".into(), round: 1, offset: 0, values: vec![0; 12] };
    assert_eq!(d.run(keys[0], partial), bad, "a partial value");
    assert!(d.state.app.federated.models["digits"].open.as_ref().unwrap().uploads.is_empty(), "nothing kept");
    assert_eq!(d.submit(keys[0], 1, 0, &[1.0, 2.0]), Outcome::Applied);
    assert_eq!(d.submit(keys[0], 1, 0, &[1.0]), bad, "a chunk again");
    assert_eq!(d.submit(keys[0], 1, 2, &[3.0]), Outcome::Applied);
    assert_eq!(d.submit(keys[0], 1, 3, &[4.0]), bad, "after completion");
    let uploads: Vec<(PublicKey, usize)> =
        (d.state.app.federated.models["digits"].open.as_ref().unwrap().uploads)
            .iter()
            .map(|(k, u)| (*k, u.0.len()))
            .collect();
    assert_eq!(uploads, vec![(keys[0].public(), 24)]);
}

#[test]
fn rounds_whose_aggregation_would_stall_the_replicas_are_refused() {
    let fx = Fixture::new(4);
    let many = |n: u8| (0..n).map(|i| Keypair::from_seed([i; 32]).public()).collect::<Vec<_>>();
    let round = |rule: &str, n: u8, f: u32| RoundSpec { participants: many(n), f, ..spec(&fx, 1, rule, 5) };
    // SMEA over 40 updates with f = 3: 9,880 eigen-decompositions of 37×37 (about 16 s).
    let err = pipeline(&round("smea", 40, 3)).unwrap_err();
    assert!(err.contains("SMEA's search too large"), "{err}");
    assert!(pipeline(&round("smea", 10, 3)).is_ok(), "the digits experiment's size");
    assert!(pipeline(&round("mda", 40, 4)).is_ok(), "91,390 subsets: about 0.1 s");
    assert!(pipeline(&round("mda", 60, 5)).unwrap_err().contains("MDA's search too large"));
    assert!(pipeline(&round("caf", 64, 5)).is_ok());
    assert!(pipeline(&round("caf", 65, 5)).unwrap_err().contains("CAF over more than 64"));
}

#[test]
fn the_reservation_bounds_what_federated_state_encodes() {
    // Whatever rounds do, the encoded federated state stays within what is reserved (plus the
    // models' own few bytes), so the budget bounds the snapshot.
    let fx = Fixture::new(4);
    let mut d = Driver::new(&fx);
    let keys = participants(&fx);
    let fits = |d: &Driver| {
        let fed = &d.state.app.federated;
        assert_eq!(fed.reserved, fed.models.values().map(|m| m.charge()).sum::<u64>());
        let encoded = phalanx_core::wire::to_bytes(fed).len() as u64;
        assert!(encoded <= fed.reserved + 256 * fed.models.len() as u64, "{encoded} > {}", fed.reserved);
    };
    for round in 1..=40u64 {
        let rule = ["median", "multikrum", "cge"][round as usize % 3];
        let s = RoundSpec { dim: 2048, ..spec(&fx, round, rule, 5) };
        assert_eq!(d.run(&fx.operator, FederatedOp::Open(Box::new(s))), Outcome::Applied);
        fits(&d);
        for (i, k) in keys.iter().enumerate() {
            let v: Vec<f64> = (0..2048).map(|j| (i * j) as f64).collect();
            d.submit(k, round, 0, &v[..1024]);
            fits(&d);
            // Every fourth round, three updates stay incomplete: it waits for its deadline.
            if round % 4 != 0 || i < 2 {
                d.submit(k, round, 1024, &v[1024..]);
            }
        }
        d.state.begin_batch(d.seq + 1, 10_000 + 2_000 * round);
        fits(&d);
        assert!(d.state.app.federated.models["digits"].open.is_none());
    }
    let model = &d.state.app.federated.models["digits"];
    assert_eq!(model.results.len(), HISTORY, "older results dropped");
    assert_eq!(d.state.app.federated.reserved, 2048 * 8 + HISTORY as u64 * result_charge(5));

    // Deleting the model, with a round open, frees everything and the name starts over.
    let s = RoundSpec { dim: 2048, ..spec(&fx, 41, "median", 5) };
    assert_eq!(d.run(&fx.operator, FederatedOp::Open(Box::new(s))), Outcome::Applied);
    d.submit(keys[0], 41, 0, &[1.0; 100]);
    let delete = |model: &str| FederatedOp::Delete { model: model.into() };
    assert_eq!(d.run(&fx.keys[0], delete("digits")), rejected(RejectReason::Unauthorized));
    assert_eq!(d.run(&fx.operator, delete("mnist")), rejected(RejectReason::UnknownModel));
    assert_eq!(d.run(&fx.operator, delete("digits")), Outcome::Applied);
    assert_eq!((d.state.app.federated.reserved, d.state.app.federated.models.len()), (0, 0));
    assert_eq!(d.run(&fx.operator, FederatedOp::Open(Box::new(spec(&fx, 1, "median", 5)))), Outcome::Applied);
}
