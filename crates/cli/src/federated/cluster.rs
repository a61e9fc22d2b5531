//! `phalanx federated --dir ./cluster`: the same training, with every round run by a real
//! cluster. The operator opens each round; every agent (a client account of the cluster) uploads
//! its signed update in chunks; the replicas aggregate when the last update commits; the driver
//! takes the aggregate only when f+1 agents report the same result digest and the values it
//! fetched hash to that digest. At the end it compares every round's digest across all agents.

use phalanx_client::Cluster;
use phalanx_core::wire::federated::encode_values;
use phalanx_core::wire::{FederatedOp, Operation, RoundSpec};
use phalanx_crypto::{Keypair, digest};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long to wait for an operation's f+1 replies, and for agents to report a result.
const WAIT: Duration = Duration::from_secs(30);

pub struct Rounds {
    cluster: Cluster,
    operator: Keypair,
    /// The participants, in aggregation order: (account name, key).
    agents: Vec<(String, Keypair)>,
    template: RoundSpec,
    /// Coordinates per uploaded chunk.
    chunk: usize,
    /// Rounds this run opened.
    pub opened: Vec<u64>,
    /// (agent, round) → the digest (or "refused") the agent reported when the round closed:
    /// the cluster keeps only recent results, so the driver remembers them.
    seen: BTreeMap<(usize, u64), String>,
}

/// What this run's rounds show about every agent.
pub struct Agreement {
    /// Per agent of the cluster: its digest for each round of this run (`None`: no answer).
    pub digests: Vec<(String, Vec<Option<String>>)>,
    /// Participants' standing as f+1 agents report it, in participant order (empty if they
    /// do not agree).
    pub standing: Vec<Value>,
}

impl Agreement {
    /// The most agents that hold one same digest for every round.
    pub fn agreeing(&self) -> usize {
        let mut counts: BTreeMap<&Vec<Option<String>>, usize> = BTreeMap::new();
        for (_, d) in &self.digests {
            *counts.entry(d).or_default() += 1;
        }
        counts.into_iter().filter(|(d, _)| d.iter().all(Option::is_some)).map(|(_, c)| c).max().unwrap_or(0)
    }
}

/// Which round settings the driver uses; the participants and round number are filled in here.
pub struct Settings<'a> {
    pub model: &'a str,
    pub rule: &'a str,
    pub pre: &'a [String],
    pub params: &'a [String],
    pub agents: usize,
    pub faulty: usize,
    pub dim: usize,
    pub timeout: Duration,
    pub chunk: usize,
    pub seed: u64,
}

impl Rounds {
    pub fn connect(dir: &Path, s: &Settings) -> Result<Rounds, String> {
        let cluster = Cluster::load(dir)?;
        if cluster.members_answering() < cluster.genesis.max_failures * 2 + 1 {
            return Err(format!(
                "fewer than 2f+1 agents of {} answer; start it with `phalanx up`",
                dir.display()
            ));
        }
        let operator = crate::operator::operator_key(dir)?;
        let agents = (0..s.agents)
            .map(|i| {
                let name = format!("bench-{i}");
                let key = cluster.client_key(&name).map_err(|e| {
                    format!(
                        "{e}: --agents {} needs client accounts bench-0 … bench-{}",
                        s.agents,
                        s.agents - 1
                    )
                })?;
                Ok((name, key))
            })
            .collect::<Result<Vec<_>, String>>()?;
        if !(1..=phalanx_core::wire::limits::MAX_UPDATE_CHUNK_BYTES / 8).contains(&s.chunk) {
            return Err(format!("--chunk must be between 1 and 8192 coordinates, got {}", s.chunk));
        }
        let template = RoundSpec {
            model: s.model.to_string(),
            round: 0,
            rule: s.rule.to_string(),
            pre: s.pre.to_vec(),
            params: s.params.to_vec(),
            f: s.faulty as u32,
            dim: s.dim as u32,
            participants: agents.iter().map(|(_, k)| k.public()).collect(),
            quorum: s.agents as u32,
            timeout_ms: s.timeout.as_millis() as u64,
            seed: s.seed,
        };
        Ok(Rounds {
            cluster,
            operator,
            agents,
            template,
            chunk: s.chunk,
            opened: Vec::new(),
            seen: BTreeMap::new(),
        })
    }

