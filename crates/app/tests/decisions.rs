//! Decisions executed through consensus's state: rules, deadlines, the dissent, late ballots,
//! double votes caught with evidence, and bad input refused with a reason.

use phalanx_app::decisions::{FULL_WEIGHT, KEPT_CLOSED};
use phalanx_app::{Genesis, State};
use phalanx_core::consensus::{Epoch, Member};
use phalanx_core::state::Execution;
use phalanx_core::wire::{
    self, Ballot, ClientRequest, DecisionOp, DecisionRule, DecisionSpec, Operation, Outcome, RejectReason,
    RequestBody,
};
use phalanx_crypto::{Digest, Keypair, digest};

struct Fixture {
    state: State,
    members: Vec<Keypair>,
    cluster: Digest,
    nonce: u64,
    seq: u64,
}

/// Seven members (f = 2) and no accounts: the voters are the agents themselves.
fn fixture() -> Fixture {
    let members: Vec<Keypair> = (0..7).map(|i| Keypair::from_seed([i + 1; 32])).collect();
    let epoch = Epoch::genesis(
        members
            .iter()
            .enumerate()
            .map(|(i, k)| Member { name: format!("agent-{i}"), key: k.public() })
            .collect(),
        2,
    );
    let cluster = digest(b"decisions");
    let state = State::from_genesis(&Default::default(), &Genesis::default(), cluster, &epoch, (100, 200));
    Fixture { state, members, cluster, nonce: 0, seq: 0 }
}

impl Fixture {
    fn run(&mut self, signer: usize, op: DecisionOp) -> Outcome {
        let key = &self.members[signer];
        self.nonce += 1;
        self.seq += 1;
        let body = RequestBody { client: key.public(), nonce: self.nonce, op: Operation::Decision(op) };
        let req = ClientRequest::sign(body, key, &self.cluster);
        wire::check_request(&req).expect("within the wire limits");
        match self.state.execute(self.seq, &req) {
            Execution::Executed(o) => o,
            other => panic!("not executed: {other:?}"),
        }
    }

    fn open(&mut self, id: &str, rule: DecisionRule, options: &[&str], voters: &[usize]) -> Outcome {
        let spec = DecisionSpec {
            id: id.into(),
            question: "which plan?".into(),
            options: options.iter().map(|o| o.to_string()).collect(),
            voters: voters.iter().map(|i| self.members[*i].public()).collect(),
            rule,
            weighted: false,
            deadline_ms: 60_000,
        };
        self.run(0, DecisionOp::Open(Box::new(spec)))
    }

    fn vote(&mut self, voter: usize, id: &str, ballot: Ballot) -> Outcome {
        self.run(voter, DecisionOp::vote(id, ballot, format!("reason of {voter}")))
    }

    fn outcome(&self, id: &str) -> &phalanx_app::decisions::DecisionOutcome {
        let d = self.state.app.decisions.get(id).expect("the decision is held");
        d.outcome.as_ref().expect("the decision closed")
    }
}

fn option(o: &str) -> Ballot {
    Ballot::Option(o.into())
}

const ALL: [usize; 7] = [0, 1, 2, 3, 4, 5, 6];

#[test]
fn a_majority_decides_and_the_dissent_abstentions_and_late_ballots_stay_on_record() {
    let mut f = fixture();
    assert_eq!(f.open("plan", DecisionRule::Majority, &["a", "b"], &ALL), Outcome::Applied);
    assert_eq!(f.vote(1, "plan", option("a")), Outcome::Applied);
    assert_eq!(f.vote(2, "plan", option("b")), Outcome::Applied);
    assert_eq!(f.vote(3, "plan", Ballot::Abstain), Outcome::Applied);
    assert_eq!(f.vote(4, "plan", option("a")), Outcome::Applied);
    assert_eq!(f.vote(5, "plan", option("a")), Outcome::Applied);
    assert!(f.state.app.decisions.get("plan").unwrap().outcome.is_none(), "3 of 7 is no majority");
    assert_eq!(f.vote(6, "plan", option("a")), Outcome::Applied);
    let out = f.outcome("plan").clone();
    assert_eq!(out.winner.as_deref(), Some("a"));
    assert_eq!(out.reason, "rule met");
    assert_eq!(out.closed_by, Some((f.members[6].public(), f.nonce)));
    let tally: Vec<(&str, u32)> = out.tally.iter().map(|t| (t.choice.as_str(), t.voters)).collect();
    assert_eq!(tally, [("a", 4), ("abstain", 1), ("b", 1)]);
    let d = f.state.app.decisions.get("plan").unwrap();
    let (ballot, reason) = d.votes[&f.members[2].public()].ballot().unwrap();
    assert_eq!((ballot, reason), (&option("b"), "reason of 2"), "the dissent keeps its reason");
    // Voter 0 comes too late: refused, and kept as late.
    assert_eq!(f.vote(0, "plan", option("b")), Outcome::Rejected(RejectReason::DecisionClosed));
    let d = f.state.app.decisions.get("plan").unwrap();
    assert!(d.late.contains_key(&f.members[0].public()));
    assert_eq!(
        f.outcome("plan").tally.iter().map(|t| t.voters).sum::<u32>(),
        6,
        "a late ballot is not counted"
    );
}

