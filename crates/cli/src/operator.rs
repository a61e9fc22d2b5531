//! Accountability and operator commands: `detection-log`, `inject-fault`, `view-change`.
//!
//! Operator actions are ordinary replicated operations signed with `keys/operator.pem`: every
//! replica checks the signature against the operator key in genesis and applies the action at
//! the same seq. The CLI accepts the outcome only on f+1 matching signed replies.

use clap::Args;
use phalanx_client::{Accepted, Cluster};
use phalanx_core::wire::{Operation, OperatorAction};
use phalanx_crypto::Keypair;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

pub fn operator_key(dir: &Path) -> Result<Keypair, String> {
    let path = dir.join("keys").join("operator.pem");
    let pem =
        std::fs::read_to_string(&path).map_err(|e| format!("no operator key ({}): {e}", path.display()))?;
    Keypair::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
}

/// Signs `action` with `key` and waits for f+1 matching replies.
pub fn submit_action(cluster: &Cluster, key: &Keypair, action: OperatorAction) -> Result<Accepted, String> {
    cluster.submit_op(key, Operation::Operator(action), Duration::from_secs(20))
}

#[derive(Args)]
pub struct DetectionLogArgs {
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    /// Only the last N entries.
    #[arg(long)]
    tail: Option<usize>,
    /// Keep printing new entries as they are committed.
    #[arg(long)]
    follow: bool,
    #[arg(long)]
    json: bool,
}

/// The log of the most advanced reachable node (the log is committed state: a node further
/// behind shows a prefix of it).
pub fn fetch_log(cluster: &Cluster, tail: Option<usize>) -> Result<Value, String> {
    let path = match tail {
        Some(t) => format!("/v1/detection-log?tail={t}"),
        None => "/v1/detection-log".into(),
    };
    cluster
        .get_all(&path)
        .into_iter()
        .filter_map(Result::ok)
        .max_by_key(|v| v["last_executed"].as_u64().unwrap_or(0))
        .ok_or_else(|| "no agent answered".to_string())
}

pub fn print_entry(e: &Value) {
    let expires =
        e["quarantine_expires"].as_u64().map(|t| format!(" until {}", fmt_ms(t))).unwrap_or_default();
    println!(
        "{}  seq {:<6} {:<14} {:<24} {:<16} {:<20}{}  [{}]",
        fmt_ms(e["timestamp"].as_u64().unwrap_or(0)),
        e["seq"],
        e["detected_agent"].as_str().unwrap_or(""),
        e["fault_type"].as_str().unwrap_or(""),
        e["detection_method"].as_str().unwrap_or(""),
        e["action"].as_str().unwrap_or(""),
        expires,
        e["evidence"].as_str().unwrap_or("").chars().take(48).collect::<String>(),
    );
}

fn fmt_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

pub fn detection_log(a: DetectionLogArgs) -> Result<ExitCode, String> {
    let cluster = Cluster::load(&a.dir)?;
    let log = fetch_log(&cluster, a.tail)?;
    let entries = log["entries"].as_array().cloned().unwrap_or_default();
    if a.json && !a.follow {
        println!("{}", json!({ "total": log["total"], "entries": entries }));
        return Ok(ExitCode::SUCCESS);
    }
    let show = |e: &Value| if a.json { println!("{e}") } else { print_entry(e) };
    entries.iter().for_each(show);
    let mut printed = log["total"].as_u64().unwrap_or(0);
    if !a.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let Ok(log) = fetch_log(&cluster, Some(1024)) else { continue };
        let total = log["total"].as_u64().unwrap_or(0);
        let entries = log["entries"].as_array().cloned().unwrap_or_default();
        let new = total.saturating_sub(printed) as usize;
        entries.iter().skip(entries.len().saturating_sub(new)).for_each(show);
        printed = printed.max(total);
    }
}

#[derive(Args)]
pub struct InjectFaultArgs {
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    /// The agent to make faulty.
    #[arg(long)]
    agent: String,
    /// signature-corruption, double-spend, equivocation, censorship, silence, delay,
    /// invalid-proposal (or any simulator behaviour name).
    #[arg(long, required_unless_present = "clear")]
    fault_type: Option<String>,
    /// How often the fault acts when it can (signature corruption, double spends, invalid
    /// proposals).
    #[arg(long)]
    probability: Option<f64>,
    /// Make the agent behave again.
    #[arg(long)]
    clear: bool,
    #[arg(long)]
    json: bool,
}

pub fn inject_fault(a: InjectFaultArgs) -> Result<ExitCode, String> {
    let cluster = Cluster::load(&a.dir)?;
    if cluster.genesis.member(&a.agent).is_none() {
        return Err(format!("{} is not a member of this cluster", a.agent));
    }
    let fault = if a.clear { None } else { a.fault_type.clone() };
    let behaviour = match &fault {
        Some(f) => Some(f.parse::<phalanx_faults::Behaviour>()?),
        None => None,
    };
    let probability = match (a.probability, behaviour) {
        (Some(p), _) if !(0.0..=1.0).contains(&p) => return Err("--probability must be within 0..1".into()),
        (Some(p), _) => p,
        (None, Some(b)) => b.default_probability(),
        (None, None) => 0.0,
    };
    let action = OperatorAction::InjectFault {
        agent: a.agent.clone(),
        fault: behaviour.map(|b| b.name().to_string()),
        probability_permille: (probability * 1000.0).round() as u32,
    };
    let accepted = submit_action(&cluster, &operator_key(&a.dir)?, action)?;
    let ok = accepted.outcome == "applied";
    if a.json {
        println!(
            "{}",
            json!({"agent": a.agent, "fault_type": fault, "probability": probability, "outcome": accepted.outcome, "seq": accepted.seq})
        );
    } else if ok {
        match &fault {
            Some(f) => {
                println!("{}: {f} injected (probability {probability}) at seq {}", a.agent, accepted.seq)
            }
            None => println!("{}: fault cleared at seq {}", a.agent, accepted.seq),
        }
    } else {
        eprintln!(
            "refused: {} (fault injection works only in clusters created with `init --testing`; the attempt is in the detection log)",
            accepted.outcome
        );
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[derive(Args)]
pub struct ViewChangeArgs {
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    /// Replace the current primary now (operator-signed, ordered like any operation).
    #[arg(long, required = true)]
    force: bool,
    #[arg(long)]
    json: bool,
}

/// The (f+1)-th highest view the agents report: at least one honest agent is there.
pub fn current_view(cluster: &Cluster) -> Result<u64, String> {
    let mut views: Vec<u64> =
        cluster.get_all("/v1/status").iter().filter_map(|r| r.as_ref().ok()?["view"].as_u64()).collect();
    views.sort_unstable_by(|a, b| b.cmp(a));
    views
        .get(cluster.genesis.max_failures)
        .copied()
        .ok_or_else(|| format!("fewer than f+1 = {} agents answered", cluster.genesis.max_failures + 1))
}

pub fn view_change(a: ViewChangeArgs) -> Result<ExitCode, String> {
    let cluster = Cluster::load(&a.dir)?;
    let view = current_view(&cluster)?;
    let accepted = submit_action(&cluster, &operator_key(&a.dir)?, OperatorAction::ForceViewChange { view })?;
    let ok = accepted.outcome == "applied";
    if a.json {
        println!("{}", json!({"from_view": view, "outcome": accepted.outcome, "seq": accepted.seq}));
    } else if ok {
        println!("view change forced: replicas in view {view} move on (ordered at seq {})", accepted.seq);
    } else {
        eprintln!("refused: {}", accepted.outcome);
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
