//! Operations, signed requests and replies as JSON: what the API accepts and answers, and
//! what the client crate sends.

use crate::runtime::SharedReply;
use phalanx_core::wire::{
    self, Ballot, ClientRequest, DecisionOp, DecisionRule, DecisionSpec, FederatedOp, Operation,
    OperatorAction, Outcome, RequestBody, RoundSpec,
};
use phalanx_crypto::{Digest, PublicKey, Signature};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// An operation as JSON: `{"type": "transfer", "from": "alice", "to": "bob", "amount": 10}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OpJson {
    Transfer {
        from: String,
        to: String,
        amount: u64,
    },
    MemoryStore {
        namespace: String,
        key: String,
        value: String,
        ttl_ms: Option<u64>,
    },
    /// A member's report (evidence or accusation), its canonical encoding in hex.
    Report {
        encoded: String,
    },
    /// Operator: replicas still in `view` move to the next one.
    ForceViewChange {
        view: u64,
    },
    /// Operator: end a member's quarantine.
    LiftQuarantine {
        member: String,
    },
    /// Operator: any client may write any key of this memory namespace.
    ShareNamespace {
        namespace: String,
    },
    /// Operator, testing clusters only: make an agent misbehave (`fault: null` clears it).
    InjectFault {
        agent: String,
        fault: Option<String>,
        probability_permille: u32,
    },
    /// Operator: replace members; takes effect at the next checkpoint boundary as a new epoch.
    UpdateQuorum {
        remove: Vec<String>,
        add: Vec<JoinerJson>,
        f: Option<u32>,
    },
    /// Testing clusters only: a benchmark payload (hex), ordered but unsigned and not executed.
    Opaque {
        payload: String,
    },
    /// The operator: open a federated round (participants' public keys in hex).
    FederatedOpen {
        model: String,
        round: u64,
        rule: String,
        pre: Vec<String>,
        params: Vec<String>,
        f: u32,
        dim: u32,
        participants: Vec<String>,
        quorum: u32,
        timeout_ms: u64,
        seed: u64,
    },
    /// A participant: coordinates `offset ..` of its update, little-endian f64 bytes in hex.
    FederatedSubmit {
        model: String,
        round: u64,
        offset: u32,
        values: String,
    },
    /// The operator: close a federated round now.
    FederatedClose {
        model: String,
        round: u64,
    },
    /// The operator: forget a model (open round, latest aggregate, results) and free its space.
    FederatedDelete {
        model: String,
    },
    /// Open a decision (voters' public keys in hex; no options for free-form results).
    DecisionOpen {
        id: String,
        question: String,
        options: Vec<String>,
        voters: Vec<String>,
        /// `majority`, `two-thirds`, `unanimous` or `f+1-matching` (which needs `f`).
        rule: String,
        f: Option<u32>,
        weighted: bool,
        deadline_ms: u64,
    },
    /// A ballot: `{"option": "a"}`, `{"result": {"digest": "<hex>", "location": "…"}}` or
    /// `"abstain"`.
    DecisionVote {
        id: String,
        ballot: BallotJson,
        reason: String,
    },
}

/// A ballot as JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum BallotJson {
    Option(String),
    Result { digest: String, location: String },
    Abstain,
}

impl BallotJson {
    pub fn from_ballot(b: &Ballot) -> Self {
        match b {
            Ballot::Option(o) => BallotJson::Option(o.clone()),
            Ballot::Result { digest, location } => {
                BallotJson::Result { digest: digest.to_hex(), location: location.clone() }
            }
            Ballot::Abstain => BallotJson::Abstain,
        }
    }

    pub fn to_ballot(&self) -> Result<Ballot, String> {
        Ok(match self {
            BallotJson::Option(o) => Ballot::Option(o.clone()),
            BallotJson::Result { digest, location } => {
                let d: [u8; 32] = unhex(digest)
                    .and_then(|b| b.try_into().ok())
                    .ok_or("ballot.result.digest: expected 64 hex characters (a BLAKE3 digest)")?;
                Ballot::Result { digest: Digest(d), location: location.clone() }
            }
            BallotJson::Abstain => Ballot::Abstain,
        })
    }
}

/// An agent to admit, with its public key (hex) and where it listens.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinerJson {
    pub name: String,
    pub public_key: String,
    pub replica_addr: String,
    pub http_addr: String,
}