#[test]
fn a_voter_who_votes_twice_differently_is_voided_caught_with_evidence_and_quarantined() {
    let mut f = fixture();
    f.open("plan", DecisionRule::TwoThirds, &["a", "b"], &ALL);
    assert_eq!(f.vote(3, "plan", option("a")), Outcome::Applied);
    assert_eq!(
        f.vote(3, "plan", option("a")),
        Outcome::Rejected(RejectReason::Duplicate),
        "the same ballot again"
    );
    assert_eq!(f.vote(3, "plan", option("b")), Outcome::Rejected(RejectReason::DoubleVote));
    assert_eq!(
        f.vote(3, "plan", option("a")),
        Outcome::Rejected(RejectReason::DoubleVote),
        "void stays void"
    );
    let d = f.state.app.decisions.get("plan").unwrap();
    let voter = f.members[3].public();
    assert!(!d.votes.contains_key(&voter) && d.equivocations.contains_key(&voter));
    let acc = &f.state.accountability;
    let entry = acc.log.iter().find(|e| e.fault_type == "double-vote").expect("logged");
    assert_eq!((entry.detected_agent.as_str(), entry.reported_by.as_str()), ("agent-3", "execution"));
    assert_eq!(entry.detection_method, "evidence");
    assert!(acc.is_quarantined(&voter), "a member proven to double-vote is quarantined");
    // The evidence stands on its own: the two signed ballots verify and conflict.
    let (a, b) = &d.equivocations[&voter];
    let ev = phalanx_core::evidence::Evidence::DoubleVote(a.clone(), b.clone());
    assert_eq!(ev.verify(&f.cluster, &[], false), Ok(()));
    let same = phalanx_core::evidence::Evidence::DoubleVote(a.clone(), a.clone());
    assert!(same.verify(&f.cluster, &[], false).is_err(), "one ballot twice proves nothing");
    // With its weight still counted in the whole, two thirds needs 5 of the 6 others.
    for v in [0, 1, 2, 4] {
        f.vote(v, "plan", option("a"));
    }
    assert!(f.state.app.decisions.get("plan").unwrap().outcome.is_none());
    f.vote(5, "plan", option("a"));
    assert_eq!(f.outcome("plan").winner.as_deref(), Some("a"));
}

#[test]
fn unanimity_closes_as_soon_as_it_cannot_be_reached() {
    let mut f = fixture();
    f.open("u", DecisionRule::Unanimous, &["yes", "no"], &[1, 2, 3]);
    f.vote(1, "u", option("yes"));
    f.vote(2, "u", option("no"));
    let out = f.outcome("u");
    assert_eq!((out.winner.as_deref(), out.reason.as_str()), (None, "rule can no longer be met"));
    f.open("v", DecisionRule::Unanimous, &["yes"], &[1, 2]);
    f.vote(1, "v", option("yes"));
    f.vote(2, "v", option("yes"));
    assert_eq!(f.outcome("v").winner.as_deref(), Some("yes"));
}

#[test]
fn the_deadline_closes_a_decision_in_replicated_time() {
    let mut f = fixture();
    f.state.begin_batch(1, 1_000);
    f.open("slow", DecisionRule::Majority, &["a", "b"], &ALL);
    f.vote(1, "slow", option("a"));
    f.state.begin_batch(f.seq + 1, 60_999);
    assert!(f.state.app.decisions.get("slow").unwrap().outcome.is_none(), "not yet due");
    f.state.begin_batch(f.seq + 2, 61_000);
    let out = f.outcome("slow");
    assert_eq!((out.winner.as_deref(), out.reason.as_str(), out.closed_by), (None, "deadline passed", None));
    assert_eq!(out.at_ms, 61_000);
}

