//! The HTTP/JSON API of one node: clients submit signed transfers and read results; operators
//! read status, agents and health. Malformed JSON, oversized bodies and bad signatures get a 4xx
//! whose message names the problem.
//!
//! - `json`: operations, signed requests and replies as JSON (shared with the client crate);
//! - `submit`: clients submitting requests, one or a batch, and reading a result;
//! - `read`: status, agents, health and committed state (accounts, memory, federated rounds,
//!   the detection log, view changes, epoch proofs).

mod json;
mod read;
mod submit;

pub use json::{BallotJson, JoinerJson, OpJson, RequestJson, outcome_str, unhex};
pub use submit::{BatchAnswer, MAX_BATCH_BODY, MAX_SUBMIT_BATCH};

use crate::runtime::{Command, Query};
use crate::transport::LastSeen;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
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
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// A testing cluster: unsigned opaque benchmark payloads are ordered.
    pub testing: bool,
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

impl ApiState {
    fn id(&self) -> u32 {
        self.directory.read().map(|d| d.id).unwrap_or(phalanx_app::Replica::STANDBY)
    }

    fn directory(&self) -> crate::directory::Directory {
        self.directory.read().map(|d| d.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }
}

async fn openapi() -> Response {
    axum::Json(serde_json::from_str::<Value>(include_str!("openapi.json")).unwrap_or(Value::Null))
        .into_response()
}

/// The live dashboard: one self-contained page (no outside assets) that polls this API.
async fn dashboard() -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("dashboard.html"),
    )
        .into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint; see /openapi.json")
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/transactions", post(submit::submit))
        .route(
            "/v1/transactions/batch",
            post(submit::submit_batch).layer(DefaultBodyLimit::max(MAX_BATCH_BODY)),
        )
        .route("/v1/transactions/{client}/{nonce}", get(submit::transaction))
        .route("/v1/status", get(read::status))
        .route("/v1/agents", get(read::agents))
        .route("/v1/health", get(read::health))
        .route("/v1/accounts", get(read::accounts))
        .route("/v1/memory/{namespace}", get(read::memory_keys))
        .route("/v1/memory/{namespace}/{key}", get(read::memory))
        .route("/v1/federated", get(read::federated_summary))
        .route("/v1/federated/{model}", get(read::federated_model))
        .route("/v1/federated/{model}/aggregate", get(read::federated_aggregate))
        .route("/v1/detection-log", get(read::detection_log))
        .route("/v1/view-changes", get(read::view_changes))
        .route("/v1/epochs/{n}", get(read::epoch_proof))
        .route("/v1/decisions", get(read::decisions))
        .route("/v1/decisions/{id}", get(read::decision))
        .route("/metrics", get(read::metrics))
        .route("/v1/history", get(read::history))
        .route("/dashboard", get(dashboard))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}
