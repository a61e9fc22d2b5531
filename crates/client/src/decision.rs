//! Reading a decision without trusting one node: the record must be the same on f+1 voters of
//! the current epoch, and a closed decision must come with the commit certificate of the batch
//! that closed it, which the client checks itself.

use crate::Cluster;
use phalanx_app::decisions::Decision;
use phalanx_core::consensus::certs::commits_certify;
use phalanx_core::wire::{self, CommitCert, DecisionOp, Operation};
use phalanx_crypto::{Keypair, PublicKey, verify_one};
use phalanx_node::api::unhex;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A decision confirmed by f+1 agents, and checked against its proof once closed.
#[derive(Debug)]
pub struct Checked {
    /// The record as one of the agreeing agents rendered it.
    pub record: Value,
    pub decision: Decision,
    /// The agents whose records matched.
    pub confirmed_by: Vec<String>,
    /// For a closed decision: the seq and epoch of the certified batch that closed it, and how
    /// many voters signed its commit certificate.
    pub proof: Option<Proof>,
}

#[derive(Clone, Debug)]
pub struct Proof {
    pub seq: u64,
    pub epoch: u64,
    pub signers: usize,
    /// `ballot` (the closing ballot is in the certified batch, signed by its voter) or
    /// `deadline` (the certified batch's time is past the deadline).
    pub closed_by: &'static str,
}

impl Cluster {
    /// A key by name: `operator`, an agent (`keys/NAME.pem`) or a client (`clients/NAME.pem`).
    pub fn signer_key(&self, name: &str) -> Result<Keypair, String> {
        let path = if name == "operator" || self.agents.iter().any(|a| a.name == name) {
            self.dir.join("keys").join(format!("{name}.pem"))
        } else {
            self.dir.join("clients").join(format!("{name}.pem"))
        };
        let pem = std::fs::read_to_string(&path)
            .map_err(|e| format!("no key for {name:?} ({}): {e}", path.display()))?;
        Keypair::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A public key by name (an agent of the cluster, a client with a key file, `operator`) or
    /// as 64 hex characters.
    pub fn public_key(&self, name: &str) -> Result<PublicKey, String> {
        if let Some(a) = self.agents.iter().find(|a| a.name == name) {
            return PublicKey::from_hex(&a.public_key).map_err(|e| format!("{name}: {e}"));
        }
        if name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()) {
            return PublicKey::from_hex(name).map_err(|e| format!("{name}: {e}"));
        }
        self.signer_key(name).map(|k| k.public())
    }

