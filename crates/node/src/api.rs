//! The HTTP/JSON API of one node: clients submit signed transfers and read results; operators
//! read status, agents and health. Malformed JSON, oversized bodies and bad signatures get a 4xx
//! whose message names the problem.

use crate::runtime::{Command, Query, SharedReply};
use crate::transport::LastSeen;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use phalanx_core::consensus::ReplicaStatus;
use phalanx_core::wire::{
    self, ClientRequest, FederatedOp, Operation, OperatorAction, Outcome, RequestBody, RoundSpec,
};
use phalanx_crypto::{PublicKey, Signature};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Room for the largest single request: a 64 KiB federated update chunk, in hex.
pub const MAX_BODY: usize = 192 * 1024;
const SUBMIT_WAIT: Duration = Duration::from_secs(10);
/// A member not heard from for this long counts as unreachable.
const STALE: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct ApiState {
    pub commands: mpsc::Sender<Command>,
    /// Who the agents are (genesis and admitted joiners), kept current by the replica loop.
    pub directory: crate::directory::SharedDirectory,
    pub seen: LastSeen,
    pub cluster: phalanx_crypto::Digest,
    /// This agent's name (a standby joiner has no id yet).
    pub name: String,
    /// Signature verdicts shared with the replica: a request checked here is not checked again.
    pub cache: std::sync::Arc<phalanx_crypto::VerdictCache>,
    /// Secret seed of the batch verifier's coefficients (from the OS, once per process).
    pub rng_seed: [u8; 32],
    pub traffic: std::sync::Arc<crate::runtime::Traffic>,
    /// A testing cluster: unsigned opaque benchmark payloads are ordered.
    pub testing: bool,
}

/// Requests in one call to the batch endpoint, at most.
pub const MAX_SUBMIT_BATCH: usize = 4096;
/// Body of the batch endpoint, at most.
pub const MAX_BATCH_BODY: usize = 4 << 20;

/// The answer of `POST /v1/transactions/batch` (postcard): every distinct signed batch reply
/// covering the submitted requests that executed in time, and which did not.
#[derive(Debug, Serialize, Deserialize)]
pub struct BatchAnswer {
    pub replica: u32,
    pub replies: Vec<wire::Signed<wire::Reply>>,
    /// Indices (into the submitted list) not executed before the wait ended.
    pub pending: Vec<u32>,
    /// Indices refused: bad client signature or over a size limit.
    pub invalid: Vec<u32>,
}

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

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, axum::Json(json!({ "error": message.into() }))).into_response()
}

async fn ask<T>(s: &ApiState, make: impl FnOnce(oneshot::Sender<T>) -> Query) -> Result<T, Response> {
    let (tx, rx) = oneshot::channel();
    s.commands
        .send(Command::Query(make(tx)))
        .await
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "the replica is shutting down"))?;
    match tokio::time::timeout(Duration::from_secs(5), rx).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err(error(StatusCode::SERVICE_UNAVAILABLE, "the replica is shutting down")),
        Err(_) => Err(error(StatusCode::SERVICE_UNAVAILABLE, "the replica is busy; try again")),
    }
}

fn reply_json(id: u32, client: &PublicKey, nonce: u64, reply: &SharedReply) -> Value {
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

async fn submit(State(s): State<ApiState>, body: axum::body::Bytes) -> Response {
    let parsed: RequestJson = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed request JSON: {e}")),
    };
    let req = match parsed.to_request() {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    if req.is_opaque() && !s.testing {
        return error(StatusCode::FORBIDDEN, OPAQUE_REFUSED);
    }
    if !verify_requests(&s, std::slice::from_ref(&req)).await[0] {
        return error(StatusCode::UNAUTHORIZED, "bad signature: the request is not signed by its client key");
    }
    let (client, nonce) = (req.body.client, req.body.nonce);
    let (tx, rx) = oneshot::channel();
    if s.commands.send(Command::Submit(req, tx)).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the replica is shutting down");
    }
    match tokio::time::timeout(SUBMIT_WAIT, rx).await {
        Ok(Ok(reply)) => axum::Json(reply_json(s.id(), &client, nonce, &reply)).into_response(),
        _ => (StatusCode::ACCEPTED, axum::Json(json!({"replica": s.id(), "status": "pending"})))
            .into_response(),
    }
}

