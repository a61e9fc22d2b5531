//! `phalanx sim`: many seeded simulations, in parallel, with a summary.

use clap::Args;
use phalanx_core::quorum::Quorum;
use phalanx_sim::{Behaviour, NetProfile, Report, SimConfig};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(Args)]
pub struct SimArgs {
    /// Agents in the cluster.
    #[arg(long, default_value_t = 7)]
    nodes: usize,
    /// Byzantine agents (at most ⌊(n-1)/3⌋ unless --allow-excess-faults).
    #[arg(long, default_value_t = 2)]
    faulty: usize,
    /// `all`, `none`, or a comma-separated list: silent, crash, corrupt-signatures, equivocate,
    /// double-spend, censor, invalid-proposal, delay, replay, forge-view-change, opaque-censor,
    /// oversize, withhold-batch, clock-skew, chaos (seeded mutations, twins and collusion).
    #[arg(long, default_value = "all")]
    behaviours: String,
    /// Number of seeded runs.
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    /// First seed; runs use seed, seed+1, ...
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Transfers submitted per run.
    #[arg(long, default_value_t = 1000)]
    txs: usize,
    /// reliable, lossy or partition.
    #[arg(long, default_value = "reliable")]
    net: String,
    /// Honest clients per run (each keeps one request outstanding).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Never crash and restart an honest replica.
    #[arg(long)]
    no_restarts: bool,
    /// Fail a run unless every faulty agent ends quarantined on every honest replica.
    #[arg(long)]
    require_quarantine: bool,
    /// Which agents are faulty (0-based, comma-separated); drawn from each seed by default.
    #[arg(long, value_delimiter = ',')]
    faulty_ids: Option<Vec<usize>>,
    /// Also run this many federated-learning rounds (7 clients train, 2 of them Byzantine; every
    /// honest replica must hold the same results). Needs --clients 7 or more.
    #[arg(long, default_value_t = 0)]
    federated_rounds: u64,
    /// Allow more faulty agents than the cluster tolerates (to watch safety break).
    #[arg(long)]
    allow_excess_faults: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Print the event trace of failing runs.
    #[arg(long)]
    verbose: bool,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

pub fn run(a: SimArgs) -> Result<ExitCode, String> {
    let behaviours = Behaviour::parse_list(&a.behaviours)?;
    let net: NetProfile = a.net.parse()?;
    let f = Quorum::max_faults(a.nodes);
    if a.nodes < 1 {
        return Err("--nodes must be at least 1".into());
    }
    if a.faulty > f && !a.allow_excess_faults {
        return Err(format!(
            "{} agents tolerate at most {f} Byzantine (n >= 3f+1); pass --allow-excess-faults to run anyway",
            a.nodes
        ));
    }
    if let Some(ids) = &a.faulty_ids
        && (ids.len() != a.faulty || ids.iter().any(|i| *i >= a.nodes))
    {
        return Err(format!("--faulty-ids must name exactly {} distinct agents below {}", a.faulty, a.nodes));
    }
    if a.faulty > a.nodes || a.clients < 2 {
        return Err("--faulty must not exceed --nodes, and --clients must be at least 2".into());
    }
    if a.federated_rounds > 0 && a.clients < 7 {
        return Err("--federated-rounds needs --clients 7 or more (the participants)".into());
    }
    let jobs = a.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let reports: Mutex<Vec<Report>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= a.seeds {
                        break;
                    }
                    let mut cfg = SimConfig::new(a.nodes, a.faulty, a.seed + i);
                    cfg.behaviours = behaviours.clone();
                    cfg.txs = a.txs;
                    cfg.net = net;
                    cfg.clients = a.clients;
                    cfg.crash_restart = !a.no_restarts;
                    cfg.faulty_ids = a.faulty_ids.clone();
                    cfg.require_quarantine = a.require_quarantine;
                    cfg.federated_rounds = a.federated_rounds;
                    let mut r =
                        if a.verbose { phalanx_sim::run_traced(&cfg) } else { phalanx_sim::run(&cfg) };
                    if r.ok() {
                        r.trace.clear();
                    }
                    reports.lock().expect("no worker panics while holding the lock").push(r);
                }
            });
        }
    });
    let wall_ms = started.elapsed().as_millis() as u64;
    let mut reports = reports.into_inner().expect("workers finished");
    reports.sort_by_key(|r| r.seed);
    let failing: Vec<&Report> = reports.iter().filter(|r| !r.ok()).collect();
    let safety = reports.iter().filter(|r| !r.safety_violations.is_empty()).count();
    let liveness = reports.iter().filter(|r| r.liveness_failure.is_some()).count();
    let undetected = reports.iter().filter(|r| r.detection_failure.is_some()).count();
    let quarantined: usize = reports.iter().map(|r| r.quarantined.len()).sum();
    let mut detections: std::collections::BTreeMap<String, u64> = Default::default();
    for r in &reports {
        for (k, v) in &r.detections {
            *detections.entry(k.clone()).or_default() += v;
        }
    }
    let committed: u64 = reports.iter().map(|r| r.committed).sum();
    let rejected: u64 = reports.iter().map(|r| r.rejected).sum();
    let messages: u64 = reports.iter().map(|r| r.messages).sum();
    let evidence: u64 = reports.iter().map(|r| r.evidence).sum();
    let view_changes: u64 = reports.iter().map(|r| r.max_view).sum();
    let federated: u64 = reports.iter().map(|r| r.federated_rounds).sum();
    let mut virt: Vec<u64> = reports.iter().map(|r| r.virtual_ms).collect();
    virt.sort_unstable();
    let p50 = virt.get(virt.len() / 2).copied().unwrap_or(0);
    for r in &failing {
        eprintln!("FAIL seed {}: faulty {:?}", r.seed, r.faulty);
        for v in &r.safety_violations {
            eprintln!("  safety: {v}");
        }
        if let Some(l) = &r.liveness_failure {
            eprintln!("  liveness: {l}");
        }
        if let Some(d) = &r.detection_failure {
            eprintln!("  detection: {d}");
        }
        for t in &r.trace {
            eprintln!("    {t}");
        }
        eprintln!("  replay: {}", r.replay);
    }
    let names: Vec<&str> = behaviours.iter().map(|b| b.name()).collect();
    println!(
        "{} runs, n={} f={} faulty={} net={} behaviours={}: {} safety violations, {} liveness failures",
        reports.len(),
        a.nodes,
        f,
        a.faulty,
        net.name(),
        if names.is_empty() { "none".into() } else { names.join(",") },
        safety,
        liveness
    );
    println!(
        "  {quarantined} faulty agents quarantined everywhere ({undetected} runs with one that was not); detection log: {detections:?}"
    );
    println!(
        "  {committed} transfers applied, {rejected} rejected by the ledger, {messages} messages, {evidence} evidence reports, {view_changes} view changes; virtual time p50 {p50} ms; wall {:.1} s",
        wall_ms as f64 / 1000.0
    );
    if a.federated_rounds > 0 {
        println!("  {federated} federated rounds closed; each run compares them across its honest replicas");
    }
    if a.json {
        let v = serde_json::json!({
            "runs": reports.len(),
            "nodes": a.nodes,
            "faulty": a.faulty,
            "behaviours": names,
            "net": net.name(),
            "safety_violations": safety,
            "liveness_failures": liveness,
            "detection_failures": undetected,
            "quarantined": quarantined,
            "detections": detections,
            "committed": committed,
            "rejected": rejected,
            "messages": messages,
            "evidence": evidence,
            "view_changes": view_changes,
            "federated_rounds": federated,
            "virtual_ms_p50": p50,
            "wall_ms": wall_ms,
            "failing_seeds": failing.iter().map(|r| r.seed).collect::<Vec<_>>(),
        });
        println!("{v}");
    }
    Ok(if failing.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
