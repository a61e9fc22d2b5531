//! `phalanx demo`: the reference scenario (README, "Two commands") on real processes, then a verdict that
//! checks every claim against what the cluster reports.
//!
//! Each step runs this same binary as a separate command (`init`, `up`, `inject-fault`, `bench`,
//! `submit`), exactly as a user would, and reads the results back over the HTTP API.

use crate::operator::{fetch_log, print_entry};
use clap::Args;
use phalanx_client::Cluster;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct DemoArgs {
    /// Cluster folder (created; must not exist yet).
    #[arg(long, default_value = "./phalanx-demo")]
    dir: PathBuf,
    /// First replica port (HTTP ports are +100).
    #[arg(long, default_value_t = 7500)]
    base_port: u16,
    /// Leave the cluster running afterwards (stop it with `phalanx down`).
    #[arg(long)]
    keep: bool,
    #[arg(long)]
    json: bool,
}

const SIG_FAULTY: &str = "bft-agent-5";
const SPEND_FAULTY: &str = "bft-agent-6";
const FIRST_PHASE: usize = 700;
const SECOND_PHASE: usize = 300;
const OVERDRAFTS: usize = 3;
/// The agents that replace the two faulty ones.
const REPLACEMENTS: [&str; 2] = ["bft-agent-8", "bft-agent-9"];

struct Demo {
    dir: PathBuf,
    json: bool,
}

impl Demo {
    fn say(&self, line: &str) {
        if !self.json {
            println!("==> {line}");
        }
    }