const OPAQUE_REFUSED: &str =
    "opaque payloads are unsigned benchmark load: only a testing cluster (init --testing) orders them";

/// Checks client signatures off the async workers, through the verdict cache the replica uses.
/// An opaque payload carries none: it passes here, and only a testing cluster admits it.
async fn verify_requests(s: &ApiState, reqs: &[ClientRequest]) -> Vec<bool> {
    let items: Vec<_> = reqs.iter().filter_map(|r| r.verify_item(&s.cluster)).collect();
    if items.is_empty() {
        return vec![true; reqs.len()];
    }
    let count = items.len();
    let cache = s.cache.clone();
    // Fresh, unpredictable coefficients per call without reading the OS each time.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = phalanx_crypto::digest(&[&s.rng_seed[..], &call.to_le_bytes()].concat()).0;
    let verdicts =
        tokio::task::spawn_blocking(move || cache.verify(&mut phalanx_crypto::SeededRng::new(seed), &items))
            .await
            .unwrap_or_else(|_| vec![false; count]);
    let mut signed = verdicts.into_iter();
    reqs.iter().map(|r| r.is_opaque() || signed.next().unwrap_or(false)).collect()
}

/// `POST /v1/transactions/batch`: many signed requests in one call (postcard-encoded
/// `Vec<ClientRequest>`), answered when all executed or the wait ends. Clients and benchmarks
/// use it to keep HTTP off the per-transaction path.
async fn submit_batch(State(s): State<ApiState>, body: axum::body::Bytes) -> Response {
    let reqs: Vec<ClientRequest> = match wire::decode_value(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("malformed batch (postcard Vec<ClientRequest>): {e}"),
            );
        }
    };
    if reqs.is_empty() || reqs.len() > MAX_SUBMIT_BATCH {
        return error(
            StatusCode::BAD_REQUEST,
            format!("a batch holds 1 to {MAX_SUBMIT_BATCH} requests, not {}", reqs.len()),
        );
    }
    let verdicts = verify_requests(&s, &reqs).await;
    let mut invalid = Vec::new();
    let mut waiting = Vec::with_capacity(reqs.len());
    let mut accepted = Vec::with_capacity(reqs.len());
    for (i, (req, ok)) in reqs.into_iter().zip(verdicts).enumerate() {
        if !ok || (req.is_opaque() && !s.testing) || wire::check_request(&req).is_err() {
            invalid.push(i as u32);
            continue;
        }
        let (tx, rx) = oneshot::channel();
        waiting.push((i as u32, rx));
        accepted.push((req, tx));
    }
    if !accepted.is_empty() && s.commands.send(Command::SubmitMany(accepted)).await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the replica is shutting down");
    }
    let deadline = tokio::time::Instant::now() + SUBMIT_WAIT;
    let (mut replies, mut pending) = (Vec::<SharedReply>::new(), Vec::new());
    for (i, rx) in waiting {
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(r)) => {
                if !replies.iter().any(|x| std::sync::Arc::ptr_eq(x, &r)) {
                    replies.push(r);
                }
            }
            _ => pending.push(i),
        }
    }
    let answer = BatchAnswer {
        replica: s.id(),
        replies: replies.iter().map(|r| r.as_ref().clone()).collect(),
        pending,
        invalid,
    };
    ([(axum::http::header::CONTENT_TYPE, "application/octet-stream")], wire::to_bytes(&answer))
        .into_response()
}

