//! The JSON views of federated rounds: `GET /v1/federated`, `GET /v1/federated/{model}` and
//! `GET /v1/federated/{model}/aggregate`. The replica task only copies what a view needs
//! ([`snapshot`]: no open round's uploads, at most one aggregate); the JSON is built on the API's
//! side ([`render`]), so a client polling the API cannot stall consensus with serialisation.

use phalanx_app::State as AppState;
use phalanx_app::federated::{Latest, Model, RoundOutcome, RoundResult, Standing};
use phalanx_core::wire::RoundSpec;
use phalanx_crypto::PublicKey;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Which view a query asks for.
#[derive(Clone, Debug)]
pub enum View {
    Summary,
    Model(String),
    Aggregate(String),
}

/// An open round without its uploads: how many coordinates each participant sent.
#[derive(Clone, Debug)]
pub struct OpenCopy {
    spec: RoundSpec,
    opened_seq: u64,
    deadline_ms: u64,
    complete: usize,
    uploaded: BTreeMap<PublicKey, usize>,
}

#[derive(Clone, Debug)]
pub struct ModelCopy {
    name: String,
    last_round: u64,
    open: Option<OpenCopy>,
    latest_round: Option<u64>,
    /// The last result only, unless the whole model was asked for.
    results: Vec<RoundResult>,
}

/// What a view needs, copied out of the committed state.
#[derive(Clone, Debug)]
pub struct Snapshot {
    last_executed: u64,
    /// Account names of the keys involved, so people read `bench-3` rather than a key.
    names: BTreeMap<PublicKey, String>,
    what: Copied,
}

#[derive(Clone, Debug)]
enum Copied {
    Summary { reserved: u64, models: Vec<ModelCopy>, standing: Vec<(PublicKey, Standing)> },
    Model(Box<ModelCopy>),
    Aggregate { model: String, latest: Latest },
}

fn copy_model(name: &str, m: &Model, all_results: bool) -> ModelCopy {
    let open = m.open.as_ref().map(|o| OpenCopy {
        spec: o.spec.clone(),
        opened_seq: o.opened_seq,
        deadline_ms: o.deadline_ms,
        complete: o.complete(),
        uploaded: o.uploads.iter().map(|(k, u)| (*k, u.0.len() / 8)).collect(),
    });
    let results = if all_results {
        m.results.iter().cloned().collect()
    } else {
        m.results.back().cloned().into_iter().collect()
    };
    ModelCopy {
        name: name.to_string(),
        last_round: m.last_round,
        open,
        latest_round: m.latest.as_ref().map(|l| l.round),
        results,
    }
}

/// Copies what `view` needs (`None`: no such model, or no aggregate yet).
pub fn snapshot(st: &AppState, last_executed: u64, view: &View) -> Option<Snapshot> {
    let fed = &st.app.federated;
    let what = match view {
        View::Summary => Copied::Summary {
            reserved: fed.reserved,
            models: fed.models.iter().map(|(n, m)| copy_model(n, m, false)).collect(),
            standing: fed.standing.iter().map(|(k, s)| (*k, s.clone())).collect(),
        },
        View::Model(name) => Copied::Model(Box::new(copy_model(name, fed.models.get(name)?, true))),
        View::Aggregate(name) => {
            Copied::Aggregate { model: name.clone(), latest: fed.models.get(name)?.latest.clone()? }
        }
    };
    // Names of every key that can appear: past and present participants.
    let mut keys: BTreeSet<PublicKey> = fed.standing.keys().copied().collect();
    keys.extend(fed.models.values().filter_map(|m| m.open.as_ref()).flat_map(|o| o.spec.participants.iter()));
    let names = match what {
        Copied::Aggregate { .. } => BTreeMap::new(),
        _ => (st.app.accounts.iter())
            .filter(|(_, a)| keys.contains(&a.owner))
            .map(|(name, a)| (a.owner, name.clone()))
            .collect(),
    };
    Some(Snapshot { last_executed, names, what })
}

fn who(names: &BTreeMap<PublicKey, String>, key: &PublicKey) -> Value {
    names.get(key).map_or_else(|| Value::String(key.to_hex()), |n| Value::String(n.clone()))
}

fn open_json(o: &OpenCopy, names: &BTreeMap<PublicKey, String>) -> Value {
    let participants: Vec<Value> = (o.spec.participants.iter())
        .map(|k| json!({"agent": who(names, k), "key": k.to_hex(), "uploaded": o.uploaded.get(k).unwrap_or(&0)}))
        .collect();
    json!({
        "round": o.spec.round,
        "rule": o.spec.rule,
        "pre": o.spec.pre,
        "params": o.spec.params,
        "f": o.spec.f,
        "dim": o.spec.dim,
        "quorum": o.spec.quorum,
        "complete": o.complete,
        "opened_seq": o.opened_seq,
        "deadline_ms": o.deadline_ms,
        "participants": participants,
    })
}

fn result_json(r: &RoundResult, names: &BTreeMap<PublicKey, String>) -> Value {
    let list = |keys: &[PublicKey]| keys.iter().map(|k| who(names, k)).collect::<Vec<_>>();
    let (digest, error) = match &r.outcome {
        RoundOutcome::Aggregated { digest } => (Some(digest.to_hex()), None),
        RoundOutcome::Refused { error } => (None, Some(error.clone())),
    };
    let removed = r.kept.as_ref().map(|kept| {
        let gone: Vec<PublicKey> = r.submitted.iter().filter(|k| !kept.contains(k)).copied().collect();
        list(&gone)
    });
    json!({
        "round": r.round,
        "rule": r.rule,
        "f": r.f,
        "dim": r.dim,
        "opened_seq": r.opened_seq,
        "closed_seq": r.closed_seq,
        "closed_ms": r.closed_ms,
        "cause": r.cause.as_str(),
        "digest": digest,
        "error": error,
        "submitted": list(&r.submitted),
        "kept": r.kept.as_deref().map(list),
        "removed": removed,
        "missing": list(&r.missing),
    })
}

fn model_json(m: &ModelCopy, names: &BTreeMap<PublicKey, String>) -> Value {
    json!({
        "model": m.name,
        "last_round": m.last_round,
        "open": m.open.as_ref().map(|o| open_json(o, names)),
        "latest_round": m.latest_round,
        "last_result": m.results.last().map(|r| result_json(r, names)),
    })
}

/// The JSON of a copied view.
pub fn render(c: &Snapshot) -> Value {
    let names = &c.names;
    let mut v = match &c.what {
        Copied::Summary { reserved, models, standing } => json!({
            "reserved_bytes": reserved,
            "models": models.iter().map(|m| model_json(m, names)).collect::<Vec<_>>(),
            "agents": standing.iter().map(|(k, s)| json!({
                "agent": who(names, k),
                "key": k.to_hex(),
                "submitted": s.submitted,
                "missed": s.missed,
                "kept": s.kept,
                "removed": s.removed,
                "consecutive_removed": s.consecutive_removed,
                "score": s.score(),
                "suspect": s.suspect(),
            })).collect::<Vec<_>>(),
        }),
        Copied::Model(m) => {
            let mut v = model_json(m, names);
            v["results"] = m.results.iter().map(|r| result_json(r, names)).collect();
            v
        }
        Copied::Aggregate { model, latest } => json!({
            "model": model,
            "round": latest.round,
            "digest": phalanx_crypto::digest(&latest.values).to_hex(),
            "values": latest.vector(),
            "values_hex": hex::encode(&latest.values),
        }),
    };
    v["last_executed"] = json!(c.last_executed);
    v
}
