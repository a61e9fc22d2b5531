//! Decisions the agents vote on.
//!
//! An admitted agent (or the operator) opens a decision: a question, its options (or none, for
//! free-form results compared by digest), the eligible voters by key, a rule and a deadline in
//! replicated time. Each voter sends one signed ballot. The decision closes, identically on
//! every replica, at the batch where its rule is met, where it can no longer be met, or where
//! the replicated clock passes the deadline; the outcome keeps the tally, every ballot with its
//! reason (so the dissent stays on record), the abstentions, the late ballots and the voters
//! caught voting twice.
//!
//! A voter that signs two different ballots for one decision has its ballots voided and the
//! two signed requests become evidence (`Evidence::DoubleVote`), committed to the detection
//! log by the same batch: a member is quarantined for it like for any other proven fault.
//!
//! With `weighted`, each voter's weight is fixed when the decision opens from its committed
//! record: 0 while quarantined, else 1000 / (1 + evidence and accusations committed against it).

use phalanx_core::accountability::Accountability;
use phalanx_core::evidence::Evidence;
use phalanx_core::wire::{
    Ballot, ClientRequest, DecisionOp, DecisionRule, DecisionSpec, Operation, RejectReason, Seq, limits,
    to_bytes,
};
use phalanx_crypto::PublicKey;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Closed decisions kept for queries; the oldest is forgotten first.
pub const KEPT_CLOSED: usize = 256;
/// The longest a decision may stay open, in replicated time (30 days).
pub const MAX_DEADLINE_MS: u64 = 30 * 24 * 3600 * 1000;
/// What one voter can cost a decision at most: two signed ballots of the largest size (about
/// 620 bytes each, with the seq and time they executed at). A voter holds one counted ballot,
/// or one late one, or two conflicting ones; never more.
const PER_VOTER_BYTES: u64 = 2 * 700;
/// The weight of a voter with a clean record.
pub const FULL_WEIGHT: u64 = 1000;

/// Every decision the state holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decisions {
    pub by_id: BTreeMap<String, Decision>,
    /// Closed decisions, oldest first.
    pub closed: VecDeque<String>,
    /// Bytes charged against `limits::MAX_DECISION_BYTES`: what open decisions could grow
    /// to, and what closed ones hold.
    pub bytes: u64,
    pub opened_total: u64,
    /// Evidence found while executing, for consensus to commit (not part of the encoding).
    #[serde(skip)]
    pub found: Vec<Evidence>,
}

/// One decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub spec: DecisionSpec,
    pub opened_by: PublicKey,
    pub opened_seq: Seq,
    pub opened_ms: u64,
    /// The decision closes once the replicated clock reaches this.
    pub closes_ms: u64,
    /// Each voter's weight (in `spec.voters` order), fixed at opening.
    pub weights: Vec<u64>,
    /// Counted ballots by voter, each the signed request that cast it.
    pub votes: BTreeMap<PublicKey, Cast>,
    /// Voters caught casting two different ballots: both signed requests. Their ballots are void.
    pub equivocations: BTreeMap<PublicKey, (ClientRequest, ClientRequest)>,
    /// Ballots that arrived after the decision closed (the first per voter).
    pub late: BTreeMap<PublicKey, Cast>,
    /// Bytes this decision is charged.
    pub charged: u64,
    pub outcome: Option<DecisionOutcome>,
}

/// A ballot as cast: the signed request, and where it executed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cast {
    pub request: ClientRequest,
    pub seq: Seq,
    pub at_ms: u64,
}

impl Cast {
    /// The ballot and reason the request carries.
    pub fn ballot(&self) -> Option<(&Ballot, &str)> {
        match &self.request.body.op {
            Operation::Decision(DecisionOp::Vote(v)) => Some((&v.ballot, &v.reason)),
            _ => None,
        }
    }
}

/// How a decision closed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionOutcome {
    /// The winning choice (an option, or `result:<digest>`); `None`: no decision.
    pub winner: Option<String>,
    /// Why it closed: `rule met`, `rule can no longer be met` or `deadline passed`.
    pub reason: String,
    /// Counted ballots per choice (abstentions under `abstain`), most weight first.
    pub tally: Vec<TallyLine>,
    /// The batch that closed it, and the replicated clock then.
    pub seq: Seq,
    pub at_ms: u64,
    /// The ballot whose execution closed it (client, nonce); `None` when the deadline did.
    pub closed_by: Option<(PublicKey, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TallyLine {
    pub choice: String,
    pub voters: u32,
    pub weight: u64,
}

/// What executing an operation needs to know.
pub struct Call<'a> {
    pub seq: Seq,
    pub clock_ms: u64,
    pub request: &'a ClientRequest,
    pub accountability: &'a Accountability,
}

impl Decision {
    fn weight_of(&self, voter: &PublicKey) -> u64 {
        let i = self.spec.voters.iter().position(|v| v == voter);
        i.and_then(|i| self.weights.get(i)).copied().unwrap_or(0)
    }

