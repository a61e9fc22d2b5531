//! Federated learning rounds in the replicated state.
//!
//! A round opens with its rule, f, dimension, participants, quorum and timeout. Each participant
//! uploads one update in ordered chunks (signed client requests). The round closes when `quorum`
//! updates are complete, when committed time passes its deadline, or when the operator closes it.
//! At close every replica runs the same `phalanx-aggregate` pipeline on the complete updates, in
//! the order the round lists its participants, and commits the aggregate, its digest and which
//! updates the rule kept. The rules' summation order is fixed, so the aggregate is bit-identical
//! on every replica.
//!
//! Space is reserved when a round opens (every participant's update, the aggregate, the round's
//! description and its result), so an upload that fits its round never fails for lack of room,
//! and the state stays small enough to transfer.

use phalanx_aggregate::{Pipeline, Pre, Rule, binomial};
use phalanx_core::wire::federated::{RoundSpec, VALUE_BYTES, decode_values, encode_values};
use phalanx_core::wire::{RejectReason, Seq, limits};
use phalanx_crypto::{Digest, PublicKey, digest};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Results kept per model (older ones are dropped).
pub const HISTORY: usize = 32;
/// Bytes charged for a round's description while it is open (its participants aside) and for a
/// result while it is kept (its lists of keys aside): names, rule, parameters, the error text.
const SPEC_BYTES: u64 = 5 * 1024;
const RESULT_BYTES: u64 = 1024;
/// A refusal's error text is cut to this length.
const MAX_ERROR_TEXT: usize = 256;
/// At most this many pre-aggregators run before a round's rule.
const MAX_PRE: usize = 4;
/// Judged rounds an agent's score looks back over.
const WINDOW: u32 = 16;
/// Removed this many times in a row, an agent is marked suspect.
pub const SUSPECT_AFTER: u32 = 3;
/// Bounds on what one round's aggregation may cost every replica, which all run it inside the
/// execution of one batch. Iterative rules: passes over all the updates. Exact subset searches:
/// subsets × their per-subset work, (n−f)² for MDA's diameters and (n−f)³ for SMEA's
/// eigen-decompositions (measured: about 0.1 s at 10⁸ for MDA and 0.3 s at 10⁷ for SMEA).
const MAX_ITERATIONS: usize = 200;
const MAX_MDA_WORK: u128 = 200_000_000;
const MAX_SMEA_WORK: u128 = 10_000_000;
/// CAF runs up to n passes, each an n×n eigen-decomposition.
const MAX_CAF_PARTICIPANTS: usize = 64;

/// What an open round holds against the budget beyond its updates and aggregate: the keys in
/// its participant list and in its uploads table, with their length prefixes.
fn spec_charge(participants: usize) -> u64 {
    SPEC_BYTES + 72 * participants as u64
}