    /// Runs `phalanx ARGS` and returns (success, stdout). Progress bars go to the terminal.
    fn run(&self, args: &[&str]) -> Result<(bool, String), String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
        let mut cmd = Command::new(exe);
        cmd.args(args).stdin(Stdio::null());
        if self.json {
            cmd.stderr(Stdio::null());
        }
        let out = cmd.output().map_err(|e| format!("cannot run phalanx {}: {e}", args.join(" ")))?;
        Ok((out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    fn dir(&self) -> &str {
        self.dir.to_str().unwrap_or(".")
    }

    fn bench(&self, txs: usize) -> Result<Value, String> {
        let n = txs.to_string();
        let (_, out) = self.run(&["bench", "--dir", self.dir(), "--txs", &n, "--clients", "32", "--json"])?;
        let last = out.lines().last().unwrap_or("");
        serde_json::from_str(last).map_err(|e| format!("bench output {last:?}: {e}"))
    }

    fn inject(&self, agent: &str, fault: &str, p: &str) -> Result<bool, String> {
        let args = [
            "inject-fault",
            "--dir",
            self.dir(),
            "--agent",
            agent,
            "--fault-type",
            fault,
            "--probability",
            p,
        ];
        Ok(self.run(&args)?.0)
    }
}

/// Polls `check` until it returns Some or `limit` passes.
fn wait_for<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn quarantined(cluster: &Cluster) -> Vec<String> {
    cluster
        .get_all("/v1/health")
        .into_iter()
        .filter_map(Result::ok)
        .max_by_key(|v| v["last_executed"].as_u64().unwrap_or(0))
        .and_then(|v| v["quarantined"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

pub fn run(a: DemoArgs) -> Result<ExitCode, String> {
    if a.dir.join("genesis.toml").exists() {
        return Err(format!("{} already holds a cluster; pass another --dir", a.dir.display()));
    }
    let demo = Demo { dir: a.dir.clone(), json: a.json };
    let port = a.base_port.to_string();
    demo.say("creating a 7-agent testing cluster (f=2, quorum 5) and starting one process per agent");
    let (ok, out) = demo.run(&[
        "init",
        "--agents",
        "7",
        "--dir",
        demo.dir(),
        "--testing",
        "--base-port",
        &port,
        "--json",
    ])?;
    if !ok {
        return Err(format!("init failed: {out}"));
    }
    let (ok, out) = demo.run(&["up", "--dir", demo.dir()])?;
    if !ok {
        return Err(format!("up failed: {out}"));
    }
    demo.say(&format!(
        "watch it live: http://127.0.0.1:{}/dashboard (the first agent's dashboard{})",
        a.base_port as u32 + 100,
        if a.keep { "" } else { "; --keep leaves the cluster running afterwards" }
    ));
    let result = scenario(&demo);
    if !a.keep {
        let _ = demo.run(&["down", "--dir", demo.dir()]);
    }
    result
}

fn scenario(demo: &Demo) -> Result<ExitCode, String> {
    let cluster = Cluster::load(&demo.dir)?;
    let timeout_ms = cluster.config.params.view_change_timeout_ms;
    let mut claims: Vec<(String, bool, String)> = Vec::new();

    demo.say(&format!(
        "{SIG_FAULTY} corrupts half its signatures; {SPEND_FAULTY} double-spends 30% of the time"
    ));
    let injected = demo.inject(SIG_FAULTY, "signature-corruption", "0.5")?
        && demo.inject(SPEND_FAULTY, "double-spend", "0.3")?;
    claims.push(("faults injected by the operator".into(), injected, String::new()));

    demo.say(&format!("submitting {FIRST_PHASE} transfers from 32 clients"));
    let first = demo.bench(FIRST_PHASE)?;
    demo.say(&format!("submitting {OVERDRAFTS} overdrafts, which must be rejected"));
    let mut overdrafts_rejected = 0;
    for _ in 0..OVERDRAFTS {
        let (_, out) = demo.run(&[
            "submit",
            "--dir",
            demo.dir(),
            "--from",
            "carol",
            "--to",
            "dave",
            "--amount",
            "999999999999",
            "--json",
        ])?;
        let v: Value = serde_json::from_str(out.lines().last().unwrap_or("")).unwrap_or(Value::Null);
        if v["outcome"] == "rejected:overdraft" {
            overdrafts_rejected += 1;
        }
    }
    demo.say("waiting for both faulty agents to be quarantined");
    let caught = wait_for(Duration::from_secs(30), || {
        let q = quarantined(&cluster);
        (q.iter().any(|n| n == SIG_FAULTY) && q.iter().any(|n| n == SPEND_FAULTY)).then_some(q)
    });

    demo.say(&format!(
        "spawning {} and replacing {SIG_FAULTY}, {SPEND_FAULTY} with them (operator-signed membership change)",
        REPLACEMENTS.join(", ")
    ));
    let mut spawned = true;
    for name in REPLACEMENTS {
        spawned &= demo.run(&["agent", "spawn", "--dir", demo.dir(), "--name", name])?.0;
    }
    let (reconfigured, out) = demo.run(&[
        "update-quorum",
        "--dir",
        demo.dir(),
        "--remove",
        &format!("{SIG_FAULTY},{SPEND_FAULTY}"),
        "--add",
        &REPLACEMENTS.join(","),
        "--wait",
        "30",
        "--json",
    ])?;
    let reconfig: Value = serde_json::from_str(out.lines().last().unwrap_or("")).unwrap_or(Value::Null);
    // From here on the cluster folder includes the joiners.
    let cluster = Cluster::load(&demo.dir)?;

    let primary = cluster
        .get_all("/v1/status")
        .into_iter()
        .filter_map(Result::ok)
        .find_map(|v| v["primary"].as_str().map(String::from))
        .unwrap_or_else(|| "bft-agent-1".into());
    demo.say(&format!("{primary}, the primary, now censors every request"));
    let censor_ok = demo.inject(&primary, "censorship", "1")?;
    demo.say(&format!("submitting the remaining {SECOND_PHASE} transfers"));
    let second = demo.bench(SECOND_PHASE)?;

    // Every voter of the new epoch converges at one executed seq (the cluster is idle now); the
    // removed agents stay where their epoch ended.
    let converged = wait_for(Duration::from_secs(20), || {
        let st: Vec<Value> = cluster
            .get_all("/v1/status")
            .into_iter()
            .filter_map(Result::ok)
            .filter(|v| v["voter"] == true)
            .collect();
        let heights: std::collections::BTreeSet<u64> =
            st.iter().filter_map(|v| v["last_executed"].as_u64()).collect();
        (st.len() == cluster.n() - 2 && heights.len() == 1).then_some(st)
    });
    let joined: Vec<&Value> = converged
        .iter()
        .flatten()
        .filter(|v| REPLACEMENTS.contains(&v["name"].as_str().unwrap_or("")))
        .collect();
    let faulty = [SIG_FAULTY, SPEND_FAULTY, primary.as_str()];
    let digests: std::collections::BTreeSet<String> = converged
        .iter()
        .flatten()
        .filter(|v| !faulty.contains(&v["name"].as_str().unwrap_or("")))
        .filter_map(|v| v["state_digest"].as_str().map(String::from))
        .collect();
    let log = fetch_log(&cluster, None)?;
    let entries = log["entries"].as_array().cloned().unwrap_or_default();
    let health: Value = {
        let (_, out) = demo.run(&["health", "--dir", demo.dir(), "--json"])?;
        serde_json::from_str(out.lines().last().unwrap_or("")).unwrap_or(Value::Null)
    };
    let events: Vec<Value> = cluster
        .get_all("/v1/view-changes")
        .into_iter()
        .zip(&cluster.agents)
        .filter(|(_, m)| !faulty.contains(&m.name.as_str()))
        .filter_map(|(r, m)| {
            let list = r.ok()?["view_changes"].as_array()?.clone();
            Some(list.into_iter().map(move |mut e| {
                e["agent"] = json!(m.name);
                e
            }))
        })
        .flatten()
        .collect();

    // The verdict.
    let all_committed = |b: &Value, n: usize| b["committed"].as_u64() == Some(n as u64) && b["failed"] == 0;
    claims.push((
        format!("all {} honest transfers committed", FIRST_PHASE + SECOND_PHASE),
        all_committed(&first, FIRST_PHASE) && all_committed(&second, SECOND_PHASE),
        format!("{} + {} committed", first["committed"], second["committed"]),
    ));
    claims.push((
        "invalid transfers rejected".into(),
        overdrafts_rejected == OVERDRAFTS,
        format!("{overdrafts_rejected}/{OVERDRAFTS} overdrafts rejected by f+1 agents"),
    ));
    let proof = |agent: &str| {
        entries.iter().find(|e| e["detected_agent"] == agent && e["action"] == "quarantined").map(|e| {
            format!(
                "{agent}: {} by {}",
                e["fault_type"].as_str().unwrap_or(""),
                e["detection_method"].as_str().unwrap_or("")
            )
        })
    };
    let (p5, p6) = (proof(SIG_FAULTY), proof(SPEND_FAULTY));
    claims.push((
        "both faulty agents quarantined with evidence".into(),
        caught.is_some() && p5.is_some() && p6.is_some(),
        format!("{}; {}", p5.unwrap_or("not caught".into()), p6.unwrap_or("not caught".into())),
    ));
    let wrongly: Vec<String> = entries
        .iter()
        .filter_map(|e| e["detected_agent"].as_str())
        .filter(|a| !faulty.contains(a))
        .map(String::from)
        .collect();
    claims.push((
        "no honest agent accused".into(),
        wrongly.is_empty() && health["false_positive_rate"].as_f64() == Some(0.0),
        format!("false_positive_rate {}; accused honest agents: {wrongly:?}", health["false_positive_rate"]),
    ));
    claims.push((
        "replacement agents joined (reconfiguration)".into(),
        spawned && reconfigured && joined.len() == REPLACEMENTS.len(),
        format!(
            "committed at seq {}, epoch {} with {} voting and executing at seq {}",
            reconfig["seq"],
            reconfig["epoch"]["epoch"],
            joined.iter().filter_map(|v| v["name"].as_str()).collect::<Vec<_>>().join(", "),
            joined.first().map_or(Value::Null, |v| v["last_executed"].clone())
        ),
    ));
    let censor_change = events
        .iter()
        .filter(|e| e["old_primary"] == primary.as_str())
        .max_by_key(|e| e["view_change_duration_ms"].as_u64());
    let within = censor_change
        .and_then(|e| e["view_change_duration_ms"].as_u64())
        .is_some_and(|d| d <= timeout_ms + 200);
    claims.push((
        "a new primary after censorship".into(),
        censor_ok && within && censor_change.is_some_and(|e| e["new_primary"] != primary.as_str()),
        match censor_change {
            Some(e) => format!(
                "{} -> {} in view {}, slowest honest agent {} ms (limit {} ms)",
                primary,
                e["new_primary"].as_str().unwrap_or(""),
                e["view_number"],
                e["view_change_duration_ms"],
                timeout_ms + 200
            ),
            None => "no view change away from the censoring primary".into(),
        },
    ));
    claims.push((
        "identical honest state digests".into(),
        converged.is_some() && digests.len() == 1,
        format!("{} distinct digest(s) among honest agents at one height", digests.len()),
    ));
    let passed = claims.iter().all(|c| c.1);

    if demo.json {
        let verdict: Vec<Value> = claims
            .iter()
            .map(|(c, ok, d)| json!({"claim": c, "passed": if d.starts_with("SKIPPED") { Value::Null } else { json!(ok) }, "detail": d}))
            .collect();
        println!(
            "{}",
            json!({"passed": passed, "verdict": verdict, "health": health, "detection_log": entries, "view_changes": events,
                   "bench": [first, second]})
        );
    } else {
        println!("\nDetection log ({} entries):", entries.len());
        entries.iter().for_each(print_entry);
        println!("\nView changes (as each honest agent saw them):");
        for e in &events {
            println!(
                "  {:<12} view {:<3} {} -> {}  {} ms  triggered by {}",
                e["agent"].as_str().unwrap_or(""),
                e["view_number"],
                e["old_primary"].as_str().unwrap_or(""),
                e["new_primary"].as_str().unwrap_or(""),
                e["view_change_duration_ms"],
                e["triggered_by"].as_str().unwrap_or("")
            );
        }
        println!("\nHealth: {health}");
        println!("\nVerdict:");
        for (c, ok, d) in &claims {
            let mark = if d.starts_with("SKIPPED") {
                "SKIP"
            } else if *ok {
                "PASS"
            } else {
                "FAIL"
            };
            println!("  [{mark}] {c}: {d}");
        }
        println!("\n{}", if passed { "All claims hold." } else { "Some claims FAILED." });
    }
    Ok(if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
