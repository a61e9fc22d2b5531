//! The JSON views of decisions: `GET /v1/decisions` and `GET /v1/decisions/{id}`. The replica
//! task copies what a view needs ([`copy`], [`summaries`]); the JSON is built on the API's side
//! ([`render`]), so a client polling the API cannot stall consensus with serialisation.

use phalanx_app::State;
use phalanx_app::decisions::{Cast, Decision};
use phalanx_core::wire::{self, CommitCert};
use phalanx_crypto::PublicKey;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// One decision as the replica task copied it, with the names of the keys it mentions and the
/// certificate of the batch that closed it (if this node executed that batch).
pub struct Copy {
    pub decision: Decision,
    pub names: BTreeMap<PublicKey, String>,
    pub proof: Option<CommitCert>,
    /// This node's last executed seq when it copied the decision.
    pub executed: u64,
}

/// A key's name: the member's, else the first account it owns, else `client:<first hex>`.
pub fn name_of(state: &State, key: &PublicKey) -> String {
    if let Some((_, m)) = state.accountability.member(key) {
        return m.name.clone();
    }
    if let Some((name, _)) = state.app.accounts.iter().find(|(_, a)| a.owner == *key) {
        return name.clone();
    }
    if state.accountability.operator == Some(*key) {
        return "operator".into();
    }
    format!("client:{}", &key.to_hex()[..16])
}

/// Copies decision `id` with the names of everyone it mentions.
pub fn copy(state: &State, id: &str, executed: u64) -> Option<Copy> {
    let d = state.app.decisions.get(id)?.clone();
    let mut names = BTreeMap::new();
    for k in d.spec.voters.iter().chain([&d.opened_by]) {
        names.insert(*k, name_of(state, k));
    }
    Some(Copy { decision: d, names, proof: None, executed })
}

fn status(d: &Decision) -> &'static str {
    match &d.outcome {
        None => "open",
        Some(o) if o.winner.is_some() => "decided",
        Some(_) => "no-decision",
    }
}

/// One line per decision the state holds, open ones first.
pub fn summaries(state: &State) -> Vec<Value> {
    let mut all: Vec<&Decision> = state.app.decisions.by_id.values().collect();
    all.sort_by_key(|d| (d.outcome.is_some(), std::cmp::Reverse(d.opened_seq)));
    all.iter()
        .map(|d| {
            json!({
                "id": d.spec.id,
                "question": d.spec.question,
                "rule": d.spec.rule.name(),
                "status": status(d),
                "winner": d.outcome.as_ref().and_then(|o| o.winner.clone()),
                "ballots": d.votes.len(),
                "voters": d.spec.voters.len(),
                "opened_seq": d.opened_seq,
                "closed_seq": d.outcome.as_ref().map(|o| o.seq),
                "closes_ms": d.closes_ms,
            })
        })
        .collect()
}

fn ballot_json(names: &BTreeMap<PublicKey, String>, voter: &PublicKey, cast: &Cast) -> Value {
    let (choice, location, reason) = match cast.ballot() {
        Some((b, reason)) => {
            let location = match b {
                wire::Ballot::Result { location, .. } => Some(location.clone()),
                _ => None,
            };
            (b.label(), location, reason.to_string())
        }
        None => (String::new(), None, String::new()),
    };
    json!({
        "voter": names.get(voter).cloned().unwrap_or_else(|| voter.to_hex()),
        "key": voter.to_hex(),
        "choice": choice,
        "location": location,
        "reason": reason,
        "seq": cast.seq,
        "at_ms": cast.at_ms,
        "nonce": cast.request.body.nonce,
        "signed_request": hex::encode(wire::to_bytes(&cast.request)),
    })
}

/// The whole record: spec, ballots, outcome, dissent, abstentions, late ballots, double votes
/// with their evidence, and the proof; `encoded` is the record's canonical encoding, which
/// clients compare across f+1 agents.
pub fn render(c: &Copy) -> Value {
    let d = &c.decision;
    let name = |k: &PublicKey| c.names.get(k).cloned().unwrap_or_else(|| k.to_hex());
    let winner = d.outcome.as_ref().and_then(|o| o.winner.clone());
    let choice_of = |cast: &Cast| cast.ballot().and_then(|(b, _)| b.choice());
    let ballots: Vec<Value> = d.votes.iter().map(|(v, cast)| ballot_json(&c.names, v, cast)).collect();
    let dissent: Vec<Value> = match &winner {
        Some(w) => (d.votes.iter())
            .filter(|(_, cast)| choice_of(cast).is_some_and(|x| x != *w))
            .map(|(v, cast)| ballot_json(&c.names, v, cast))
            .collect(),
        None => Vec::new(),
    };
    let abstained: Vec<String> =
        d.votes.iter().filter(|(_, cast)| choice_of(cast).is_none()).map(|(v, _)| name(v)).collect();
    let silent: Vec<String> = (d.spec.voters.iter())
        .filter(|v| !d.votes.contains_key(*v) && !d.equivocations.contains_key(*v))
        .map(name)
        .collect();
    let double_votes: Vec<Value> = d
        .equivocations
        .iter()
        .map(|(v, (a, b))| {
            let label = |r: &wire::ClientRequest| match &r.body.op {
                wire::Operation::Decision(wire::DecisionOp::Vote(x)) => x.ballot.label(),
                _ => String::new(),
            };
            let ev = phalanx_core::evidence::Evidence::DoubleVote(a.clone(), b.clone());
            json!({
                "voter": name(v),
                "key": v.to_hex(),
                "first": label(a),
                "second": label(b),
                "evidence_id": ev.id().to_hex(),
                "evidence": hex::encode(wire::to_bytes(&ev)),
            })
        })
        .collect();
    let voters: Vec<Value> = (d.spec.voters.iter().zip(&d.weights))
        .map(|(v, w)| json!({ "agent": name(v), "key": v.to_hex(), "weight": w }))
        .collect();
    json!({
        "id": d.spec.id,
        "question": d.spec.question,
        "options": d.spec.options,
        "rule": d.spec.rule.name(),
        "f": d.spec.rule.f(),
        "weighted": d.spec.weighted,
        "voters": voters,
        "opened_by": name(&d.opened_by),
        "opened_seq": d.opened_seq,
        "opened_ms": d.opened_ms,
        "closes_ms": d.closes_ms,
        "status": status(d),
        "winner": winner,
        "outcome": d.outcome.as_ref().map(|o| json!({
            "winner": o.winner,
            "reason": o.reason,
            "tally": o.tally.iter().map(|t| json!({"choice": t.choice, "voters": t.voters, "weight": t.weight})).collect::<Vec<_>>(),
            "seq": o.seq,
            "at_ms": o.at_ms,
            "closed_by": o.closed_by.map(|(k, nonce)| json!({"voter": name(&k), "key": k.to_hex(), "nonce": nonce})),
        })),
        "ballots": ballots,
        "dissent": dissent,
        "abstained": abstained,
        "not_voted": silent,
        "late": d.late.iter().map(|(v, cast)| ballot_json(&c.names, v, cast)).collect::<Vec<_>>(),
        "double_votes": double_votes,
        "executed_seq": c.executed,
        "encoded": hex::encode(wire::to_bytes(d)),
        "proof": c.proof.as_ref().map(|cert| hex::encode(wire::to_bytes(cert))),
    })
}