#[test]
fn f_plus_one_matching_results_decide_and_a_wrong_result_stays_as_dissent() {
    let mut f = fixture();
    f.open("task", DecisionRule::MatchingResults { f: 2 }, &[], &[1, 2, 3, 4, 5]);
    let right = Ballot::Result { digest: digest(b"42"), location: "results/1".into() };
    let wrong = Ballot::Result { digest: digest(b"41"), location: "results/2".into() };
    f.vote(1, "task", right.clone());
    f.vote(2, "task", wrong);
    // The same result stored elsewhere still matches.
    f.vote(3, "task", Ballot::Result { digest: digest(b"42"), location: "elsewhere".into() });
    assert!(f.state.app.decisions.get("task").unwrap().outcome.is_none(), "2 matching is not f+1 = 3");
    f.vote(4, "task", right);
    let out = f.outcome("task");
    assert_eq!(out.winner, Some(format!("result:{}", digest(b"42").to_hex())));
    assert_eq!(out.tally.len(), 2, "the wrong result is in the tally: {:?}", out.tally);
}

#[test]
fn bad_input_is_refused_with_a_reason_and_changes_nothing() {
    let mut f = fixture();
    let r = |x| Outcome::Rejected(x);
    assert_eq!(f.vote(1, "none", option("a")), r(RejectReason::UnknownDecision));
    assert_eq!(
        f.open("d", DecisionRule::Majority, &[], &ALL),
        r(RejectReason::InvalidDecision),
        "no options"
    );
    assert_eq!(
        f.open("d", DecisionRule::Majority, &["a"], &[]),
        r(RejectReason::InvalidDecision),
        "no voters"
    );
    assert_eq!(f.open("d", DecisionRule::Majority, &["a", "a"], &ALL), r(RejectReason::InvalidDecision));
    assert_eq!(f.open("d", DecisionRule::Majority, &["a"], &[1, 1]), r(RejectReason::InvalidDecision));
    let matching = DecisionRule::MatchingResults { f: 1 };
    assert_eq!(
        f.open("d", matching, &["a"], &ALL),
        r(RejectReason::InvalidDecision),
        "results take no options"
    );
    let too_many_faults = DecisionRule::MatchingResults { f: 2 };
    assert_eq!(f.open("d", too_many_faults, &[], &[1, 2]), r(RejectReason::InvalidDecision), "f+1 > voters");
    assert!(f.state.app.decisions.by_id.is_empty() && f.state.app.decisions.bytes == 0);
    // A voter must be a client the cluster admits.
    let stranger = Keypair::from_seed([99; 32]).public();
    let spec = DecisionSpec {
        id: "d".into(),
        question: "q".into(),
        options: vec!["a".into()],
        voters: vec![stranger],
        rule: DecisionRule::Majority,
        weighted: false,
        deadline_ms: 1_000,
    };
    assert_eq!(f.run(0, DecisionOp::Open(Box::new(spec.clone()))), r(RejectReason::InvalidDecision));
    let forever =
        DecisionSpec { voters: vec![f.members[1].public()], deadline_ms: 31 * 24 * 3600 * 1000, ..spec };
    assert_eq!(
        f.run(0, DecisionOp::Open(Box::new(forever))),
        r(RejectReason::InvalidDecision),
        "over 30 days"
    );

    assert_eq!(f.open("d", DecisionRule::Majority, &["a", "b"], &[1, 2, 3]), Outcome::Applied);
    assert_eq!(f.open("d", DecisionRule::Majority, &["a", "b"], &[1, 2, 3]), r(RejectReason::Duplicate));
    assert_eq!(f.vote(4, "d", option("a")), r(RejectReason::NotVoter));
    assert_eq!(f.vote(1, "d", option("c")), r(RejectReason::InvalidBallot));
    let result = Ballot::Result { digest: digest(b"x"), location: String::new() };
    assert_eq!(f.vote(1, "d", result), r(RejectReason::InvalidBallot), "options are asked");
    assert!(f.state.app.decisions.get("d").unwrap().votes.is_empty());
}

