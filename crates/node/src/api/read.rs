//! What operators and clients read: status, agents, health, and committed state.

use crate::runtime::Query;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use phalanx_core::consensus::ReplicaStatus;
use phalanx_core::wire;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiState, STALE, ask, error};

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

pub(super) async fn status(State(s): State<ApiState>) -> Response {
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

/// `GET /metrics`: Prometheus (OpenMetrics text) series, see docs/observability.md.
pub(super) async fn metrics(State(s): State<ApiState>) -> Response {
    let snapshot = match ask(&s, Query::Metrics).await {
        Ok(snap) => snap,
        Err(r) => return r,
    };
    let d = s.directory();
    let names: Vec<String> = d.agents.iter().map(|a| a.name.clone()).collect();
    let links_up: Vec<bool> = reachable(&s, &d).iter().map(|(up, _)| *up).collect();
    let scrape = crate::metrics::Scrape { names: &names, links_up: &links_up };
    let text = crate::metrics::render(&s.metrics, &snapshot, &scrape);
    ([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
        .into_response()
}

/// `GET /v1/history`: one sample a second over the last five minutes (the dashboard's charts).
pub(super) async fn history(State(s): State<ApiState>) -> Response {
    axum::Json(json!({ "replica": s.id(), "samples": s.metrics.history() })).into_response()
}

pub(super) async fn agents(State(s): State<ApiState>) -> Response {
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

pub(super) async fn health(State(s): State<ApiState>) -> Response {
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

pub(super) async fn accounts(State(s): State<ApiState>) -> Response {
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

/// The live keys of a namespace, in key order (at most `MEMORY_LIST`).
pub(super) async fn memory_keys(State(s): State<ApiState>, Path(namespace): Path<String>) -> Response {
    if namespace.is_empty() || namespace.len() > wire::limits::MAX_MEMORY_NAMESPACE {
        return error(StatusCode::BAD_REQUEST, "a namespace is 1 to 64 bytes");
    }
    match ask(&s, |tx| Query::MemoryList(namespace.clone(), tx)).await {
        Ok(keys) => {
            let truncated = keys.len() >= crate::runtime::MEMORY_LIST;
            let keys: Vec<Value> = (keys.into_iter())
                .map(|(k, seq, exp)| json!({"key": k, "stored_seq": seq, "expires_at_ms": exp}))
                .collect();
            axum::Json(
                json!({"replica": s.id(), "namespace": namespace, "keys": keys, "truncated": truncated}),
            )
            .into_response()
        }
        Err(r) => r,
    }
}

pub(super) async fn memory(
    State(s): State<ApiState>,
    Path((namespace, key)): Path<(String, String)>,
) -> Response {
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

pub(super) async fn federated(s: &ApiState, view: crate::federated::View, missing: String) -> Response {
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
pub(super) async fn federated_summary(State(s): State<ApiState>) -> Response {
    federated(&s, crate::federated::View::Summary, String::new()).await
}

/// One model: its open round (uploads so far) and its recent results.
pub(super) async fn federated_model(State(s): State<ApiState>, Path(model): Path<String>) -> Response {
    let missing = format!("no federated model {model:?}");
    federated(&s, crate::federated::View::Model(model), missing).await
}

/// One model's latest aggregate: the values, their little-endian bytes in hex, and the digest.
pub(super) async fn federated_aggregate(State(s): State<ApiState>, Path(model): Path<String>) -> Response {
    let missing = format!("federated model {model:?} has no aggregate yet");
    federated(&s, crate::federated::View::Aggregate(model), missing).await
}

#[derive(Deserialize)]
pub(super) struct LogQuery {
    tail: Option<usize>,
}

/// The detection log, from committed state (every node shows the same entries for the same
/// executed seq).
pub(super) async fn detection_log(
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

pub(super) async fn view_changes(State(s): State<ApiState>) -> Response {
    match ask(&s, Query::ViewChanges).await {
        Ok(list) => axum::Json(json!({ "replica": s.id(), "view_changes": list })).into_response(),
        Err(r) => r,
    }
}

/// Every decision the state holds, open ones first.
pub(super) async fn decisions(State(s): State<ApiState>) -> Response {
    match ask(&s, Query::Decisions).await {
        Ok(list) => axum::Json(json!({ "replica": s.id(), "decisions": list })).into_response(),
        Err(r) => r,
    }
}

/// One decision in full, with the commit certificate of the batch that closed it.
pub(super) async fn decision(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    if let Err(e) = wire::decision::check_id(&id) {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    match ask(&s, |tx| Query::Decision(id.clone(), tx)).await {
        Ok(Some(copy)) => {
            let mut v = crate::decisions::render(&copy);
            v["replica"] = json!(s.id());
            axum::Json(v).into_response()
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no decision {id:?} is held here (never opened, or forgotten long after it closed)"),
        ),
        Err(r) => r,
    }
}

/// The proof of the reconfiguration that created epoch `n` (hex of its canonical encoding):
/// clients check it themselves.
pub(super) async fn epoch_proof(State(s): State<ApiState>, Path(n): Path<u64>) -> Response {
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