    fn total_weight(&self) -> u64 {
        self.weights.iter().sum()
    }

    /// Counted weight and voters per choice (`None`: abstentions).
    fn counts(&self) -> BTreeMap<Option<String>, (u32, u64)> {
        let mut counts: BTreeMap<Option<String>, (u32, u64)> = BTreeMap::new();
        for (voter, cast) in &self.votes {
            let Some((ballot, _)) = cast.ballot() else { continue };
            let c = counts.entry(ballot.choice()).or_default();
            c.0 += 1;
            c.1 += self.weight_of(voter);
        }
        counts
    }

    /// Whether `(voters, weight)` for one choice meets the rule.
    fn meets(&self, voters: u32, weight: u64) -> bool {
        let total = self.total_weight();
        match self.spec.rule {
            DecisionRule::Majority => weight * 2 > total,
            DecisionRule::TwoThirds => weight * 3 >= total * 2,
            DecisionRule::Unanimous => total > 0 && weight == total,
            DecisionRule::MatchingResults { f } => voters > f,
        }
    }

    /// The winner if the rule is met, and whether it still can be.
    fn evaluate(&self) -> (Option<String>, bool) {
        let counts = self.counts();
        let winner = counts
            .iter()
            .filter_map(|(c, n)| c.as_ref().map(|c| (c, n)))
            .find(|(_, (voters, weight))| self.meets(*voters, *weight))
            .map(|(c, _)| c.clone());
        if winner.is_some() {
            return (winner, true);
        }
        // The voters who have not spoken yet (a voided voter has).
        let silent: Vec<&PublicKey> = (self.spec.voters.iter())
            .filter(|v| !self.votes.contains_key(*v) && !self.equivocations.contains_key(*v))
            .collect();
        let rest_voters = silent.len() as u32;
        let rest_weight: u64 = silent.iter().map(|v| self.weight_of(v)).sum();
        let best = counts.iter().filter(|(c, _)| c.is_some()).map(|(_, n)| *n);
        // A choice nobody made yet could still win with every silent voter.
        let reachable = best.chain([(0, 0)]).any(|(v, w)| self.meets(v + rest_voters, w + rest_weight));
        (None, reachable)
    }

    fn close(
        &mut self,
        winner: Option<String>,
        reason: &str,
        seq: Seq,
        at_ms: u64,
        by: Option<(PublicKey, u64)>,
    ) {
        let mut tally: Vec<TallyLine> = self
            .counts()
            .into_iter()
            .map(|(c, (voters, weight))| TallyLine {
                choice: c.unwrap_or_else(|| "abstain".into()),
                voters,
                weight,
            })
            .collect();
        tally.sort_by(|a, b| {
            b.weight.cmp(&a.weight).then(b.voters.cmp(&a.voters)).then(a.choice.cmp(&b.choice))
        });
        self.outcome =
            Some(DecisionOutcome { winner, reason: reason.into(), tally, seq, at_ms, closed_by: by });
    }
}

impl Decisions {
    /// Executes a decision operation.
    /// `voters_admitted`: whether every voter an `Open` names is an admitted client.
    pub fn execute(
        &mut self,
        call: &Call<'_>,
        op: &DecisionOp,
        voters_admitted: bool,
    ) -> Result<(), RejectReason> {
        match op {
            DecisionOp::Open(spec) => self.open(call, spec, voters_admitted),
            DecisionOp::Vote(v) => self.vote(call, &v.id, &v.ballot),
        }
    }

    fn open(
        &mut self,
        call: &Call<'_>,
        spec: &DecisionSpec,
        voters_admitted: bool,
    ) -> Result<(), RejectReason> {
        if self.by_id.contains_key(&spec.id) {
            return Err(RejectReason::Duplicate);
        }
        let distinct_voters: BTreeSet<&PublicKey> = spec.voters.iter().collect();
        let distinct_options: BTreeSet<&String> = spec.options.iter().collect();
        let options_fit = match spec.rule {
            DecisionRule::MatchingResults { f } => {
                spec.options.is_empty() && (f as usize) < spec.voters.len()
            }
            _ => !spec.options.is_empty(),
        };
        if spec.voters.is_empty()
            || distinct_voters.len() != spec.voters.len()
            || distinct_options.len() != spec.options.len()
            || !options_fit
            || spec.deadline_ms == 0
            || spec.deadline_ms > MAX_DEADLINE_MS
            || !voters_admitted
        {
            return Err(RejectReason::InvalidDecision);
        }
        let reserve = to_bytes(spec).len() as u64 + spec.voters.len() as u64 * PER_VOTER_BYTES;
        while self.bytes + reserve > limits::MAX_DECISION_BYTES && self.forget_oldest_closed() {}
        if self.bytes + reserve > limits::MAX_DECISION_BYTES {
            return Err(RejectReason::DecisionsFull);
        }
        let weights = spec
            .voters
            .iter()
            .map(|v| if spec.weighted { weight(call.accountability, v) } else { 1 })
            .collect();
        self.bytes += reserve;
        self.opened_total += 1;
        let decision = Decision {
            spec: spec.clone(),
            opened_by: call.request.body.client,
            opened_seq: call.seq,
            opened_ms: call.clock_ms,
            closes_ms: call.clock_ms.saturating_add(spec.deadline_ms),
            weights,
            votes: BTreeMap::new(),
            equivocations: BTreeMap::new(),
            late: BTreeMap::new(),
            charged: reserve,
            outcome: None,
        };
        self.by_id.insert(spec.id.clone(), decision);
        Ok(())
    }