/// What a kept result holds against the budget: up to two lists of every participant's key.
pub fn result_charge(participants: usize) -> u64 {
    RESULT_BYTES + 64 * participants as u64
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Federated {
    pub models: BTreeMap<String, Model>,
    /// Every agent that was ever a participant: how its updates fared.
    pub standing: BTreeMap<PublicKey, Standing>,
    /// Bytes reserved: open rounds (updates, aggregate, description, result), every model's
    /// latest aggregate and its kept results. Never above `MAX_FEDERATED_BYTES`.
    pub reserved: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    /// The highest round ever opened; the next must be above it.
    pub last_round: u64,
    pub open: Option<OpenRound>,
    /// The aggregate of the latest round that produced one.
    pub latest: Option<Latest>,
    /// Recent results, oldest first.
    pub results: VecDeque<RoundResult>,
}

impl Model {
    /// What the model holds against the budget: an open round's reservation, the latest
    /// aggregate and the kept results. `Federated::reserved` is the sum over the models.
    pub fn charge(&self) -> u64 {
        let open = self.open.as_ref().map_or(0, |o| {
            let p = o.spec.participants.len();
            (p as u64 + 1) * o.update_bytes() as u64 + spec_charge(p) + result_charge(p)
        });
        let latest = self.latest.as_ref().map_or(0, |l| l.values.len() as u64);
        let results: u64 =
            self.results.iter().map(|r| result_charge(r.submitted.len() + r.missing.len())).sum();
        open + latest + results
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latest {
    pub round: u64,
    /// Little-endian f64s: exactly what [`RoundOutcome::Aggregated`]'s digest hashes.
    #[serde(with = "serde_bytes")]
    pub values: Vec<u8>,
}

impl Latest {
    pub fn vector(&self) -> Vec<f64> {
        decode_values(&self.values).unwrap_or_default()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRound {
    pub spec: RoundSpec,
    pub opened_seq: Seq,
    pub deadline_ms: u64,
    /// What each participant has uploaded so far; complete at `dim` values.
    pub uploads: BTreeMap<PublicKey, Upload>,
}

impl OpenRound {
    fn update_bytes(&self) -> usize {
        self.spec.dim as usize * VALUE_BYTES
    }

    pub fn complete(&self) -> usize {
        self.uploads.values().filter(|u| u.0.len() == self.update_bytes()).count()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload(#[serde(with = "serde_bytes")] pub Vec<u8>);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloseCause {
    /// `quorum` updates were complete.
    Quorum,
    /// Committed time passed the deadline.
    Deadline,
    /// The operator closed it.
    Closed,
}

impl CloseCause {
    pub fn as_str(&self) -> &'static str {
        match self {
            CloseCause::Quorum => "quorum",
            CloseCause::Deadline => "deadline",
            CloseCause::Closed => "closed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoundOutcome {
    /// BLAKE3 of the aggregate's little-endian f64 bytes.
    Aggregated { digest: Digest },
    /// The rule refused the updates (too few for f, say); the model's latest aggregate stays.
    Refused { error: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundResult {
    pub round: u64,
    pub rule: String,
    pub f: u32,
    pub dim: u32,
    pub opened_seq: Seq,
    pub closed_seq: Seq,
    pub closed_ms: u64,
    pub cause: CloseCause,
    /// The complete updates, in the order they were aggregated (the participants' order).
    pub submitted: Vec<PublicKey>,
    /// Those the rule used, for rules that select (none for averaging rules or bucketing).
    pub kept: Option<Vec<PublicKey>>,
    /// Participants without a complete update.
    pub missing: Vec<PublicKey>,
    pub outcome: RoundOutcome,
}

/// How one agent's updates fared; `score` is what the rule's removals cost it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    pub submitted: u64,
    pub missed: u64,
    /// Rounds of a selecting rule that used its update, and that removed it.
    pub kept: u64,
    pub removed: u64,
    pub consecutive_removed: u32,
    /// The last [`WINDOW`] judged rounds, newest in bit 0; a set bit is a removal.
    recent: u32,
    judged: u32,
}

impl Standing {
    /// 100 minus the percentage of its recent judged updates the rule removed.
    pub fn score(&self) -> u32 {
        if self.judged == 0 {
            return 100;
        }
        100 - 100 * self.recent.count_ones() / self.judged
    }

    /// Removed in [`SUSPECT_AFTER`] judged rounds in a row.
    pub fn suspect(&self) -> bool {
        self.consecutive_removed >= SUSPECT_AFTER
    }

    fn judge(&mut self, removed: bool) {
        let mask = (1u32 << WINDOW) - 1;
        self.recent = ((self.recent << 1) | u32::from(removed)) & mask;
        self.judged = (self.judged + 1).min(WINDOW);
        if removed {
            self.removed += 1;
            self.consecutive_removed += 1;
        } else {
            self.kept += 1;
            self.consecutive_removed = 0;
        }
    }
}

/// The pipeline a round runs, refused if it cannot be built or, with every participant's
/// update in, may cost the replicas too much.
pub fn pipeline(spec: &RoundSpec) -> Result<Pipeline, String> {
    let params = phalanx_aggregate::Params::parse(&spec.params).map_err(|e| e.to_string())?;
    let pre: Vec<&str> = spec.pre.iter().map(String::as_str).collect();
    let pipeline = Pipeline::from_names(&spec.rule, &pre, &params, spec.seed).map_err(|e| e.to_string())?;
    params.finish().map_err(|e| e.to_string())?;
    let (n, f) = (spec.participants.len(), spec.f as usize);
    if pipeline.pre.len() > MAX_PRE {
        return Err(format!("more than {MAX_PRE} pre-aggregators"));
    }
    let search = |power: u32| binomial(n, f).saturating_mul((n.saturating_sub(f) as u128).pow(power));
    match pipeline.rule {
        Rule::GeometricMedian { iterations, .. } | Rule::CenteredClipping { iterations, .. }
            if iterations > MAX_ITERATIONS =>
        {
            Err(format!("iterations above {MAX_ITERATIONS}"))
        }
        Rule::Mda { .. } if search(2) > MAX_MDA_WORK => Err("MDA's search too large".into()),
        Rule::Smea { .. } if search(3) > MAX_SMEA_WORK => Err("SMEA's search too large".into()),
        Rule::Caf if n > MAX_CAF_PARTICIPANTS => {
            Err(format!("CAF over more than {MAX_CAF_PARTICIPANTS} updates"))
        }
        _ => Ok(pipeline),
    }
}

impl Federated {
    /// Opens a round. `authorised`: the signer is the operator (opening reserves shared space,
    /// so it is an administrative act); `admitted`: every participant is a client the replicas
    /// admit requests from.
    pub fn open(
        &mut self,
        seq: Seq,
        clock_ms: u64,
        spec: &RoundSpec,
        authorised: bool,
        admitted: bool,
    ) -> Result<(), RejectReason> {
        if !authorised {
            return Err(RejectReason::Unauthorized);
        }
        let invalid = Err(RejectReason::InvalidRound);
        let model = self.models.get(&spec.model);
        if model.is_some_and(|m| m.open.is_some() || spec.round <= m.last_round) || spec.round == 0 {
            return invalid;
        }
        let p = spec.participants.len();
        let mut unique = spec.participants.clone();
        unique.sort_unstable();
        unique.dedup();
        if spec.dim == 0
            || spec.timeout_ms == 0
            || unique.len() != p
            || !admitted
            || spec.quorum == 0
            || spec.quorum as usize > p
        {
            return invalid;
        }
        let Ok(pipeline) = pipeline(spec) else { return invalid };
        let seen = pipeline.vectors_after_pre(spec.quorum as usize);
        if pipeline.rule.check(seen, spec.f as usize).is_err() {
            return invalid;
        }
        if model.is_none() && self.models.len() >= limits::MAX_MODELS {
            return Err(RejectReason::FederatedFull);
        }
        // Every participant's update, the aggregate, the description and the result.
        let need = (p as u64 + 1) * spec.dim as u64 * VALUE_BYTES as u64 + spec_charge(p) + result_charge(p);
        if self.reserved + need > limits::MAX_FEDERATED_BYTES {
            return Err(RejectReason::FederatedFull);
        }
        self.reserved += need;
        let model = self.models.entry(spec.model.clone()).or_default();
        model.last_round = spec.round;
        model.open = Some(OpenRound {
            spec: spec.clone(),
            opened_seq: seq,
            deadline_ms: clock_ms.saturating_add(spec.timeout_ms),
            uploads: BTreeMap::new(),
        });
        Ok(())
    }

    /// Appends a chunk of `signer`'s update; closes the round when it completes the quorum.
    pub fn submit(
        &mut self,
        seq: Seq,
        clock_ms: u64,
        signer: PublicKey,
        (model_name, round, offset, values): (&str, u64, u32, &[u8]),
    ) -> Result<(), RejectReason> {
        let Some(open) = self.open_round(model_name, round) else { return Err(RejectReason::RoundNotOpen) };
        if !open.spec.participants.contains(&signer) {
            return Err(RejectReason::NotParticipant);
        }
        let full = open.update_bytes();
        let upload = open.uploads.entry(signer).or_default();
        let fits = values.len() <= full - upload.0.len();
        let finite = decode_values(values).is_some_and(|v| v.iter().all(|x| x.is_finite()));
        if values.is_empty() || !fits || !finite || offset as usize * VALUE_BYTES != upload.0.len() {
            if upload.0.is_empty() {
                open.uploads.remove(&signer);
            }
            return Err(RejectReason::BadUpdate);
        }
        upload.0.extend_from_slice(values);
        if open.complete() >= open.spec.quorum as usize {
            self.close(model_name, CloseCause::Quorum, seq, clock_ms);
        }
        Ok(())
    }

    /// Closes a round early; `authorised`: the signer is the operator.
    pub fn close_by(
        &mut self,
        seq: Seq,
        clock_ms: u64,
        authorised: bool,
        (model_name, round): (&str, u64),
    ) -> Result<(), RejectReason> {
        if self.open_round(model_name, round).is_none() {
            return Err(RejectReason::RoundNotOpen);
        }
        if !authorised {
            return Err(RejectReason::Unauthorized);
        }
        self.close(model_name, CloseCause::Closed, seq, clock_ms);
        Ok(())
    }

    /// Forgets a model and frees everything it holds; `authorised`: the signer is the operator.
    pub fn delete(&mut self, authorised: bool, model: &str) -> Result<(), RejectReason> {
        if !authorised {
            return Err(RejectReason::Unauthorized);
        }
        let m = self.models.remove(model).ok_or(RejectReason::UnknownModel)?;
        self.reserved = self.reserved.saturating_sub(m.charge());
        Ok(())
    }

    /// Closes every round whose deadline committed time has passed.
    pub fn close_expired(&mut self, seq: Seq, clock_ms: u64) {
        let expired: Vec<String> = (self.models.iter())
            .filter(|(_, m)| m.open.as_ref().is_some_and(|o| o.deadline_ms <= clock_ms))
            .map(|(name, _)| name.clone())
            .collect();
        for name in expired {
            self.close(&name, CloseCause::Deadline, seq, clock_ms);
        }
    }

    fn open_round(&mut self, model: &str, round: u64) -> Option<&mut OpenRound> {
        self.models.get_mut(model)?.open.as_mut().filter(|o| o.spec.round == round)
    }

    /// Aggregates the complete updates, commits the result and judges the participants.
    fn close(&mut self, model_name: &str, cause: CloseCause, seq: Seq, clock_ms: u64) {
        let Some(model) = self.models.get_mut(model_name) else { return };
        let Some(open) = model.open.take() else { return };
        let full = open.update_bytes();
        // In the order the opener listed the participants: part of the round's definition.
        let (submitted, vectors): (Vec<PublicKey>, Vec<Vec<f64>>) = (open.spec.participants.iter())
            .filter_map(|k| open.uploads.get(k).filter(|u| u.0.len() == full).map(|u| (*k, u)))
            .map(|(k, u)| (k, decode_values(&u.0).unwrap_or_default()))
            .unzip();
        let missing: Vec<PublicKey> =
            open.spec.participants.iter().filter(|k| !submitted.contains(k)).copied().collect();
        let spec = &open.spec;
        let p = spec.participants.len();
        // Release the uploads and the description; the aggregate's share stays if it replaces
        // `latest`, and the result's while the result is kept.
        self.reserved = self.reserved.saturating_sub(p as u64 * full as u64 + spec_charge(p));
        let result = if vectors.is_empty() {
            Err("no complete update arrived".to_string())
        } else {
            pipeline(spec).and_then(|p| {
                // After bucketing or NNM the rule keeps mixtures, not anyone's own update.
                let mixed = p.pre.iter().any(|x| matches!(x, Pre::Bucketing { .. } | Pre::Nnm));
                let agg = p.aggregate(&vectors, spec.f as usize).map_err(|e| e.to_string())?;
                let kept = agg.kept.filter(|_| !mixed);
                Ok((agg.vector, kept.map(|k| k.iter().map(|&i| submitted[i]).collect::<Vec<_>>())))
            })
        };
        let (outcome, kept) = match result {
            Ok((vector, kept)) => {
                let values = encode_values(&vector);
                let digest = digest(&values);
                if let Some(old) = model.latest.replace(Latest { round: spec.round, values }) {
                    self.reserved = self.reserved.saturating_sub(old.values.len() as u64);
                }
                (RoundOutcome::Aggregated { digest }, kept)
            }
            Err(mut error) => {
                self.reserved = self.reserved.saturating_sub(full as u64);
                // The longest prefix within the limit that ends on a character boundary.
                let cut = (0..=MAX_ERROR_TEXT.min(error.len())).rev().find(|&i| error.is_char_boundary(i));
                error.truncate(cut.unwrap_or(0));
                (RoundOutcome::Refused { error }, None)
            }
        };
        for key in &submitted {
            let s = self.standing.entry(*key).or_default();
            s.submitted += 1;
            if let Some(kept) = &kept {
                s.judge(!kept.contains(key));
            }
        }
        for key in &missing {
            self.standing.entry(*key).or_default().missed += 1;
        }
        if model.results.len() == HISTORY
            && let Some(old) = model.results.pop_front()
        {
            self.reserved =
                self.reserved.saturating_sub(result_charge(old.submitted.len() + old.missing.len()));
        }
        model.results.push_back(RoundResult {
            round: spec.round,
            rule: spec.rule.clone(),
            f: spec.f,
            dim: spec.dim,
            opened_seq: open.opened_seq,
            closed_seq: seq,
            closed_ms: clock_ms,
            cause,
            submitted,
            kept,
            missing,
            outcome,
        });
    }
}
