//! A client of a cluster folder: reads genesis, signs requests with client keys, talks to every
//! node's HTTP API, and accepts a result only on f+1 matching signed replies from distinct
//! voters of the epoch that executed it, verified here. Epochs after genesis are taken only on
//! proofs it checks itself (`membership`). It never trusts a single node. The CLI, the benchmark
//! and agents' tools share it, so its rules are written once.

pub mod decision;
pub mod membership;

pub use membership::Membership;

use phalanx_app::Config;
use phalanx_core::wire::{self, ClientRequest, EpochProof, Operation, Reply, RequestBody, Signed};
use phalanx_crypto::Keypair;
use phalanx_node::api::{RequestJson, outcome_str, unhex};
use phalanx_node::config::{GenesisFile, MemberEntry, NodeFile};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

pub struct Cluster {
    pub dir: PathBuf,
    pub genesis: GenesisFile,
    pub config: Config,
    /// Genesis members, then agents spawned to join (`agent spawn`), by name: whom to ask.
    pub agents: Vec<MemberEntry>,
    /// Whom to believe: the epochs this client verified.
    membership: Mutex<Membership>,
    /// When the client last asked whether an epoch after the latest it knows exists.
    probed: Mutex<Option<Instant>>,
}

/// How often a client asks whether a newer epoch exists before it accepts a result.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// A result accepted on f+1 matching signed replies.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub outcome: String,
    pub seq: u64,
    /// The epoch that executed it; `replicas` are voters of that epoch.
    pub epoch: u64,
    pub replicas: Vec<u32>,
}

pub fn agent(timeout: Duration) -> ureq::Agent {
    let config =
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).build();
    ureq::Agent::with_parts(config, DefaultConnector::default(), LiteralResolver::default())
}

/// Resolves IP-literal hosts (every agent address in genesis.toml is one) in place. ureq's own
/// resolver, when a timeout is set, runs each lookup on a new thread: one thread per request,
/// which cost the benchmark's load generator a fifth of its CPU.
#[derive(Debug, Default)]
struct LiteralResolver(DefaultResolver);

impl Resolver for LiteralResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let literal = uri.authority().and_then(|a| {
            let ip: std::net::IpAddr = a.host().trim_start_matches('[').trim_end_matches(']').parse().ok()?;
            Some(std::net::SocketAddr::new(ip, a.port_u16()?))
        });
        match literal {
            Some(addr) => {
                let mut addrs = self.0.empty();
                addrs.push(addr);
                Ok(addrs)
            }
            None => self.0.resolve(uri, config, timeout),
        }
    }
}

impl Cluster {
    pub fn load(dir: &Path) -> Result<Self, String> {
        let path = dir.join("genesis.toml");
        let genesis = GenesisFile::load(&path).map_err(|e| e.to_string())?;
        let config = genesis.core_config(&path).map_err(|e| e.to_string())?;
        let mut agents = genesis.members.clone();
        agents.extend(spawned_agents(dir, &genesis)?);
        let membership = Mutex::new(Membership::genesis(&config));
        Ok(Cluster { dir: dir.to_path_buf(), genesis, config, agents, membership, probed: Mutex::new(None) })
    }

    /// A copy of the epochs this client has verified.
    pub fn membership(&self) -> Membership {
        self.with_membership(Membership::clone)
    }