    fn vote(&mut self, call: &Call<'_>, id: &str, ballot: &Ballot) -> Result<(), RejectReason> {
        let voter = call.request.body.client;
        let Some(d) = self.by_id.get_mut(id) else { return Err(RejectReason::UnknownDecision) };
        if !d.spec.voters.contains(&voter) {
            return Err(RejectReason::NotVoter);
        }
        let valid = match ballot {
            Ballot::Option(o) => d.spec.options.contains(o),
            Ballot::Result { .. } => d.spec.options.is_empty(),
            Ballot::Abstain => true,
        };
        if !valid {
            return Err(RejectReason::InvalidBallot);
        }
        if d.equivocations.contains_key(&voter) {
            return Err(RejectReason::DoubleVote);
        }
        let cast = Cast { request: call.request.clone(), seq: call.seq, at_ms: call.clock_ms };
        if let Some(first) = d.votes.get(&voter) {
            let same = first.ballot().is_some_and(|(b, _)| b.choice() == ballot.choice());
            if same {
                return Err(RejectReason::Duplicate);
            }
            // Two different signed ballots: both become evidence, and neither counts (unless
            // the decision is closed: its outcome is history).
            self.found.push(Evidence::DoubleVote(first.request.clone(), call.request.clone()));
            if d.outcome.is_some() {
                return Err(RejectReason::DoubleVote);
            }
            if let Some(first) = d.votes.remove(&voter) {
                d.equivocations.insert(voter, (first.request, call.request.clone()));
            }
        } else if d.outcome.is_some() {
            d.late.entry(voter).or_insert(cast);
            return Err(RejectReason::DecisionClosed);
        } else {
            d.votes.insert(voter, cast);
        }
        let by = Some((voter, call.request.body.nonce));
        match d.evaluate() {
            (Some(winner), _) => d.close(Some(winner), "rule met", call.seq, call.clock_ms, by),
            (None, false) => d.close(None, "rule can no longer be met", call.seq, call.clock_ms, by),
            (None, true) => {}
        }
        let voided = d.equivocations.contains_key(&voter);
        self.settle(id);
        if voided { Err(RejectReason::DoubleVote) } else { Ok(()) }
    }

    /// The replicated clock moved: close what is due.
    pub fn close_expired(&mut self, seq: Seq, clock_ms: u64) {
        let due: Vec<String> = (self.by_id.iter())
            .filter(|(_, d)| d.outcome.is_none() && d.closes_ms <= clock_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            if let Some(d) = self.by_id.get_mut(&id) {
                d.close(None, "deadline passed", seq, clock_ms, None);
            }
            self.settle(&id);
        }
    }

    /// A decision that just closed is charged what it holds rather than what it could grow to,
    /// and queued to be forgotten after `KEPT_CLOSED` newer ones.
    fn settle(&mut self, id: &str) {
        let Some(d) = self.by_id.get_mut(id) else { return };
        if d.outcome.is_none() || self.closed.iter().any(|c| c == id) {
            return;
        }
        let held = to_bytes(&*d).len() as u64;
        // Late ballots may still come from the voters who never spoke: one each.
        let silent = (d.spec.voters.iter())
            .filter(|v| !d.votes.contains_key(*v) && !d.equivocations.contains_key(*v))
            .count() as u64;
        let late_room = silent * PER_VOTER_BYTES / 2;
        let charged = (held + late_room).min(d.charged);
        self.bytes = self.bytes - d.charged + charged;
        d.charged = charged;
        self.closed.push_back(id.to_string());
        while self.closed.len() > KEPT_CLOSED {
            self.forget_oldest_closed();
        }
    }

    fn forget_oldest_closed(&mut self) -> bool {
        let Some(id) = self.closed.pop_front() else { return false };
        if let Some(d) = self.by_id.remove(&id) {
            self.bytes -= d.charged;
        }
        true
    }

    /// A decision by id.
    pub fn get(&self, id: &str) -> Option<&Decision> {
        self.by_id.get(id)
    }
}

/// A voter's weight from its committed record.
pub fn weight(acc: &Accountability, voter: &PublicKey) -> u64 {
    if acc.is_quarantined(voter) {
        return 0;
    }
    let record = acc.members.get(voter);
    let against = record.map_or(0, |r| r.evidence_against + r.accusations_against.values().sum::<u64>());
    FULL_WEIGHT / (1 + against)
}