async fn transaction(State(s): State<ApiState>, Path((client, nonce)): Path<(String, u64)>) -> Response {
    let Ok(client) = PublicKey::from_hex(&client) else {
        return error(StatusCode::BAD_REQUEST, "client: expected a 64-character hex public key");
    };
    match ask(&s, |tx| Query::Reply(client, nonce, tx)).await {
        Ok(Some((reply, cert))) => {
            let mut v = reply_json(s.id(), &client, nonce, &reply);
            // Proof independent of this node: 2f+1 signed COMMITs for the batch holding the request.
            v["commit_certificate"] =
                cert.map(|c| Value::String(hex::encode(wire::to_bytes(&c)))).unwrap_or(Value::Null);
            axum::Json(v).into_response()
        }
        Ok(None) => {
            error(StatusCode::NOT_FOUND, "no executed request with this client and nonce is remembered here")
        }
        Err(r) => r,
    }
}

impl ApiState {
    fn id(&self) -> u32 {
        self.directory.read().map(|d| d.id).unwrap_or(phalanx_app::Replica::STANDBY)
    }

    fn directory(&self) -> crate::directory::Directory {
        self.directory.read().map(|d| d.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }
}

fn status_json(s: &ApiState, st: &ReplicaStatus) -> Value {
    let d = s.directory();
    let name = |i: u32| d.agents.get(i as usize).map(|a| a.name.clone());
    json!({
        "name": name(st.id).unwrap_or_else(|| s.name.clone()),
        "id": st.id,
        "voter": d.agents.get(st.id as usize).is_some_and(|a| a.voter),
        "epoch": st.epoch,
        "voters": d.agents.iter().filter(|a| a.voter).map(|a| a.name.clone()).collect::<Vec<_>>(),
        "view": st.view,
        "primary": name(st.primary),
        "active": st.active,
        "view_change_target": st.view_change_target,
        "last_executed": st.last_executed,
        "stable_checkpoint": st.stable_checkpoint,
        "state_digest": st.state_digest.to_hex(),
        "pending_requests": st.pending_requests,
        "ignored": st.ignored.iter().map(|(why, n)| (why.to_string(), Value::from(*n))).collect::<serde_json::Map<_, _>>(),
        "traffic": {
            "messages_sent": s.traffic.messages_sent.load(std::sync::atomic::Ordering::Relaxed),
            "bytes_sent": s.traffic.bytes_sent.load(std::sync::atomic::Ordering::Relaxed),
            "frames_dropped": s.traffic.frames_dropped.load(std::sync::atomic::Ordering::Relaxed),
            "fsyncs": s.traffic.fsyncs.load(std::sync::atomic::Ordering::Relaxed),
            "rounds": s.traffic.rounds.load(std::sync::atomic::Ordering::Relaxed),
            "inputs": s.traffic.inputs.load(std::sync::atomic::Ordering::Relaxed),
            "messages_by_kind": phalanx_core::wire::Message::NAMES
                .iter()
                .zip(&s.traffic.sent_by_kind)
                .map(|(n, c)| (n.to_string(), Value::from(c.load(std::sync::atomic::Ordering::Relaxed))))
                .collect::<serde_json::Map<_, _>>(),
        },
    })
}

async fn status(State(s): State<ApiState>) -> Response {
    match ask(&s, Query::Status).await {
        Ok(st) => axum::Json(status_json(&s, &st)).into_response(),
        Err(r) => r,
    }
}

fn reachable(s: &ApiState, d: &crate::directory::Directory) -> Vec<(bool, Option<u64>)> {
    let seen = s.seen.lock().map(|v| v.clone()).unwrap_or_default();
    (0..d.agents.len())
        .map(|i| {
            if i as u32 == d.id {
                return (true, Some(0));
            }
            match seen.get(i).copied().flatten() {
                Some(t) => (t.elapsed() < STALE, Some(t.elapsed().as_millis() as u64)),
                None => (false, None),
            }
        })
        .collect()
}

async fn agents(State(s): State<ApiState>) -> Response {
    let st = match ask(&s, Query::Status).await {
        Ok(st) => st,
        Err(r) => return r,
    };
    let (acc, reps, _) = match ask(&s, Query::Accountability).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let d = s.directory();
    let seen = reachable(&s, &d);
    let list: Vec<Value> = d
        .agents
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let quarantine = acc.quarantined.get(&m.key).cloned();
            let status = match (&quarantine, seen[i].0) {
                (Some(_), _) => "quarantined",
                (None, true) => "healthy",
                (None, false) => "unreachable",
            };
            let role = match (m.voter, i as u32 == st.primary) {
                (true, true) => "primary",
                (true, false) => "replica",
                (false, _) => "removed",
            };
            json!({
                "name": m.name,
                "role": role,
                "status": status,
                "quarantine": quarantine,
                "reputation": reps.get(i),
                "public_key": m.key.to_hex(),
                "last_seen_ms_ago": seen[i].1,
                "replica_addr": m.replica_addr,
                "http_addr": m.http_addr,
            })
        })
        .collect();
    axum::Json(json!({ "agents": list })).into_response()
}