#[test]
fn oversized_or_malformed_operations_never_reach_a_replica() {
    let key = Keypair::from_seed([1; 32]);
    let sign = |op: DecisionOp| {
        let body = RequestBody { client: key.public(), nonce: 1, op: Operation::Decision(op) };
        wire::check_request(&ClientRequest::sign(body, &key, &digest(b"c")))
    };
    let vote = |id: &str, reason: usize| DecisionOp::vote(id, Ballot::Abstain, "r".repeat(reason));
    assert!(sign(vote("ok-id_1.2", 256)).is_ok());
    assert!(sign(vote("ok", 257)).unwrap_err().to_string().contains("reason longer than 256"));
    assert!(sign(vote("", 1)).is_err());
    assert!(sign(vote("has space", 1)).unwrap_err().to_string().contains("decision id"));
    assert!(sign(vote(&"x".repeat(65), 1)).is_err());
    let far = |n: usize| Ballot::Result { digest: digest(b"r"), location: "l".repeat(n) };
    assert!(sign(DecisionOp::vote("ok", far(128), "")).is_ok());
    assert!(
        sign(DecisionOp::vote("ok", far(129), ""))
            .unwrap_err()
            .to_string()
            .contains("location longer than 128")
    );
    assert!(sign(DecisionOp::vote("ok", Ballot::Option("o".repeat(129)), "")).is_err());
    let spec = |question: usize, voters: usize| {
        DecisionOp::Open(Box::new(DecisionSpec {
            id: "d".into(),
            question: "q".repeat(question),
            options: vec!["a".into()],
            voters: vec![key.public(); voters],
            rule: DecisionRule::Majority,
            weighted: false,
            deadline_ms: 1,
        }))
    };
    assert!(sign(spec(1024, 128)).is_ok());
    assert!(sign(spec(1025, 1)).unwrap_err().to_string().contains("question"));
    assert!(sign(spec(1, 129)).unwrap_err().to_string().contains("voters"));
}

#[test]
fn weights_come_from_the_committed_record() {
    let mut f = fixture();
    // Voter 3 double-votes on one decision and is quarantined: in a weighted decision opened
    // afterwards it weighs nothing.
    f.open("first", DecisionRule::Majority, &["a", "b"], &ALL);
    f.vote(3, "first", option("a"));
    f.vote(3, "first", option("b"));
    let spec = DecisionSpec {
        id: "weighted".into(),
        question: "q".into(),
        options: vec!["a".into(), "b".into()],
        voters: vec![f.members[1].public(), f.members[2].public(), f.members[3].public()],
        rule: DecisionRule::Majority,
        weighted: true,
        deadline_ms: 1_000,
    };
    assert_eq!(f.run(0, DecisionOp::Open(Box::new(spec))), Outcome::Applied);
    assert_eq!(f.state.app.decisions.get("weighted").unwrap().weights, [FULL_WEIGHT, FULL_WEIGHT, 0]);
    // Two clean voters of three: one of them is not a majority of the weight, both are.
    f.vote(1, "weighted", option("b"));
    assert!(f.state.app.decisions.get("weighted").unwrap().outcome.is_none());
    f.vote(2, "weighted", option("b"));
    assert_eq!(f.outcome("weighted").winner.as_deref(), Some("b"));
}

#[test]
fn closed_decisions_are_forgotten_oldest_first_and_space_is_bounded() {
    let mut f = fixture();
    for i in 0..KEPT_CLOSED + 3 {
        let id = format!("d{i}");
        assert_eq!(f.open(&id, DecisionRule::Unanimous, &["a"], &[1]), Outcome::Applied);
        f.vote(1, &id, option("a"));
    }
    let d = &f.state.app.decisions;
    assert_eq!(d.closed.len(), KEPT_CLOSED);
    assert!(d.get("d0").is_none() && d.get("d2").is_none() && d.get("d3").is_some());
    let held: u64 = d.by_id.values().map(|x| x.charged).sum();
    assert_eq!(d.bytes, held, "the charge is what the decisions held hold");
    assert!(d.bytes <= wire::limits::MAX_DECISION_BYTES);
    // Open decisions reserve their worst case; closed ones are forgotten to make room, and
    // once only open ones are left, the next is refused.
    let mut refused = false;
    for i in 0..200 {
        let spec = DecisionSpec {
            id: format!("big{i}"),
            question: "q".repeat(1024),
            options: vec!["a".into()],
            voters: f.members.iter().map(|k| k.public()).collect(),
            rule: DecisionRule::Majority,
            weighted: false,
            deadline_ms: 1_000,
        };
        match f.run(0, DecisionOp::Open(Box::new(spec))) {
            Outcome::Applied => {}
            Outcome::Rejected(RejectReason::DecisionsFull) => refused = true,
            other => panic!("{other:?}"),
        }
        assert!(f.state.app.decisions.bytes <= wire::limits::MAX_DECISION_BYTES);
    }
    assert!(refused, "the budget never ran out");
    assert!(f.state.app.decisions.closed.is_empty(), "refused while closed decisions could make room");
    // A snapshot with decisions restores to the same digest.
    let restored = State::restore(&f.state.snapshot()).unwrap();
    assert_eq!(restored.digest(), f.state.digest());
}
