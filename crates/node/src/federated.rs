//! The JSON views of federated rounds, built from committed state inside the replica task (so a
//! view never copies open rounds' uploads): `GET /v1/federated`, `GET /v1/federated/{model}` and
//! `GET /v1/federated/{model}/aggregate`.

use phalanx_core::state::AppState;
use phalanx_core::state::federated::{Model, OpenRound, RoundOutcome, RoundResult};
use phalanx_crypto::PublicKey;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Which view a query asks for.
#[derive(Clone, Debug)]
pub enum View {
    Summary,
    Model(String),
    Aggregate(String),
}

/// Account names of keys, so people read `bench-3` rather than a key.
fn names(st: &AppState) -> BTreeMap<PublicKey, String> {
    st.accounts.iter().map(|(name, a)| (a.owner, name.clone())).collect()
}

fn who(names: &BTreeMap<PublicKey, String>, key: &PublicKey) -> Value {
    names.get(key).map_or_else(|| Value::String(key.to_hex()), |n| Value::String(n.clone()))
}

fn open_json(o: &OpenRound, names: &BTreeMap<PublicKey, String>) -> Value {
    let coordinates = |k: &PublicKey| o.uploads.get(k).map_or(0, |u| u.0.len() / 8);
    json!({
        "round": o.spec.round,
        "rule": o.spec.rule,
        "pre": o.spec.pre,
        "params": o.spec.params,
        "f": o.spec.f,
        "dim": o.spec.dim,
        "quorum": o.spec.quorum,
        "complete": o.complete(),
        "opened_seq": o.opened_seq,
        "deadline_ms": o.deadline_ms,
        "participants": o.spec.participants.iter()
            .map(|k| json!({"agent": who(names, k), "key": k.to_hex(), "uploaded": coordinates(k)}))
            .collect::<Vec<_>>(),
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

fn model_json(name: &str, m: &Model, names: &BTreeMap<PublicKey, String>, full: bool) -> Value {
    let mut v = json!({
        "model": name,
        "last_round": m.last_round,
        "open": m.open.as_ref().map(|o| open_json(o, names)),
        "latest_round": m.latest.as_ref().map(|l| l.round),
        "last_result": m.results.back().map(|r| result_json(r, names)),
    });
    if full {
        v["results"] = m.results.iter().map(|r| result_json(r, names)).collect();
    }
    v
}

/// The view asked for, or `None` for an unknown model.
pub fn view(st: &AppState, last_executed: u64, view: &View) -> Option<Value> {
    let fed = &st.federated;
    let names = names(st);
    Some(match view {
        View::Summary => json!({
            "last_executed": last_executed,
            "reserved_bytes": fed.reserved,
            "models": fed.models.iter().map(|(n, m)| model_json(n, m, &names, false)).collect::<Vec<_>>(),
            "agents": fed.standing.iter().map(|(k, s)| json!({
                "agent": who(&names, k),
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
        View::Model(name) => {
            let mut v = model_json(name, fed.models.get(name)?, &names, true);
            v["last_executed"] = json!(last_executed);
            v
        }
        View::Aggregate(name) => {
            let m = fed.models.get(name)?;
            let latest = m.latest.as_ref()?;
            let digest = phalanx_crypto::digest(&latest.values);
            json!({
                "model": name,
                "round": latest.round,
                "digest": digest.to_hex(),
                "values": latest.vector(),
                "values_hex": crate::api::hex(&latest.values),
                "last_executed": last_executed,
            })
        }
    })
}
