//! Operations of federated learning rounds: open a round, upload an update in chunks, close.
//!
//! Updates travel as little-endian f64 bytes rather than `Vec<f64>`: the encoding is exact, the
//! size is what the limits count, and operations stay `Eq` (a float is not).

use super::{WireError, limits};
use phalanx_crypto::PublicKey;
use serde::{Deserialize, Serialize};

/// Bytes per update coordinate (f64, little-endian).
pub const VALUE_BYTES: usize = 8;

/// What a round is: who trains, how their updates are combined and when it closes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundSpec {
    /// Which model the round trains; rounds of one model are numbered upwards, one open at a time.
    pub model: String,
    pub round: u64,
    /// An aggregation rule of `phalanx-aggregate` (`median`, `multikrum`, …).
    pub rule: String,
    /// Pre-aggregators applied first, in order (`nnm`, `bucketing`, `clip`, `arc`).
    pub pre: Vec<String>,
    /// Rule and pre-aggregator parameters, `key=value`.
    pub params: Vec<String>,
    /// Byzantine participants the rule must tolerate.
    pub f: u32,
    /// Coordinates per update.
    pub dim: u32,
    /// The agents that may submit, each once.
    pub participants: Vec<PublicKey>,
    /// The round closes as soon as this many complete updates are in.
    pub quorum: u32,
    /// Otherwise it closes with what arrived once committed time passes opening + this.
    pub timeout_ms: u64,
    /// Seeds the randomised pre-aggregators (bucketing).
    pub seed: u64,
}

/// A federated-learning operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FederatedOp {
    /// Opens a round (the operator).
    Open(Box<RoundSpec>),
    /// Part of the signer's update: coordinates `offset ..` of round `round` of `model`.
    /// Chunks arrive in order, so `offset` must equal what the signer has uploaded so far.
    Submit {
        model: String,
        round: u64,
        offset: u32,
        #[serde(with = "serde_bytes")]
        values: Vec<u8>,
    },
    /// Closes the round now with the updates complete so far (the operator).
    Close { model: String, round: u64 },
    /// Forgets a model: its open round (uploads discarded), latest aggregate and results, which
    /// frees their space and its name (the operator).
    Delete { model: String },
}

impl FederatedOp {
    pub(super) fn check_limits(&self) -> Result<(), WireError> {
        let model = match self {
            FederatedOp::Open(spec) => {
                if spec.participants.len() > limits::MAX_ROUND_PARTICIPANTS {
                    return Err(WireError::Limit("more than 256 round participants"));
                }
                if spec.rule.len() > limits::MAX_RULE_TEXT
                    || spec.pre.len() > limits::MAX_RULE_ITEMS
                    || spec.params.len() > limits::MAX_RULE_ITEMS
                    || spec.pre.iter().chain(&spec.params).any(|s| s.len() > limits::MAX_RULE_TEXT)
                {
                    return Err(WireError::Limit("round rule, pre-aggregators or parameters too long"));
                }
                &spec.model
            }
            FederatedOp::Submit { model, values, .. } => {
                if values.len() > limits::MAX_UPDATE_CHUNK_BYTES {
                    return Err(WireError::Limit("update chunk larger than 64 KiB"));
                }
                model
            }
            FederatedOp::Close { model, .. } | FederatedOp::Delete { model } => model,
        };
        if model.is_empty() || model.len() > limits::MAX_MODEL_NAME {
            return Err(WireError::Limit("model name empty or longer than 64 bytes"));
        }
        Ok(())
    }
}

/// Little-endian f64 bytes of `values` (what `Submit` carries and what result digests hash).
pub fn encode_values(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The f64s in `bytes`; `None` unless the length is a whole number of values.
pub fn decode_values(bytes: &[u8]) -> Option<Vec<f64>> {
    if !bytes.len().is_multiple_of(VALUE_BYTES) {
        return None;
    }
    let values = bytes.chunks_exact(VALUE_BYTES).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
    Some(values.collect())
}
