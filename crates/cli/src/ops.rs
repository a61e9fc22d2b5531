//! Client and operator commands: submit, bench, agents, status, health, node.

use clap::Args;
use phalanx_client::{Cluster, clock_nonce};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct NodeArgs {
    /// The agent's node.toml.
    #[arg(long)]
    config: PathBuf,
    /// `text` for people, `json` (one object per line) for log collectors.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn node(a: NodeArgs) -> Result<ExitCode, String> {
    let filter = tracing_subscriber::filter::LevelFilter::INFO;
    let logs = tracing_subscriber::fmt().with_max_level(filter).with_ansi(false);
    let _ = match a.log_format {
        LogFormat::Text => logs.try_init(),
        // Each event one JSON object: its fields (fault, culprit, view, cause, …) at top level.
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).try_init(),
    };
    let setup = phalanx_node::config::NodeSetup::load(&a.config).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(phalanx_node::run(setup))?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct SubmitArgs {
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    /// Source account (its key is clients/<from>.pem).
    #[arg(long)]
    from: String,
    #[arg(long)]
    to: String,
    #[arg(long)]
    amount: u64,
    #[arg(long)]
    json: bool,
}

pub fn submit(a: SubmitArgs) -> Result<ExitCode, String> {
    let cluster = Cluster::load(&a.dir)?;
    let key = cluster.client_key(&a.from)?;
    let req = cluster.sign_transfer(&key, clock_nonce(), &a.from, &a.to, a.amount);
    let accepted = cluster.submit(&req, Duration::from_secs(20))?;
    if a.json {
        println!(
            "{}",
            json!({"from": a.from, "to": a.to, "amount": a.amount, "nonce": req.body.nonce, "outcome": accepted.outcome,
                   "seq": accepted.seq, "epoch": accepted.epoch, "confirmed_by": accepted.replicas})
        );
    } else {
        println!(
            "{} → {} {}: {} at seq {} (confirmed by {} agents' signed replies)",
            a.from,
            a.to,
            a.amount,
            accepted.outcome,
            accepted.seq,
            accepted.replicas.len()
        );
    }
    Ok(if accepted.outcome == "applied" { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[derive(Args)]
pub struct ReadArgs {
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    #[arg(long)]
    json: bool,
}

pub fn agents(a: ReadArgs) -> Result<ExitCode, String> {
    let cluster = Cluster::load(&a.dir)?;
    let list = agents_json(&cluster);
    if a.json {
        println!("{}", json!({ "agents": list }));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<16} {:<8} {:<12} {:>6} {:>6} {:>8} {:<66} last seen",
        "NAME", "ROLE", "STATUS", "SCORE", "ACCUSE", "RESP p50", "PUBLIC KEY"
    );
    for v in &list {
        let rep = &v["reputation"];
        println!(
            "{:<16} {:<8} {:<12} {:>6} {:>6} {:>8} {:<66} {}",
            v["name"].as_str().unwrap_or(""),
            v["role"].as_str().unwrap_or(""),
            v["status"].as_str().unwrap_or(""),
            rep["score"].as_f64().map(|x| format!("{x:.2}")).unwrap_or("-".into()),
            rep["accusations_against"].as_u64().map(|x| x.to_string()).unwrap_or("-".into()),
            rep["response_ms_p50"].as_u64().map(|x| format!("{x} ms")).unwrap_or("-".into()),
            v["public_key"].as_str().unwrap_or(""),
            v["last_seen_ms_ago"].as_u64().map(|m| format!("{m} ms ago")).unwrap_or("-".into())
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Every agent as the first reachable node sees it, marked `down` when its own API does not
/// answer.
pub fn agents_json(cluster: &Cluster) -> Vec<Value> {
    // Ask every node; report each agent as the first reachable node sees it, and mark agents
    // whose own API does not answer.
    let statuses = cluster.get_all("/v1/status");
    let view = (0..cluster.n()).find_map(|i| cluster.get(i, "/v1/agents").ok());
    let mut list = Vec::new();
    for (i, m) in cluster.agents.iter().enumerate() {
        let seen = view
            .as_ref()
            .and_then(|v| v["agents"].as_array()?.iter().find(|x| x["name"] == m.name.as_str()).cloned())
            .unwrap_or(Value::Null);
        let up = statuses[i].is_ok();
        list.push(json!({
            "name": m.name,
            "role": seen.get("role").cloned().unwrap_or(json!("unknown")),
            "status": if up || seen.get("status") == Some(&json!("quarantined")) { seen.get("status").cloned().unwrap_or(json!("healthy")) } else { json!("down") },
            "reputation": seen.get("reputation").cloned().unwrap_or(Value::Null),
            "quarantine": seen.get("quarantine").cloned().unwrap_or(Value::Null),
            "public_key": m.public_key,
            "last_seen_ms_ago": seen.get("last_seen_ms_ago").cloned().unwrap_or(Value::Null),
            "http_addr": m.http_addr,
        }));
    }
    list
}

pub fn status(a: ReadArgs) -> Result<ExitCode, String> {
    let cluster = Cluster::load(&a.dir)?;
    let all = cluster.get_all("/v1/status");
    if a.json {
        let list: Vec<Value> = all
            .iter()
            .zip(&cluster.agents)
            .map(|(r, m)| r.clone().unwrap_or_else(|e| json!({"name": m.name, "error": e})))
            .collect();
        println!("{}", json!({ "nodes": list }));
    } else {
        println!(
            "{:<16} {:>5} {:>6} {:<16} {:>10} {:>8}  state digest",
            "NAME", "EPOCH", "VIEW", "PRIMARY", "EXECUTED", "STABLE"
        );
        for (r, m) in all.iter().zip(&cluster.agents) {
            match r {
                Ok(v) => {
                    let digest = v["state_digest"].as_str().unwrap_or("");
                    println!(
                        "{:<16} {:>5} {:>6} {:<16} {:>10} {:>8}  {}",
                        m.name,
                        v["epoch"].to_string(),
                        v["view"].to_string(),
                        v["primary"].as_str().unwrap_or(""),
                        v["last_executed"].to_string(),
                        v["stable_checkpoint"].to_string(),
                        digest.chars().take(16).collect::<String>()
                    )
                }
                Err(e) => println!("{:<16} unreachable: {e}", m.name),
            }
        }
        // Why each node dropped messages without effect: a few stale or duplicate ones are
        // normal; bad signatures or invalid certificates point at a faulty member or link.
        for (r, m) in all.iter().zip(&cluster.agents) {
            let Some(ignored) = r.as_ref().ok().and_then(|v| v["ignored"].as_object()) else { continue };
            let mut reasons: Vec<(&String, u64)> =
                ignored.iter().map(|(k, n)| (k, n.as_u64().unwrap_or(0))).filter(|(_, n)| *n > 0).collect();
            if reasons.is_empty() {
                continue;
            }
            reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
            let text: Vec<String> = reasons.iter().map(|(k, n)| format!("{k} {n}")).collect();
            println!("{:<16} ignored: {}", m.name, text.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Cluster health: each node reports itself; integrity compares the state digests of every
/// node that executed the same number of batches.
pub fn health(a: ReadArgs) -> Result<ExitCode, String> {
    let cluster = Cluster::load(&a.dir)?;
    let (result, healthy) = health_json(&cluster);
    if a.json {
        println!("{result}");
    } else {
        for k in [
            "status",
            "total_agents",
            "healthy_agents",
            "quorum_met",
            "quorum_threshold",
            "transactions_committed",
            "transactions_rejected",
            "malicious_detected",
            "false_positive_rate",
            "system_integrity",
        ] {
            println!("{k:<24} {}", result[k]);
        }
    }
    Ok(if healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The health report, and whether the cluster is healthy (a quorum of voters up and not
/// quarantined, one state digest per height).
pub fn health_json(cluster: &Cluster) -> (Value, bool) {
    let all = cluster.get_all("/v1/health");
    let up: Vec<&Value> = all.iter().filter_map(|r| r.as_ref().ok()).collect();
    let best = up
        .iter()
        .max_by_key(|v| v["last_executed"].as_u64().unwrap_or(0))
        .copied()
        .cloned()
        .unwrap_or(Value::Null);
    let mut by_height: std::collections::BTreeMap<u64, std::collections::BTreeSet<String>> =
        Default::default();
    for v in &up {
        by_height
            .entry(v["last_executed"].as_u64().unwrap_or(0))
            .or_default()
            .insert(v["state_digest"].as_str().unwrap_or("").to_string());
    }
    let consistent = by_height.values().all(|d| d.len() == 1);
    let quarantined: Vec<&str> = best["quarantined"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    // Voters of the current epoch (agents removed by a reconfiguration no longer count).
    let statuses = cluster.get_all("/v1/status");
    let voter = |i: usize| statuses[i].as_ref().is_ok_and(|v| v["voter"] == true);
    let healthy = all
        .iter()
        .zip(&cluster.agents)
        .enumerate()
        .filter(|(i, (r, m))| r.is_ok() && voter(*i) && !quarantined.contains(&m.name.as_str()))
        .count();
    let quorum = best["quorum_threshold"].as_u64().map_or(cluster.genesis.quorum_size, |q| q as usize);
    let result = json!({
        "status": if healthy >= quorum && consistent { "healthy" } else { "degraded" },
        "total_agents": best["total_agents"],
        "epoch": best["epoch"],
        "malicious_detected": best["malicious_detected"],
        "healthy_agents": healthy,
        "quorum_met": healthy >= quorum,
        "quorum_threshold": quorum,
        "transactions_committed": best["transactions_committed"],
        "transactions_rejected": best["transactions_rejected"],
        "false_positive_rate": best["false_positive_rate"],
        "system_integrity": if consistent { "verified" } else { "state digests differ" },
        "quarantined": best["quarantined"],
        "evidence_accepted": best["evidence_accepted"],
        "evidence_rejected": best["evidence_rejected"],
        "last_executed": best["last_executed"],
        "state_digests": by_height.iter().map(|(h, d)| json!({"last_executed": h, "digests": d, "agents": up.iter().filter(|v| v["last_executed"].as_u64() == Some(*h)).count()})).collect::<Vec<_>>(),
    });
    (result, healthy >= quorum && consistent)
}