    /// Reads the verified epochs in place (no copy).
    fn with_membership<R>(&self, f: impl FnOnce(&Membership) -> R) -> R {
        match self.membership.lock() {
            Ok(m) => f(&m),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// The number of the latest epoch this client has verified.
    fn latest_epoch(&self) -> u64 {
        self.with_membership(|m| m.latest().number)
    }

    /// Learns every epoch up to `target` from the agents' proofs (stops at the first it cannot
    /// prove: it does not exist yet, or nobody proves it).
    pub fn learn_epochs(&self, target: u64) -> Result<(), String> {
        loop {
            let next = self.latest_epoch() + 1;
            if next > target {
                return Ok(());
            }
            let proofs: Vec<EpochProof> = self
                .get_all(&format!("/v1/epochs/{next}"))
                .into_iter()
                .filter_map(|r| r.ok())
                .filter_map(|v| unhex(v.get("proof")?.as_str()?))
                .filter_map(|bytes| wire::decode_value(&bytes).ok())
                .collect();
            let mut m = self.membership.lock().map_err(|_| "membership lock poisoned")?;
            if m.latest().number + 1 == next {
                m.learn(next, &proofs)?;
            }
        }
    }

    /// The agents (indices into `agents`) that vote in the latest epoch this client can verify,
    /// and that epoch's f. Answers that carry no signature (memory reads) count only from these.
    pub fn current_voters(&self) -> (Vec<usize>, usize) {
        // Learns as far as proofs go; the first epoch nobody proves is where it stops.
        let _ = self.learn_epochs(u64::MAX);
        let m = self.membership();
        let e = m.latest();
        let voters = (self.agents.iter().enumerate())
            .filter(|(_, a)| {
                phalanx_crypto::PublicKey::from_hex(&a.public_key)
                    .ok()
                    .and_then(|k| e.id_of(&k))
                    .is_some_and(|id| e.is_voter(id))
            })
            .map(|(i, _)| i)
            .collect();
        (voters, e.f)
    }

    /// Asks (at most every `PROBE_EVERY`) whether an epoch after the latest known exists.
    fn probe_next_epoch(&self) {
        let due = self.probed.lock().map(|mut p| {
            let due = p.is_none_or(|t| t.elapsed() >= PROBE_EVERY);
            if due {
                *p = Some(Instant::now());
            }
            due
        });
        if due.unwrap_or(false) {
            let _ = self.learn_epochs(self.latest_epoch() + 1);
        }
    }

    pub fn n(&self) -> usize {
        self.agents.len()
    }

    pub fn agent(&self, name: &str) -> Option<&MemberEntry> {
        self.agents.iter().find(|m| m.name == name)
    }

    pub fn url(&self, i: usize, path: &str) -> String {
        format!("http://{}{path}", self.agents[i].http_addr)
    }

    pub fn get(&self, i: usize, path: &str) -> Result<Value, String> {
        let mut resp =
            agent(Duration::from_secs(3)).get(&self.url(i, path)).call().map_err(|e| e.to_string())?;
        let text = resp.body_mut().read_to_string().map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| format!("bad JSON from {}: {e}", self.agents[i].name))
    }

    /// Every node's answer to GET `path`, in member order.
    pub fn get_all(&self, path: &str) -> Vec<Result<Value, String>> {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..self.n()).map(|i| s.spawn(move || self.get(i, path))).collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("panicked".into()))).collect()
        })
    }

    /// Agents whose API answers as themselves (not some other cluster on the same ports).
    pub fn members_answering(&self) -> usize {
        self.get_all("/v1/status")
            .iter()
            .zip(&self.agents)
            .filter(|(r, m)| r.as_ref().is_ok_and(|v| v["name"].as_str() == Some(m.name.as_str())))
            .count()
    }

    pub fn client_key(&self, name: &str) -> Result<Keypair, String> {
        let path = self.dir.join("clients").join(format!("{name}.pem"));
        let pem = std::fs::read_to_string(&path)
            .map_err(|e| format!("no key for client {name:?} ({}): {e}", path.display()))?;
        Keypair::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Signs a transfer. Nonces come from the clock (microseconds), so they increase across runs.
    pub fn sign_transfer(
        &self,
        key: &Keypair,
        nonce: u64,
        from: &str,
        to: &str,
        amount: u64,
    ) -> ClientRequest {
        let op = Operation::Transfer { from: from.into(), to: to.into(), amount };
        ClientRequest::sign(RequestBody { client: key.public(), nonce, op }, key, &self.config.cluster_id)
    }

    /// Signs `op` with `key` under a clock nonce, checks its size limits and waits for f+1
    /// matching signed replies.
    pub fn submit_op(&self, key: &Keypair, op: Operation, timeout: Duration) -> Result<Accepted, String> {
        let body = RequestBody { client: key.public(), nonce: clock_nonce(), op };
        let req = ClientRequest::sign(body, key, &self.config.cluster_id);
        wire::check_request(&req).map_err(|e| e.to_string())?;
        self.submit(&req, timeout)
    }

    /// Checks a signed reply for `req` from the agent asked: signed by a voter of the epoch it
    /// names (learning that epoch first if it is new to this client), with an entry for exactly
    /// this request. Returns (voter, outcome, seq, epoch, that epoch's f).
    fn check_reply(&self, req: &ClientRequest, v: &Value) -> Result<(u32, String, u64, u64, usize), String> {
        let bytes = v.get("signed_reply").and_then(Value::as_str).and_then(unhex).ok_or("no signed reply")?;
        let reply: Signed<Reply> = wire::decode_value(&bytes).map_err(|e| format!("bad reply: {e}"))?;
        if reply.body.epoch > self.latest_epoch() {
            self.learn_epochs(reply.body.epoch)?;
        }
        let f = self.with_membership(|m| m.reply_weight(&reply))?;
        let op = req.op_digest();
        let e = reply
            .body
            .entries
            .iter()
            .find(|e| e.client == req.body.client && e.nonce == req.body.nonce && e.op == op)
            .ok_or("the reply does not answer this request")?;
        Ok((reply.from, outcome_str(&e.outcome), reply.body.seq, reply.body.epoch, f))
    }

    /// Sends `req` to every node and waits for f+1 matching verified replies.
    pub fn submit(&self, req: &ClientRequest, timeout: Duration) -> Result<Accepted, String> {
        let created_ms = clock_nonce() / 1000;
        let body = serde_json::to_string(&RequestJson::from_request(req)).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel();
        let status_path = format!("/v1/transactions/{}/{}", req.body.client.to_hex(), req.body.nonce);
        let give_up = std::time::Instant::now() + timeout;
        for i in 0..self.n() {
            let (tx, url, body) = (tx.clone(), self.url(i, "/v1/transactions"), body.clone());
            let status_url = self.url(i, &status_path);
            std::thread::spawn(move || {
                let call = |r: Result<ureq::http::Response<ureq::Body>, ureq::Error>| {
                    r.map_err(|e| e.to_string()).and_then(|mut r| {
                        let code = r.status().as_u16();
                        let text = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
                        Ok((code, text))
                    })
                };
                let http = agent(Duration::from_secs(15));
                let mut r =
                    call(http.post(&url).header("content-type", "application/json").send(body.as_str()));
                // 202: accepted but not executed yet (e.g. during a view change). Ask again
                // rather than give up: a client that resubmitted under a new nonce could pay twice.
                while matches!(r, Ok((202, _)) | Ok((404, _))) && std::time::Instant::now() < give_up {
                    std::thread::sleep(Duration::from_millis(300));
                    r = call(http.get(&status_url).call());
                }
                let _ = tx.send((i, r));
            });
        }
        drop(tx);
        let mut votes: BTreeMap<(String, u64, u64), BTreeSet<u32>> = BTreeMap::new();
        let mut errors = Vec::new();
        let mut weak = self.genesis.max_failures + 1;
        let deadline = std::time::Instant::now() + timeout;
        while let Ok((i, r)) = rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            match r {
                Ok((200, text)) => {
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    match self.check_reply(req, &v) {
                        Ok((from, outcome, seq, epoch, f)) => {
                            weak = f + 1;
                            let set = votes.entry((outcome.clone(), seq, epoch)).or_default();
                            set.insert(from);
                            if set.len() > f && self.executable_in(epoch, created_ms) {
                                return Ok(Accepted {
                                    outcome,
                                    seq,
                                    epoch,
                                    replicas: set.iter().copied().collect(),
                                });
                            }
                        }
                        Err(e) => errors.push(format!("{}: reply not counted: {e}", self.agents[i].name)),
                    }
                }
                Ok((code, text)) => errors.push(format!("{}: HTTP {code} {text}", self.agents[i].name)),
                Err(e) => errors.push(format!("{}: {e}", self.agents[i].name)),
            }
        }
        if errors.is_empty() {
            return Err(format!(
                "no f+1 = {weak} matching signed replies in {} s: no agent executed the request (is the signer \
                 quarantined, or no client of this cluster?)",
                timeout.as_secs()
            ));
        }
        Err(format!("no f+1 = {weak} matching signed replies; {}", errors.join("; ")))
    }
}

