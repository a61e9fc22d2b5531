//! `phalanx mcp --dir D --agent NAME`: a Model Context Protocol server on stdio, so an agent
//! runtime can use the cluster as tools. Every tool signs with the agent's own key and follows
//! the client rules: a write is accepted on f+1 matching signed replies, a read when f+1
//! voters of the current epoch agree, a decision's outcome only with its proof checked.
//! stdout carries the protocol; logs go to stderr.

use clap::Args;
use phalanx_client::{Cluster, path_segment};
use phalanx_core::wire::{DecisionOp, DecisionRule, DecisionSpec, Operation};
use phalanx_crypto::Keypair;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{ServiceExt, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct McpArgs {
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    /// Whose key signs: an agent of the cluster (`keys/NAME.pem`) or a client (`clients/NAME.pem`).
    #[arg(long)]
    agent: String,
}

/// How long a tool waits for f+1 agents.
const WAIT: Duration = Duration::from_secs(20);
const READ_WAIT: Duration = Duration::from_secs(10);

pub fn run(a: McpArgs) -> Result<ExitCode, String> {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
    let cluster = Cluster::load(&a.dir)?;
    let key = cluster.signer_key(&a.agent)?;
    tracing::info!(agent = %a.agent, dir = %a.dir.display(), "phalanx MCP server on stdio");
    let server = Tools::new(cluster, key, a.agent);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let service = server.serve(rmcp::transport::stdio()).await.map_err(|e| format!("MCP: {e}"))?;
        service.waiting().await.map_err(|e| format!("MCP: {e}"))?;
        Ok::<_, String>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone)]
pub struct Tools {
    cluster: Arc<Cluster>,
    key: Arc<Keypair>,
    agent: String,
    tool_router: ToolRouter<Self>,
}

// Inputs.

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionOpenInput {
    /// 1 to 64 letters, digits, '.', '_' or '-'.
    pub id: String,
    pub question: String,
    /// The choices; leave empty for free-form results compared by digest (rule f+1-matching).
    #[serde(default)]
    pub options: Vec<String>,
    /// Who may vote: agent names, client names or public keys in hex.
    pub voters: Vec<String>,
    /// majority, two-thirds, unanimous or f+1-matching.
    #[serde(default = "majority")]
    pub rule: String,
    /// With f+1-matching: how many voters may report a wrong result.
    pub f: Option<u32>,
    /// Weigh ballots by each voter's committed record.
    #[serde(default)]
    pub weighted: bool,
    /// Seconds of replicated time until the decision closes (at most 30 days).
    #[serde(default = "ten_minutes")]
    pub deadline_secs: u64,
}

fn majority() -> String {
    "majority".into()
}