    pub fn max_failures(&self) -> usize {
        self.cluster.genesis.max_failures
    }

    fn weak(&self) -> usize {
        self.max_failures() + 1
    }

    /// The model's last round number: the highest that f+1 agents report (at least one honest
    /// agent has executed it), 0 for a model they do not know.
    fn last_round(&self) -> Result<u64, String> {
        let path = format!("/v1/federated/{}", self.template.model);
        let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
        for r in self.cluster.get_all(&path) {
            let Ok(v) = r else { continue };
            let unknown = v["error"].as_str().is_some_and(|e| e.starts_with("no federated model"));
            let last = if unknown { Some(0) } else { v["last_round"].as_u64() };
            if let Some(last) = last {
                *votes.entry(last).or_default() += 1;
            }
        }
        (votes.into_iter().rev().find(|(_, c)| *c >= self.weak()).map(|(r, _)| r)).ok_or_else(|| {
            format!("f+1 agents do not agree on the last round of model {:?}", self.template.model)
        })
    }

    /// Runs one round with these updates (in participant order): `Some(aggregate)`, or `None`
    /// when the rule refused them.
    pub fn run(&mut self, updates: &[Vec<f64>]) -> Result<Option<Vec<f64>>, String> {
        let round = self.last_round()? + 1;
        let spec = RoundSpec { round, ..self.template.clone() };
        let open = Operation::Federated(FederatedOp::Open(Box::new(spec)));
        let acc = self.cluster.submit_op(&self.operator, open, WAIT)?;
        if acc.outcome != "applied" {
            return Err(format!("opening round {round}: {}", acc.outcome));
        }
        self.opened.push(round);
        self.upload(round, updates)?;
        if updates.len() < self.agents.len() {
            // Some agents had nothing to send (an attack with no finite vector): the quorum of
            // all agents will not fill, so the operator closes the round with what arrived.
            let close = FederatedOp::Close { model: self.template.model.clone(), round };
            self.cluster.submit_op(&self.operator, Operation::Federated(close), WAIT)?;
        }
        self.result(round)
    }