impl OpJson {
    pub fn from_op(op: &Operation) -> Self {
        match op.clone() {
            Operation::Transfer { from, to, amount } => OpJson::Transfer { from, to, amount },
            Operation::MemoryStore { namespace, key, value, ttl_ms } => {
                OpJson::MemoryStore { namespace, key, value, ttl_ms }
            }
            Operation::Report(bytes) => OpJson::Report { encoded: hex::encode(&bytes) },
            Operation::Operator(OperatorAction::ForceViewChange { view }) => OpJson::ForceViewChange { view },
            Operation::Operator(OperatorAction::LiftQuarantine { member }) => {
                OpJson::LiftQuarantine { member }
            }
            Operation::Operator(OperatorAction::ShareNamespace { namespace }) => {
                OpJson::ShareNamespace { namespace }
            }
            Operation::Operator(OperatorAction::InjectFault { agent, fault, probability_permille }) => {
                OpJson::InjectFault { agent, fault, probability_permille }
            }
            Operation::Operator(OperatorAction::UpdateQuorum { remove, add, f }) => OpJson::UpdateQuorum {
                remove,
                add: add
                    .into_iter()
                    .map(|j| JoinerJson {
                        name: j.name,
                        public_key: j.key.to_hex(),
                        replica_addr: j.replica_addr,
                        http_addr: j.http_addr,
                    })
                    .collect(),
                f,
            },
            Operation::Opaque(payload) => OpJson::Opaque { payload: hex::encode(&payload) },
            Operation::Federated(FederatedOp::Open(s)) => OpJson::FederatedOpen {
                model: s.model,
                round: s.round,
                rule: s.rule,
                pre: s.pre,
                params: s.params,
                f: s.f,
                dim: s.dim,
                participants: s.participants.iter().map(PublicKey::to_hex).collect(),
                quorum: s.quorum,
                timeout_ms: s.timeout_ms,
                seed: s.seed,
            },
            Operation::Federated(FederatedOp::Submit { model, round, offset, values }) => {
                OpJson::FederatedSubmit { model, round, offset, values: hex::encode(&values) }
            }
            Operation::Federated(FederatedOp::Close { model, round }) => {
                OpJson::FederatedClose { model, round }
            }
            Operation::Federated(FederatedOp::Delete { model }) => OpJson::FederatedDelete { model },
            Operation::Decision(DecisionOp::Open(s)) => OpJson::DecisionOpen {
                id: s.id,
                question: s.question,
                options: s.options,
                voters: s.voters.iter().map(PublicKey::to_hex).collect(),
                rule: s.rule.name().into(),
                f: s.rule.f(),
                weighted: s.weighted,
                deadline_ms: s.deadline_ms,
            },
            Operation::Decision(DecisionOp::Vote(v)) => OpJson::DecisionVote {
                id: v.id,
                ballot: BallotJson::from_ballot(&v.ballot),
                reason: v.reason,
            },
        }
    }