    /// Decision `id`, once f+1 voters of the current epoch hold the same record (asking again
    /// until `timeout`, as agents at different heights converge), with its proof checked.
    pub fn decision(&self, id: &str, timeout: Duration) -> Result<Checked, String> {
        wire::decision::check_id(id).map_err(|e| e.to_string())?;
        let give_up = Instant::now() + timeout;
        loop {
            match self.decision_once(id) {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() >= give_up => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn decision_once(&self, id: &str) -> Result<Checked, String> {
        let (voters, f) = self.current_voters();
        let mut same: BTreeMap<String, Vec<(usize, Value)>> = BTreeMap::new();
        let mut missing = 0;
        for (i, r) in self.get_all(&format!("/v1/decisions/{id}")).into_iter().enumerate() {
            if !voters.contains(&i) {
                continue;
            }
            match r {
                Ok(v) if v.get("encoded").is_some_and(Value::is_string) => {
                    // The whole record must match, not only its encoding: what is shown (names,
                    // dissent, tally) is then what f+1 agents said, not one agent's rendering.
                    let mut shown = v.clone();
                    if let Some(o) = shown.as_object_mut() {
                        for own in ["replica", "executed_seq", "proof"] {
                            o.remove(own);
                        }
                    }
                    same.entry(shown.to_string()).or_default().push((i, v));
                }
                Ok(v) if v.get("error").is_some() => missing += 1,
                _ => {}
            }
        }
        if missing > f {
            return Err(format!("no decision {id:?}: {missing} agents hold none"));
        }
        let Some((_, answers)) = same.into_iter().find(|(_, a)| a.len() > f) else {
            return Err(format!("fewer than f+1 = {} agents agree on decision {id:?} yet", f + 1));
        };
        let encoded = answers[0].1["encoded"].as_str().unwrap_or_default();
        let bytes = unhex(encoded).ok_or("an agent sent a record that is not hex")?;
        let decision: Decision =
            wire::decode_value(&bytes).map_err(|e| format!("undecodable record: {e}"))?;
        let confirmed_by = answers.iter().map(|(i, _)| self.agents[*i].name.clone()).collect();
        let record = answers[0].1.clone();
        let proof = match &decision.outcome {
            None => None,
            Some(_) => {
                // Any agent's certificate will do: it proves itself. Ask every agent that had one.
                let mut errors = Vec::new();
                let mut found = None;
                for r in self.get_all(&format!("/v1/decisions/{id}")).into_iter().flatten() {
                    let Some(hex) = r.get("proof").and_then(Value::as_str) else { continue };
                    match self.check_proof(&decision, hex) {
                        Ok(p) => {
                            found = Some(p);
                            break;
                        }
                        Err(e) => errors.push(e),
                    }
                }
                let proof = found.ok_or_else(|| {
                    format!("decision {id:?} closed, but no agent sent a valid proof: {}", errors.join("; "))
                })?;
                Some(proof)
            }
        };
        Ok(Checked { record, decision, confirmed_by, proof })
    }

    /// Checks that `hex` is a commit certificate, signed by a quorum of the epoch that ordered
    /// it, of the batch at the seq that closed `d`, and that this batch closed it.
    fn check_proof(&self, d: &Decision, hex: &str) -> Result<Proof, String> {
        let Some(outcome) = &d.outcome else { return Err("the decision is open".into()) };
        let bytes = unhex(hex).ok_or("proof: not hex")?;
        let cert: CommitCert = wire::decode_value(&bytes).map_err(|e| format!("proof: {e}"))?;
        let first = cert.commits.first().ok_or("proof: no commits")?;
        let (seq, epoch_no) = (first.body.seq, first.body.epoch);
        if seq != outcome.seq {
            return Err(format!("proof: certifies seq {seq}, the decision closed at {}", outcome.seq));
        }
        if epoch_no > self.membership().latest().number {
            self.learn_epochs(epoch_no)?;
        }
        let m = self.membership();
        let epoch = m
            .epoch(epoch_no)
            .ok_or_else(|| format!("proof: epoch {epoch_no} is not proven to this client"))?;
        if !commits_certify(&self.config.cluster_id, epoch, &cert) {
            return Err(format!("proof: not a valid commit certificate of epoch {epoch_no}"));
        }
        let closed_by = match outcome.closed_by {
            Some((voter, nonce)) => {
                let ballot = cert.batch.requests.iter().find(|r| {
                    r.body.client == voter
                        && r.body.nonce == nonce
                        && matches!(&r.body.op, Operation::Decision(DecisionOp::Vote(v)) if v.id == d.spec.id)
                });
                let ballot = ballot.ok_or("proof: the closing ballot is not in the certified batch")?;
                let signed = ballot
                    .verify_item(&self.config.cluster_id)
                    .is_some_and(|it| verify_one(&it.key, &it.message, &it.signature));
                if !signed {
                    return Err("proof: the closing ballot's signature does not verify".into());
                }
                "ballot"
            }
            None if cert.batch.timestamp_ms >= d.closes_ms => "deadline",
            None => return Err("proof: the certified batch is earlier than the deadline".into()),
        };
        Ok(Proof { seq, epoch: epoch_no, signers: cert.commits.len(), closed_by })
    }
}

/// A read confirmed by f+1 voters of the current epoch.
#[derive(Debug)]
pub struct Confirmed {
    /// One of the matching answers, as that agent sent it.
    pub answer: Value,
    pub confirmed_by: Vec<String>,
}

impl Cluster {
    /// GETs `path` from every agent and returns once f+1 voters of the current epoch sent
    /// answers with the same `key` (what must match: the answer minus fields that differ from
    /// agent to agent, like its own id). Answers with an `error` match each other too, so a
    /// confirmed absence is an answer. Asks again until `timeout`, as agents converge.
    pub fn read_confirmed(
        &self,
        path: &str,
        key: impl Fn(&Value) -> Value,
        timeout: Duration,
    ) -> Result<Confirmed, String> {
        let give_up = Instant::now() + timeout;
        loop {
            let (voters, f) = self.current_voters();
            let mut groups: BTreeMap<String, Vec<(usize, Value)>> = BTreeMap::new();
            let mut errors = Vec::new();
            for (i, r) in self.get_all(path).into_iter().enumerate() {
                if !voters.contains(&i) {
                    continue;
                }
                match r {
                    Ok(v) => {
                        let k = if v.get("error").is_some() { v["error"].clone() } else { key(&v) };
                        groups.entry(k.to_string()).or_default().push((i, v));
                    }
                    Err(e) => errors.push(format!("{}: {e}", self.agents[i].name)),
                }
            }
            if let Some((_, answers)) = groups.into_iter().find(|(_, a)| a.len() > f) {
                let confirmed_by = answers.iter().map(|(i, _)| self.agents[*i].name.clone()).collect();
                return Ok(Confirmed { answer: answers[0].1.clone(), confirmed_by });
            }
            if Instant::now() >= give_up {
                let detail =
                    if errors.is_empty() { String::new() } else { format!(": {}", errors.join("; ")) };
                return Err(format!("fewer than f+1 = {} agents agree on {path}{detail}", f + 1));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
