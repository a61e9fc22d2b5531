//! Clients submitting signed requests (one, or a batch in postcard) and reading a result.

use crate::runtime::{Command, Query, SharedReply};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use phalanx_core::wire::{self, ClientRequest};
use phalanx_crypto::PublicKey;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::json::{RequestJson, reply_json};
use super::{ApiState, SUBMIT_WAIT, ask, error};

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
pub(super) async fn submit(State(s): State<ApiState>, body: axum::body::Bytes) -> Response {
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
pub(super) async fn verify_requests(s: &ApiState, reqs: &[ClientRequest]) -> Vec<bool> {
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
pub(super) async fn submit_batch(State(s): State<ApiState>, body: axum::body::Bytes) -> Response {
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

pub(super) async fn transaction(
    State(s): State<ApiState>,
    Path((client, nonce)): Path<(String, u64)>,
) -> Response {
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