async fn health(State(s): State<ApiState>) -> Response {
    let (st, (applied, rejected)) = match (ask(&s, Query::Status).await, ask(&s, Query::Counters).await) {
        (Ok(st), Ok(c)) => (st, c),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let (acc, _, _) = match ask(&s, Query::Accountability).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let quarantined = |name: &str| acc.quarantined.values().any(|q| q.name == name);
    let d = s.directory();
    let reach = reachable(&s, &d);
    // Counted over the voters of the current epoch (removed agents no longer take part).
    let voters: Vec<(usize, &crate::directory::Agent)> =
        d.agents.iter().enumerate().filter(|(_, a)| a.voter).collect();
    let healthy = voters.iter().filter(|(i, m)| reach[*i].0 && !quarantined(&m.name)).count();
    let quorum = d.quorum;
    // Honest = never made faulty by the operator (testing clusters record every injection in
    // committed state); elsewhere every quarantine rests on evidence or f+1 accusers.
    let honest: Vec<&str> =
        d.agents.iter().map(|m| m.name.as_str()).filter(|n| !acc.ever_injected.contains(*n)).collect();
    let false_positives = honest.iter().filter(|n| quarantined(n)).count();
    let fpr = if honest.is_empty() { 0.0 } else { false_positives as f64 / honest.len() as f64 };
    axum::Json(json!({
        "status": if healthy >= quorum && st.active { "healthy" } else { "degraded" },
        "total_agents": voters.len(),
        "epoch": d.epoch,
        "malicious_detected": acc.quarantined.len(),
        "healthy_agents": healthy,
        "quorum_met": healthy >= quorum,
        "quorum_threshold": quorum,
        "transactions_committed": applied,
        "transactions_rejected": rejected,
        "false_positive_rate": fpr,
        // This node alone cannot compare digests; `phalanx health` does, across agents.
        "system_integrity": "unverified",
        "evidence_accepted": acc.evidence_accepted,
        "evidence_rejected": acc.evidence_rejected,
        "evidence_duplicates": acc.evidence_duplicates,
        "quarantined": acc.quarantined.values().map(|q| q.name.clone()).collect::<Vec<_>>(),
        "injected_faults": acc.injected,
        "last_executed": st.last_executed,
        "stable_checkpoint": st.stable_checkpoint,
        "state_digest": st.state_digest.to_hex(),
        "view": st.view,
    }))
    .into_response()
}

async fn accounts(State(s): State<ApiState>) -> Response {
    match ask(&s, Query::Accounts).await {
        Ok(list) => {
            let list: Vec<Value> = list
                .iter()
                .map(|(name, owner, balance)| json!({"name": name, "owner": owner.to_hex(), "balance": balance}))
                .collect();
            axum::Json(json!({ "accounts": list })).into_response()
        }
        Err(r) => r,
    }
}

async fn memory(State(s): State<ApiState>, Path((namespace, key)): Path<(String, String)>) -> Response {
    match ask(&s, |tx| Query::Memory(namespace.clone(), key.clone(), tx)).await {
        Ok(Some((e, clock))) => axum::Json(json!({
            "replica": s.id(),
            "namespace": namespace,
            "key": key,
            "value": e.value,
            "writer": e.writer.to_hex(),
            "stored_seq": e.stored_seq,
            "expires_at_ms": e.expires_at_ms,
            "clock_ms": clock,
        }))
        .into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no live value for {namespace}/{key}")),
        Err(r) => r,
    }
}

async fn federated(s: &ApiState, view: crate::federated::View, missing: String) -> Response {
    match ask(s, |tx| Query::Federated(view, tx)).await {
        Ok(Some(snapshot)) => {
            let mut v = crate::federated::render(&snapshot);
            v["replica"] = json!(s.id());
            axum::Json(v).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, missing),
        Err(r) => r,
    }
}

/// Every model's rounds in brief, and how each participant's updates fared.
async fn federated_summary(State(s): State<ApiState>) -> Response {
    federated(&s, crate::federated::View::Summary, String::new()).await
}

/// One model: its open round (uploads so far) and its recent results.
async fn federated_model(State(s): State<ApiState>, Path(model): Path<String>) -> Response {
    let missing = format!("no federated model {model:?}");
    federated(&s, crate::federated::View::Model(model), missing).await
}

/// One model's latest aggregate: the values, their little-endian bytes in hex, and the digest.
async fn federated_aggregate(State(s): State<ApiState>, Path(model): Path<String>) -> Response {
    let missing = format!("federated model {model:?} has no aggregate yet");
    federated(&s, crate::federated::View::Aggregate(model), missing).await
}

#[derive(Deserialize)]
struct LogQuery {
    tail: Option<usize>,
}

/// The detection log, from committed state (every node shows the same entries for the same
/// executed seq).
async fn detection_log(
    State(s): State<ApiState>,
    axum::extract::Query(q): axum::extract::Query<LogQuery>,
) -> Response {
    let (acc, _, _) = match ask(&s, Query::Accountability).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let st = match ask(&s, Query::Status).await {
        Ok(st) => st,
        Err(r) => return r,
    };
    let skip = q.tail.map_or(0, |t| acc.log.len().saturating_sub(t));
    let entries: Vec<&phalanx_core::state::DetectionEntry> = acc.log.iter().skip(skip).collect();
    axum::Json(json!({
        "replica": s.id(),
        "last_executed": st.last_executed,
        "total": acc.log_total,
        "entries": entries,
    }))
    .into_response()
}

async fn view_changes(State(s): State<ApiState>) -> Response {
    match ask(&s, Query::ViewChanges).await {
        Ok(list) => axum::Json(json!({ "replica": s.id(), "view_changes": list })).into_response(),
        Err(r) => r,
    }
}

/// The proof of the reconfiguration that created epoch `n` (hex of its canonical encoding):
/// clients check it themselves.
async fn epoch_proof(State(s): State<ApiState>, Path(n): Path<u64>) -> Response {
    match ask(&s, |tx| Query::EpochProof(n, tx)).await {
        Ok(Some(proof)) => {
            axum::Json(json!({ "replica": s.id(), "epoch": n, "proof": hex::encode(wire::to_bytes(&proof)) }))
                .into_response()
        }
        Ok(None) => {
            error(StatusCode::NOT_FOUND, format!("this agent executed no reconfiguration creating epoch {n}"))
        }
        Err(r) => r,
    }
}

async fn openapi() -> Response {
    axum::Json(serde_json::from_str::<Value>(include_str!("openapi.json")).unwrap_or(Value::Null))
        .into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint; see /openapi.json")
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/transactions", post(submit))
        .route("/v1/transactions/batch", post(submit_batch).layer(DefaultBodyLimit::max(MAX_BATCH_BODY)))
        .route("/v1/transactions/{client}/{nonce}", get(transaction))
        .route("/v1/status", get(status))
        .route("/v1/agents", get(agents))
        .route("/v1/health", get(health))
        .route("/v1/accounts", get(accounts))
        .route("/v1/memory/{namespace}/{key}", get(memory))
        .route("/v1/federated", get(federated_summary))
        .route("/v1/federated/{model}", get(federated_model))
        .route("/v1/federated/{model}/aggregate", get(federated_aggregate))
        .route("/v1/detection-log", get(detection_log))
        .route("/v1/view-changes", get(view_changes))
        .route("/v1/epochs/{n}", get(epoch_proof))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}