    /// Every agent uploads its update in chunks, the agents in parallel.
    fn upload(&self, round: u64, updates: &[Vec<f64>]) -> Result<(), String> {
        let model = &self.template.model;
        std::thread::scope(|s| {
            let handles: Vec<_> = (self.agents.iter().zip(updates))
                .map(|((name, key), update)| {
                    s.spawn(move || {
                        for (i, values) in update.chunks(self.chunk).enumerate() {
                            let op = FederatedOp::Submit {
                                model: model.clone(),
                                round,
                                offset: (i * self.chunk) as u32,
                                values: encode_values(values),
                            };
                            let acc = self.cluster.submit_op(key, Operation::Federated(op), WAIT)?;
                            if acc.outcome != "applied" {
                                return Err(format!("{name}'s chunk {i} of round {round}: {}", acc.outcome));
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            handles.into_iter().try_for_each(|h| h.join().unwrap_or_else(|_| Err("uploader panicked".into())))
        })
    }

    /// Waits until f+1 agents report the same result for `round`, then fetches the aggregate
    /// and checks it against that digest.
    fn result(&mut self, round: u64) -> Result<Option<Vec<f64>>, String> {
        let path = format!("/v1/federated/{}", self.template.model);
        let give_up = Instant::now() + WAIT;
        loop {
            let mut votes: BTreeMap<(Option<String>, Option<String>), BTreeSet<usize>> = BTreeMap::new();
            for (i, r) in self.cluster.get_all(&path).into_iter().enumerate() {
                let Ok(v) = r else { continue };
                let last = &v["last_result"];
                if last["round"].as_u64() == Some(round) {
                    let key =
                        (last["digest"].as_str().map(String::from), last["error"].as_str().map(String::from));
                    self.seen.insert((i, round), key.0.clone().unwrap_or_else(|| "refused".into()));
                    votes.entry(key).or_default().insert(i);
                }
            }
            if let Some(((d, error), who)) = votes.into_iter().find(|(_, who)| who.len() >= self.weak()) {
                return match (d, error) {
                    (Some(d), _) => self.fetch(round, &d, &who).map(Some),
                    (None, _) => Ok(None),
                };
            }
            if Instant::now() > give_up {
                return Err(format!("f+1 agents did not report a result for round {round}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The aggregate of `round` from one of the agents that confirmed `expected`, checked.
    fn fetch(&self, round: u64, expected: &str, from: &BTreeSet<usize>) -> Result<Vec<f64>, String> {
        let path = format!("/v1/federated/{}/aggregate", self.template.model);
        for &i in from {
            let Ok(v) = self.cluster.get(i, &path) else { continue };
            let Some(bytes) = v["values_hex"].as_str().and_then(phalanx_node::api::unhex) else { continue };
            if v["round"].as_u64() == Some(round) && digest(&bytes).to_hex() == expected {
                return phalanx_core::wire::federated::decode_values(&bytes)
                    .ok_or_else(|| "aggregate of partial values".to_string());
            }
        }
        Err(format!("no agent served round {round}'s aggregate with digest {expected}"))
    }

    /// Every agent's digests for this run's rounds: what it reported as each round closed, or
    /// else what it still keeps (waiting a while for laggards).
    pub fn agreement(&self) -> Agreement {
        let path = format!("/v1/federated/{}", self.template.model);
        let last = self.opened.last().copied().unwrap_or(0);
        let give_up = Instant::now() + Duration::from_secs(10);
        let answers = loop {
            let answers = self.cluster.get_all(&path);
            let caught_up = |r: &Result<Value, String>| {
                r.as_ref().is_ok_and(|v| v["last_result"]["round"].as_u64() == Some(last))
            };
            if answers.iter().all(caught_up) || Instant::now() > give_up {
                break answers;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let digests = (self.cluster.agents.iter().zip(answers).enumerate())
            .map(|(i, (agent, r))| {
                let results = r.ok().and_then(|v| v["results"].as_array().cloned()).unwrap_or_default();
                let of = |round: u64| {
                    if let Some(d) = self.seen.get(&(i, round)) {
                        return Some(d.clone());
                    }
                    let r = results.iter().find(|r| r["round"].as_u64() == Some(round))?;
                    Some(r["digest"].as_str().map_or_else(|| "refused".to_string(), String::from))
                };
                (agent.name.clone(), self.opened.iter().map(|&round| of(round)).collect())
            })
            .collect();
        // The standing f+1 agents report identically (at least one of them honest).
        let mut votes: BTreeMap<String, (usize, Vec<Value>)> = BTreeMap::new();
        for v in self.cluster.get_all("/v1/federated").into_iter().flatten() {
            let agents = v["agents"].as_array().cloned().unwrap_or_default();
            votes.entry(Value::Array(agents.clone()).to_string()).or_insert((0, agents)).0 += 1;
        }
        let reported =
            (votes.into_values().find(|(c, _)| *c >= self.weak()).map(|(_, a)| a)).unwrap_or_default();
        let standing = (self.agents.iter())
            .filter_map(|(_, k)| reported.iter().find(|a| a["key"].as_str() == Some(&k.public().to_hex())))
            .cloned()
            .collect();
        Agreement { digests, standing }
    }
}

/// Forgets `model` on the cluster in `dir` (signed by the operator); the outcome f+1 agents
/// report.
pub fn delete(dir: &Path, model: &str) -> Result<String, String> {
    let cluster = Cluster::load(dir)?;
    let operator = crate::operator::operator_key(dir)?;
    let op = Operation::Federated(FederatedOp::Delete { model: model.to_string() });
    Ok(cluster.submit_op(&operator, op, WAIT)?.outcome)
}

/// The agreement as JSON (for `--json`).
pub fn agreement_json(a: &Agreement, rounds: &[u64]) -> Value {
    json!({
        "rounds": rounds,
        "agents_agreeing": a.agreeing(),
        "digests": a.digests.iter().map(|(n, d)| json!({"agent": n, "digests": d})).collect::<Vec<_>>(),
        "standing": a.standing,
    })
}