fn ten_minutes() -> u64 {
    600
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionVoteInput {
    pub id: String,
    /// The option chosen (decisions with options).
    pub option: Option<String>,
    /// A result as text; its BLAKE3 digest is the ballot (free-form decisions).
    pub result: Option<String>,
    /// A result's BLAKE3 digest, 64 hex characters, instead of `result`.
    pub result_digest: Option<String>,
    /// Vote for no option.
    #[serde(default)]
    pub abstain: bool,
    /// Where the full result is stored (a shared-memory namespace/key, say).
    #[serde(default)]
    pub location: String,
    /// Why (kept with the record; at most 256 bytes).
    #[serde(default)]
    pub reason: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionIdInput {
    pub id: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryStoreInput {
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub key: String,
    pub value: String,
    /// Expire after this many seconds of replicated time.
    pub ttl_secs: Option<u64>,
}

fn default_namespace() -> String {
    "default".into()
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryKeyInput {
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub key: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespaceInput {
    #[serde(default = "default_namespace")]
    pub namespace: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferInput {
    /// The source account; it must belong to this agent's key.
    pub from: String,
    pub to: String,
    pub amount: u64,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountInput {
    pub account: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TailInput {
    /// Only the last this many entries.
    pub tail: Option<usize>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoInput {}

// Outputs.

/// A signed operation applied by the cluster, accepted on f+1 matching signed replies (a
/// rejection is a tool error that names its reason).
#[derive(Serialize, JsonSchema)]
pub struct Submitted {
    /// `applied`.
    pub outcome: String,
    /// Where it executed.
    pub seq: u64,
    pub epoch: u64,
    /// The ids of the voters whose signed replies matched.
    pub replicas: Vec<u32>,
}

#[derive(Serialize, JsonSchema)]
pub struct TallyLine {
    pub choice: String,
    pub voters: u64,
    pub weight: u64,
}

#[derive(Serialize, JsonSchema)]
pub struct BallotLine {
    pub voter: String,
    pub choice: String,
    pub reason: String,
    pub location: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct DoubleVote {
    pub voter: String,
    pub first: String,
    pub second: String,
    /// The identity of the evidence (its two signed ballots) committed to the detection log.
    pub evidence_id: String,
}

#[derive(Serialize, JsonSchema)]
pub struct ProofChecked {
    /// The seq of the certified batch that closed the decision.
    pub seq: u64,
    pub epoch: u64,
    /// COMMIT signatures in its certificate (at least 2f+1).
    pub commit_signers: u64,
    /// `ballot` or `deadline`.
    pub closed_by: String,
}

/// A decision as f+1 agents hold it, its proof checked by this server.
#[derive(Serialize, JsonSchema)]
pub struct DecisionResult {
    pub id: String,
    pub question: String,
    pub rule: String,
    /// `open`, `decided` or `no-decision`.
    pub status: String,
    pub winner: Option<String>,
    /// Why it closed: `rule met`, `rule can no longer be met`, `deadline passed`.
    pub reason: Option<String>,
    pub tally: Vec<TallyLine>,
    pub ballots: Vec<BallotLine>,
    /// Ballots for anything but the winner, with their reasons.
    pub dissent: Vec<BallotLine>,
    pub abstained: Vec<String>,
    pub not_voted: Vec<String>,
    pub late: Vec<BallotLine>,
    pub double_votes: Vec<DoubleVote>,
    pub confirmed_by: Vec<String>,
    /// Present once the decision closed.
    pub proof: Option<ProofChecked>,
}

#[derive(Serialize, JsonSchema)]
pub struct MemoryValue {
    pub namespace: String,
    pub key: String,
    pub found: bool,
    pub value: Option<String>,
    pub stored_seq: Option<u64>,
    pub confirmed_by: Vec<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct MemoryKey {
    pub key: String,
    pub stored_seq: u64,
}

#[derive(Serialize, JsonSchema)]
pub struct MemoryKeys {
    pub namespace: String,
    pub keys: Vec<MemoryKey>,
    /// More keys exist than the 1000 listed.
    pub truncated: bool,
    pub confirmed_by: Vec<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct Balance {
    pub account: String,
    pub balance: u64,
    /// The owner's public key, hex.
    pub owner: String,
    pub confirmed_by: Vec<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct Health {
    /// `healthy` or `degraded`.
    pub status: String,
    pub healthy: bool,
    pub healthy_agents: u64,
    pub total_agents: u64,
    pub quorum_threshold: u64,
    pub quorum_met: bool,
    pub transactions_committed: u64,
    pub transactions_rejected: u64,
    pub malicious_detected: u64,
    /// `verified` when every agent at one height holds one state digest.
    pub system_integrity: String,
    pub quarantined: Vec<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct DetectionEntry {
    pub seq: u64,
    pub timestamp: u64,
    pub detected_agent: String,
    pub fault_type: String,
    pub detection_method: String,
    pub evidence: String,
    pub reported_by: String,
    pub action: String,
}

#[derive(Serialize, JsonSchema)]
pub struct DetectionLog {
    /// Entries ever logged (the log keeps the latest).
    pub total: u64,
    pub entries: Vec<DetectionEntry>,
    pub confirmed_by: Vec<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct Agent {
    pub name: String,
    /// `primary`, `backup`, `standby`, …
    pub role: String,
    /// `healthy`, `quarantined`, …
    pub status: String,
}

#[derive(Serialize, JsonSchema)]
pub struct Agents {
    pub agents: Vec<Agent>,
    pub confirmed_by: Vec<String>,
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn ballots(v: &Value) -> Vec<BallotLine> {
    (v.as_array().into_iter().flatten())
        .map(|b| BallotLine {
            voter: text(&b["voter"]),
            choice: text(&b["choice"]),
            reason: text(&b["reason"]),
            location: b["location"].as_str().map(str::to_string),
        })
        .collect()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().map(text).collect()
}

impl Tools {
    fn new(cluster: Cluster, key: Keypair, agent: String) -> Self {
        Tools { cluster: Arc::new(cluster), key: Arc::new(key), agent, tool_router: Self::tool_router() }
    }

    /// Runs a blocking client call off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Cluster, &Keypair) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let (cluster, key) = (self.cluster.clone(), self.key.clone());
        tokio::task::spawn_blocking(move || f(&cluster, &key)).await.map_err(|e| format!("internal: {e}"))?
    }

    /// Signs `op` with the agent's key and waits for f+1 matching signed replies. A rejection
    /// the cluster committed is a tool error that says why, with the seq it executed at.
    async fn submit(&self, op: Operation) -> Result<Json<Submitted>, String> {
        let agent = self.agent.clone();
        let acc = self.blocking(move |c, k| c.submit_op(k, op, WAIT)).await?;
        tracing::info!(agent, outcome = acc.outcome, seq = acc.seq, "submitted");
        if acc.outcome != "applied" {
            let hint = hint(&acc.outcome).map(|h| format!(": {h}")).unwrap_or_default();
            return Err(format!(
                "{} (committed at seq {}, confirmed by {} signed replies){hint}",
                acc.outcome,
                acc.seq,
                acc.replicas.len()
            ));
        }
        Ok(Json(Submitted { outcome: acc.outcome, seq: acc.seq, epoch: acc.epoch, replicas: acc.replicas }))
    }
}

/// What to do about a rejection.
fn hint(outcome: &str) -> Option<&'static str> {
    crate::decision::hint(outcome).or(Some(match outcome.strip_prefix("rejected:")? {
        "bad-signature" => {
            "the source account belongs to another key: an agent spends only from accounts its key owns"
        }
        "overdraft" => "the source account cannot cover the amount",
        "unknown-account" => "no such account",
        "invalid-amount" => "the amount must be above zero, between two different accounts",
        "not-owner" => {
            "the key belongs to the agent that first wrote it; write under your own key or a shared namespace"
        }
        "memory-quota" => {
            "this agent used its share of the shared memory; let entries expire or overwrite its own keys"
        }
        "memory-full" => "the shared memory is full",
        "unauthorized" => "this agent may not do that (quarantined, or not the operator)",
        _ => return None,
    }))
}

#[tool_router(router = tool_router)]
impl Tools {
    #[tool(
        description = "Open a decision the agents vote on: a question, its options (none for free-form results), \
        the voters, a rule (majority, two-thirds, unanimous, f+1-matching) and a deadline. Signed with this agent's key; \
        accepted on f+1 matching signed replies."
    )]
    async fn decision_open(
        &self,
        Parameters(p): Parameters<DecisionOpenInput>,
    ) -> Result<Json<Submitted>, String> {
        let rule = DecisionRule::parse(&p.rule, p.f)?;
        let cluster = self.cluster.clone();
        let voters = tokio::task::spawn_blocking(move || {
            p.voters.iter().map(|v| cluster.public_key(v.trim())).collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| format!("internal: {e}"))??;
        let spec = DecisionSpec {
            id: p.id,
            question: p.question,
            options: p.options,
            voters,
            rule,
            weighted: p.weighted,
            deadline_ms: p.deadline_secs.saturating_mul(1000),
        };
        self.submit(Operation::Decision(DecisionOp::Open(Box::new(spec)))).await
    }

    #[tool(
        description = "Cast this agent's ballot on a decision: one of `option`, `result` (text, hashed), \
        `result_digest` or `abstain`, with a reason. A second, different ballot voids both and is committed as evidence."
    )]
    async fn decision_vote(
        &self,
        Parameters(p): Parameters<DecisionVoteInput>,
    ) -> Result<Json<Submitted>, String> {
        let ballot = crate::decision::ballot(p.option, p.result, p.result_digest, p.abstain, p.location)?;
        self.submit(Operation::Decision(DecisionOp::vote(p.id, ballot, p.reason))).await
    }

    #[tool(
        description = "A decision's record as f+1 agents hold it: status, winner, tally, every ballot with its \
        reason, the dissent, abstentions, late ballots, double voters caught, and the proof of how it closed \
        (a commit certificate this server checked)."
    )]
    async fn decision_result(
        &self,
        Parameters(p): Parameters<DecisionIdInput>,
    ) -> Result<Json<DecisionResult>, String> {
        let checked = self.blocking(move |c, _| c.decision(&p.id, READ_WAIT)).await?;
        let r = &checked.record;
        let o = &r["outcome"];
        Ok(Json(DecisionResult {
            id: text(&r["id"]),
            question: text(&r["question"]),
            rule: text(&r["rule"]),
            status: text(&r["status"]),
            winner: r["winner"].as_str().map(str::to_string),
            reason: o["reason"].as_str().map(str::to_string),
            tally: (o["tally"].as_array().into_iter().flatten())
                .map(|t| TallyLine {
                    choice: text(&t["choice"]),
                    voters: t["voters"].as_u64().unwrap_or(0),
                    weight: t["weight"].as_u64().unwrap_or(0),
                })
                .collect(),
            ballots: ballots(&r["ballots"]),
            dissent: ballots(&r["dissent"]),
            abstained: names(&r["abstained"]),
            not_voted: names(&r["not_voted"]),
            late: ballots(&r["late"]),
            double_votes: (r["double_votes"].as_array().into_iter().flatten())
                .map(|d| DoubleVote {
                    voter: text(&d["voter"]),
                    first: text(&d["first"]),
                    second: text(&d["second"]),
                    evidence_id: text(&d["evidence_id"]),
                })
                .collect(),
            confirmed_by: checked.confirmed_by,
            proof: checked.proof.map(|p| ProofChecked {
                seq: p.seq,
                epoch: p.epoch,
                commit_signers: p.signers as u64,
                closed_by: p.closed_by.into(),
            }),
        }))
    }

    #[tool(
        description = "Store a value in the replicated shared memory under this agent's key (a key belongs to \
        the agent that first wrote it unless its namespace is shared). Optional expiry in seconds."
    )]
    async fn memory_store(
        &self,
        Parameters(p): Parameters<MemoryStoreInput>,
    ) -> Result<Json<Submitted>, String> {
        let op = Operation::MemoryStore {
            namespace: p.namespace,
            key: p.key,
            value: p.value,
            ttl_ms: p.ttl_secs.map(|s| s.saturating_mul(1000)),
        };
        self.submit(op).await
    }

    #[tool(
        description = "Read a value from the shared memory, as f+1 agents hold it (found=false when f+1 agree \
        there is none)."
    )]
    async fn memory_retrieve(
        &self,
        Parameters(p): Parameters<MemoryKeyInput>,
    ) -> Result<Json<MemoryValue>, String> {
        let path = format!("/v1/memory/{}/{}", path_segment(&p.namespace), path_segment(&p.key));
        let read = self
            .blocking(move |c, _| {
                c.read_confirmed(&path, |v| serde_json::json!([v["value"], v["stored_seq"]]), READ_WAIT)
            })
            .await?;
        let v = &read.answer;
        let found = v.get("error").is_none();
        Ok(Json(MemoryValue {
            namespace: p.namespace,
            key: p.key,
            found,
            value: v["value"].as_str().map(str::to_string),
            stored_seq: v["stored_seq"].as_u64(),
            confirmed_by: read.confirmed_by,
        }))
    }

    #[tool(
        description = "The live keys of a shared-memory namespace (at most 1000), as f+1 agents hold them."
    )]
    async fn memory_list(
        &self,
        Parameters(p): Parameters<NamespaceInput>,
    ) -> Result<Json<MemoryKeys>, String> {
        let path = format!("/v1/memory/{}", path_segment(&p.namespace));
        let read =
            self.blocking(move |c, _| c.read_confirmed(&path, |v| v["keys"].clone(), READ_WAIT)).await?;
        if let Some(e) = read.answer.get("error") {
            return Err(text(e));
        }
        let keys = (read.answer["keys"].as_array().into_iter().flatten())
            .map(|k| MemoryKey { key: text(&k["key"]), stored_seq: k["stored_seq"].as_u64().unwrap_or(0) })
            .collect();
        Ok(Json(MemoryKeys {
            namespace: p.namespace,
            keys,
            truncated: read.answer["truncated"] == true,
            confirmed_by: read.confirmed_by,
        }))
    }

    #[tool(description = "Transfer from an account this agent's key owns to another account (no overdraft).")]
    async fn ledger_transfer(
        &self,
        Parameters(p): Parameters<TransferInput>,
    ) -> Result<Json<Submitted>, String> {
        self.submit(Operation::Transfer { from: p.from, to: p.to, amount: p.amount }).await
    }

    #[tool(description = "An account's balance and owner, as f+1 agents hold them.")]
    async fn ledger_balance(&self, Parameters(p): Parameters<AccountInput>) -> Result<Json<Balance>, String> {
        let name = p.account.clone();
        let read = self
            .blocking(move |c, _| {
                let find = move |v: &Value| -> Value {
                    (v["accounts"].as_array().into_iter().flatten())
                        .find(|a| a["name"] == name.as_str())
                        .cloned()
                        .unwrap_or(Value::Null)
                };
                c.read_confirmed("/v1/accounts", find, READ_WAIT)
            })
            .await?;
        let account = (read.answer["accounts"].as_array().into_iter().flatten())
            .find(|a| a["name"] == p.account.as_str())
            .ok_or_else(|| {
                format!("no account {:?} (confirmed by {} agents)", p.account, read.confirmed_by.len())
            })?;
        Ok(Json(Balance {
            account: p.account,
            balance: account["balance"].as_u64().unwrap_or(0),
            owner: text(&account["owner"]),
            confirmed_by: read.confirmed_by,
        }))
    }

    #[tool(
        description = "Cluster health: agents up, quorum, committed and rejected transactions, agents caught, \
        and whether every agent at one height holds one state digest."
    )]
    async fn cluster_health(&self, Parameters(_): Parameters<NoInput>) -> Result<Json<Health>, String> {
        let (h, healthy) = self.blocking(|c, _| Ok(crate::ops::health_json(c))).await?;
        let n = |k: &str| h[k].as_u64().unwrap_or(0);
        Ok(Json(Health {
            status: text(&h["status"]),
            healthy,
            healthy_agents: n("healthy_agents"),
            total_agents: n("total_agents"),
            quorum_threshold: n("quorum_threshold"),
            quorum_met: h["quorum_met"] == true,
            transactions_committed: n("transactions_committed"),
            transactions_rejected: n("transactions_rejected"),
            malicious_detected: n("malicious_detected"),
            system_integrity: text(&h["system_integrity"]),
            quarantined: names(&h["quarantined"]),
        }))
    }

    #[tool(
        description = "The detection log from committed state, as f+1 agents hold it: who was caught, for \
        what fault, how (evidence, accusations), reported by whom, and the action taken."
    )]
    async fn detection_log(
        &self,
        Parameters(p): Parameters<TailInput>,
    ) -> Result<Json<DetectionLog>, String> {
        let path = match p.tail {
            Some(t) => format!("/v1/detection-log?tail={t}"),
            None => "/v1/detection-log".into(),
        };
        let read = self
            .blocking(move |c, _| {
                c.read_confirmed(&path, |v| serde_json::json!([v["total"], v["entries"]]), READ_WAIT)
            })
            .await?;
        let entries = (read.answer["entries"].as_array().into_iter().flatten())
            .map(|e| DetectionEntry {
                seq: e["seq"].as_u64().unwrap_or(0),
                timestamp: e["timestamp"].as_u64().unwrap_or(0),
                detected_agent: text(&e["detected_agent"]),
                fault_type: text(&e["fault_type"]),
                detection_method: text(&e["detection_method"]),
                evidence: text(&e["evidence"]),
                reported_by: text(&e["reported_by"]),
                action: text(&e["action"]),
            })
            .collect();
        Ok(Json(DetectionLog {
            total: read.answer["total"].as_u64().unwrap_or(0),
            entries,
            confirmed_by: read.confirmed_by,
        }))
    }

    #[tool(
        description = "The agents of the cluster with their role and status (quarantined or not), as f+1 \
        agents see them."
    )]
    async fn agents(&self, Parameters(_): Parameters<NoInput>) -> Result<Json<Agents>, String> {
        let shape = |v: &Value| -> Value {
            (v["agents"].as_array().into_iter().flatten())
                .map(|a| serde_json::json!([a["name"], a["role"], a["status"]]))
                .collect()
        };
        let read = self.blocking(move |c, _| c.read_confirmed("/v1/agents", shape, READ_WAIT)).await?;
        let agents = (read.answer["agents"].as_array().into_iter().flatten())
            .map(|a| Agent { name: text(&a["name"]), role: text(&a["role"]), status: text(&a["status"]) })
            .collect();
        Ok(Json(Agents { agents, confirmed_by: read.confirmed_by }))
    }
}

#[tool_handler(
    router = self.tool_router,
    name = "phalanx",
    instructions = "Tools of a Phalanx cluster: Byzantine-fault-tolerant decisions, shared memory and a ledger. \
        Every write is signed with this agent's key and accepted on f+1 matching signed replies; every read is \
        confirmed by f+1 agents."
)]
impl rmcp::ServerHandler for Tools {}