    pub fn to_op(&self) -> Result<Operation, String> {
        Ok(match self.clone() {
            OpJson::Transfer { from, to, amount } => Operation::Transfer { from, to, amount },
            OpJson::MemoryStore { namespace, key, value, ttl_ms } => {
                Operation::MemoryStore { namespace, key, value, ttl_ms }
            }
            OpJson::Report { encoded } => {
                Operation::Report(unhex(&encoded).ok_or("op.encoded: expected hex")?)
            }
            OpJson::ForceViewChange { view } => Operation::Operator(OperatorAction::ForceViewChange { view }),
            OpJson::ShareNamespace { namespace } => {
                Operation::Operator(OperatorAction::ShareNamespace { namespace })
            }
            OpJson::LiftQuarantine { member } => {
                Operation::Operator(OperatorAction::LiftQuarantine { member })
            }
            OpJson::InjectFault { agent, fault, probability_permille } => {
                Operation::Operator(OperatorAction::InjectFault { agent, fault, probability_permille })
            }
            OpJson::UpdateQuorum { remove, add, f } => {
                let mut joiners = Vec::with_capacity(add.len());
                for j in add {
                    let key = PublicKey::from_hex(&j.public_key)
                        .map_err(|e| format!("op.add.{}.public_key: {e}", j.name))?;
                    joiners.push(phalanx_core::wire::Joiner {
                        name: j.name,
                        key,
                        replica_addr: j.replica_addr,
                        http_addr: j.http_addr,
                    });
                }
                Operation::Operator(OperatorAction::UpdateQuorum { remove, add: joiners, f })
            }
            OpJson::Opaque { payload } => {
                Operation::Opaque(unhex(&payload).ok_or("op.payload: expected hex")?)
            }
            OpJson::FederatedOpen {
                model,
                round,
                rule,
                pre,
                params,
                f,
                dim,
                participants,
                quorum,
                timeout_ms,
                seed,
            } => {
                let participants = (participants.iter().enumerate())
                    .map(|(i, k)| PublicKey::from_hex(k).map_err(|e| format!("op.participants.{i}: {e}")))
                    .collect::<Result<Vec<_>, _>>()?;
                let spec = RoundSpec {
                    model,
                    round,
                    rule,
                    pre,
                    params,
                    f,
                    dim,
                    participants,
                    quorum,
                    timeout_ms,
                    seed,
                };
                Operation::Federated(FederatedOp::Open(Box::new(spec)))
            }
            OpJson::FederatedSubmit { model, round, offset, values } => {
                let values = unhex(&values).ok_or("op.values: expected hex (little-endian f64 bytes)")?;
                Operation::Federated(FederatedOp::Submit { model, round, offset, values })
            }
            OpJson::FederatedClose { model, round } => {
                Operation::Federated(FederatedOp::Close { model, round })
            }
            OpJson::FederatedDelete { model } => Operation::Federated(FederatedOp::Delete { model }),
            OpJson::DecisionOpen { id, question, options, voters, rule, f, weighted, deadline_ms } => {
                let voters = (voters.iter().enumerate())
                    .map(|(i, k)| PublicKey::from_hex(k).map_err(|e| format!("op.voters.{i}: {e}")))
                    .collect::<Result<Vec<_>, _>>()?;
                let rule = DecisionRule::parse(&rule, f).map_err(|e| format!("op.rule: {e}"))?;
                let spec = DecisionSpec { id, question, options, voters, rule, weighted, deadline_ms };
                Operation::Decision(DecisionOp::Open(Box::new(spec)))
            }
            OpJson::DecisionVote { id, ballot, reason } => {
                let ballot = ballot.to_ballot().map_err(|e| format!("op.{e}"))?;
                Operation::Decision(DecisionOp::vote(id, ballot, reason))
            }
        })
    }
}

/// A signed client request as JSON; keys and signatures in hex.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestJson {
    pub client: String,
    pub nonce: u64,
    pub op: OpJson,
    pub signature: String,
}

impl RequestJson {
    pub fn from_request(r: &ClientRequest) -> Self {
        RequestJson {
            client: r.body.client.to_hex(),
            nonce: r.body.nonce,
            op: OpJson::from_op(&r.body.op),
            signature: hex::encode(r.sig.to_bytes()),
        }
    }

    pub fn to_request(&self) -> Result<ClientRequest, String> {
        let client = PublicKey::from_hex(&self.client).map_err(|e| format!("client: {e}"))?;
        let sig = unhex(&self.signature).ok_or("signature: expected 128 hex characters")?;
        let sig: [u8; 64] = sig.try_into().map_err(|_| "signature: expected 64 bytes")?;
        let body = RequestBody { client, nonce: self.nonce, op: self.op.to_op()? };
        let req = ClientRequest { body, sig: Signature::from_bytes(&sig) };
        wire::check_request(&req).map_err(|e| e.to_string())?;
        Ok(req)
    }
}

/// Hex text to bytes: `None` for odd lengths and anything but hex digits.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    hex::decode(s).ok()
}

pub fn outcome_str(o: &Outcome) -> String {
    match o {
        Outcome::Applied => "applied".into(),
        Outcome::Rejected(r) => format!("rejected:{}", r.as_str()),
    }
}

pub(super) fn reply_json(id: u32, client: &PublicKey, nonce: u64, reply: &SharedReply) -> Value {
    // (With a client that reused a nonce, the entry may be for its other operation; the signed
    // reply lets the client tell, and the CLI checks the operation digest.)
    let entry = reply.body.entries.iter().find(|e| &e.client == client && e.nonce == nonce);
    json!({
        "replica": id,
        "status": "executed",
        "seq": reply.body.seq,
        "view": reply.body.view,
        "outcome": entry.map(|e| outcome_str(&e.outcome)),
        "signed_reply": hex::encode(wire::to_bytes(reply.as_ref())),
    })
}