impl Cluster {
    /// Whether a request created at `created_ms` can have executed in epoch `n`, after asking
    /// whether a newer epoch exists: replies of an epoch that ended before the request existed
    /// come from members that no longer speak for the cluster.
    fn executable_in(&self, n: u64, created_ms: u64) -> bool {
        if self.latest_epoch() == n {
            self.probe_next_epoch();
        }
        self.with_membership(|m| m.may_have_executed_in(n, created_ms))
    }
}

/// Agents spawned into this cluster folder to join it (`nodes/*.toml` not in genesis), by name.
pub fn spawned_agents(dir: &Path, genesis: &GenesisFile) -> Result<Vec<MemberEntry>, String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir.join("nodes")) else { return Ok(out) };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let node: NodeFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if genesis.member(&node.name).is_some() {
            continue;
        }
        let (Some(replica_addr), Some(http_addr)) = (node.replica_addr, node.http_addr) else {
            return Err(format!("{}: a joining agent needs replica_addr and http_addr", path.display()));
        };
        let key_path = path.parent().unwrap_or(dir).join(&node.key);
        let pem = std::fs::read_to_string(&key_path).map_err(|e| format!("{}: {e}", key_path.display()))?;
        let key = Keypair::from_pem(&pem).map_err(|e| format!("{}: {e}", key_path.display()))?;
        out.push(MemberEntry { name: node.name, public_key: key.public().to_hex(), replica_addr, http_addr });
    }
    Ok(out)
}

/// Percent-encodes one segment of an API path (a memory namespace or key, say).
pub fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn clock_nonce() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}
