//! `phalanx chaos`: a real cluster (one OS process per member, real TCP, real journals) under
//! client load while a seeded plan kills, pauses, partitions, slows and corrupts it; then a
//! checker judges the clients' acknowledged history against every member's final state.
//!
//! Every member is honest here: Byzantine members are the simulator's and the fuzzers' job.
//! What this adds is the real operating system: SIGKILL mid-fsync, stopped processes, TCP
//! connections that reset or hang, bytes flipped in flight, and journals damaged on disk.

mod check;
mod load;
mod plan;
mod procs;
mod proxy;
mod watch;

use check::{Final, History, Recovery};
use clap::Args;
use phalanx_client::Cluster;
use phalanx_node::config::NodeFile;
use plan::{Fault, Plan};
use procs::{JournalOutcome, Procs};
use proxy::{LinkFault, Network};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Clone)]
pub struct ChaosArgs {
    /// Cluster folder (created; must not exist yet). `chaos.log` there lists every fault.
    #[arg(long, default_value = "./phalanx-chaos")]
    dir: PathBuf,
    /// How long faults are injected (the run takes ~30 s more: setup, drain, checks).
    #[arg(long, default_value = "60s")]
    duration: humantime::Duration,
    /// Seeds the fault plan, the clients and the damage: the same seed injects the same faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 4)]
    agents: usize,
    /// Clients, each sending one transfer at a time.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// First replica port (HTTP ports are +100).
    #[arg(long, default_value_t = 7300)]
    base_port: u16,
    /// Leave the cluster folder and its processes running afterwards.
    #[arg(long)]
    keep: bool,
    #[arg(long)]
    json: bool,
}

struct Run {
    args: ChaosArgs,
    cluster: Arc<Cluster>,
    procs: Procs,
    net: Network,
    log: std::fs::File,
    started: Instant,
    rng: ChaCha8Rng,
    counts: BTreeMap<&'static str, u64>,
    recoveries: Vec<Recovery>,
    journal_faults: Vec<String>,
    journal_outcomes: BTreeMap<&'static str, u64>,
}

impl Run {
    fn say(&mut self, line: &str) {
        let stamped = format!("{:>8.3}s  {line}", self.started.elapsed().as_secs_f64());
        let _ = writeln!(self.log, "{stamped}");
        if !self.args.json {
            println!("{stamped}");
        }
    }

    fn names(&self, members: &[usize]) -> String {
        members.iter().map(|i| self.procs.names[*i].as_str()).collect::<Vec<_>>().join(",")
    }

    fn others(&self, side: &[usize], also: &[usize]) -> Vec<usize> {
        (0..self.procs.names.len()).filter(|i| !side.contains(i) && !also.contains(i)).collect()
    }

    /// Injects a fault; returns what must be undone at the heal.
    fn inject(&mut self, fault: &Fault) -> Result<Vec<usize>, String> {
        let partition = |stall: bool| LinkFault { cut: !stall, stall, ..Default::default() };
        let how = |stall: bool| if stall { "packets dropped" } else { "connections reset" };
        let text = match fault {
            Fault::Kill(m) => {
                m.iter().for_each(|i| self.procs.kill(*i));
                format!("kill -9 {}", self.names(m))
            }
            Fault::Pause(m) => {
                m.iter().for_each(|i| self.procs.pause(*i));
                format!("SIGSTOP {}", self.names(m))
            }
            Fault::CorruptJournal { member, damage } => {
                let seed = self.rng.random();
                let cluster = self.cluster.clone();
                let answers = || cluster.get(*member, "/v1/status").is_ok();
                let outcome = self.procs.restart_over_damage(*member, *damage, seed, answers)?;
                let name = self.procs.names[*member].clone();
                let kind = match &outcome {
                    JournalOutcome::Refused { .. } => "refused",
                    JournalOutcome::RefusedButTouched { .. } => {
                        self.journal_faults.push(format!(
                            "{name}: a start that refused a damaged journal changed it and kept no copy"
                        ));
                        "refused-but-changed"
                    }
                    JournalOutcome::Started => "started",
                    JournalOutcome::OpenedWithLoss(lost) => {
                        self.journal_faults.push(lost.clone());
                        "opened-with-loss"
                    }
                };
                *self.journal_outcomes.entry(kind).or_default() += 1;
                let said = match outcome {
                    JournalOutcome::Refused { message } | JournalOutcome::RefusedButTouched { message } => {
                        format!("; it refused: {message}; journal put back as the crash left it")
                    }
                    JournalOutcome::Started => "; it started over it, every record intact".into(),
                    JournalOutcome::OpenedWithLoss(lost) => format!("; NOT started: {lost}"),
                };
                format!("kill -9 {name}, journal damaged ({damage:?}), restarted{said}")
            }
            Fault::Isolate { members, stall } => {
                let rest = self.others(members, &[]);
                self.net.set_between(members, &rest, partition(*stall));
                format!("isolate {} ({})", self.names(members), how(*stall))
            }
            Fault::Halves { side, stall } => {
                let rest = self.others(side, &[]);
                self.net.set_between(side, &rest, partition(*stall));
                format!("partition {} | {} ({})", self.names(side), self.names(&rest), how(*stall))
            }
            Fault::Bridge { side, bridge } => {
                let rest = self.others(side, &[*bridge]);
                self.net.set_between(side, &rest, partition(false));
                format!(
                    "partition {} | {} bridged by {}",
                    self.names(side),
                    self.names(&rest),
                    self.procs.names[*bridge]
                )
            }
            Fault::Latency { max_ms } => {
                let n = self.procs.names.len();
                for i in 0..n {
                    for j in (0..n).filter(|j| *j != i) {
                        let delay_ms = self.rng.random_range(0..=*max_ms);
                        self.net.set(i, j, LinkFault { delay_ms, ..Default::default() });
                    }
                }
                format!("latency up to {max_ms} ms on every link")
            }
            Fault::SlowMember { member, delay_ms } => {
                let rest = self.others(&[*member], &[]);
                self.net.set_between(
                    &[*member],
                    &rest,
                    LinkFault { delay_ms: *delay_ms, ..Default::default() },
                );
                format!("{} ms on every link of {}", delay_ms, self.procs.names[*member])
            }
            Fault::CorruptLinks { links, one_in } => {
                for (a, b) in links {
                    self.net.set(*a, *b, LinkFault { corrupt_one_in: *one_in, ..Default::default() });
                }
                let l: Vec<String> = links
                    .iter()
                    .map(|(a, b)| format!("{}->{}", self.procs.names[*a], self.procs.names[*b]))
                    .collect();
                format!("flip a bit in 1 of {one_in} chunks on {}", l.join(" "))
            }
        };
        *self.counts.entry(fault.kind()).or_default() += 1;
        self.say(&text);
        Ok(match fault {
            Fault::Kill(m) | Fault::Pause(m) => m.clone(),
            _ => vec![],
        })
    }

    fn heal(&mut self, fault: &Fault, members: &[usize]) -> Result<(), String> {
        self.net.heal();
        match fault {
            Fault::Kill(_) => {
                for &i in members {
                    self.procs.start(i)?;
                }
            }
            Fault::Pause(_) => members.iter().for_each(|i| self.procs.resume(*i)),
            _ => {}
        }
        self.say(&format!("heal {}", fault.kind()));
        Ok(())
    }
}

/// Points every member's link to every other member through its own proxy.
async fn wire_proxies(dir: &Path, cluster: &Cluster, net: &Network, seed: u64) -> Result<(), String> {
    let names: Vec<String> = cluster.agents.iter().map(|a| a.name.clone()).collect();
    for (i, name) in names.iter().enumerate() {
        let path = dir.join("nodes").join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut node: NodeFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for (j, peer) in cluster.agents.iter().enumerate().filter(|(j, _)| *j != i) {
            let at = net
                .listen(i, j, peer.replica_addr, seed ^ ((i * 1000 + j) as u64))
                .await
                .map_err(|e| format!("cannot start the proxy for {name}->{}: {e}", peer.name))?;
            node.dial.insert(peer.name.clone(), at);
        }
        std::fs::write(&path, toml::to_string(&node).map_err(|e| e.to_string())?)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Waits until every member answers with the same executed seq, or `within` passes.
fn quiesce(cluster: &Cluster, within: Duration) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        let seqs: Vec<Option<u64>> = cluster
            .get_all("/v1/status")
            .into_iter()
            .map(|r| r.ok().and_then(|s| s["last_executed"].as_u64()))
            .collect();
        if seqs.iter().all(Option::is_some) && seqs.windows(2).all(|w| w[0] == w[1]) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// A timeout suspicion: what an honest primary cut off by the network earns by design.
fn suspicion(e: &Value) -> bool {
    e["detection_method"] == "timeout"
        && e["action"] == "reputation-lowered"
        && matches!(e["fault_type"].as_str(), Some("censorship" | "silence"))
}

/// Member `i`'s final state, read when its executed seq did not move while it was read (the
/// health, the balances and the log come from separate requests).
fn final_state(cluster: &Cluster, i: usize) -> Option<Final> {
    for _ in 0..20 {
        let state = read_final(cluster, i)?;
        let after = cluster.get(i, "/v1/status").ok()?["last_executed"].as_u64()?;
        if after == state.last_executed {
            return Some(state);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

fn read_final(cluster: &Cluster, i: usize) -> Option<Final> {
    let health = cluster.get(i, "/v1/health").ok()?;
    let accounts = cluster.get(i, "/v1/accounts").ok()?;
    let log = cluster.get(i, "/v1/detection-log").ok()?;
    let entries = log["entries"].as_array().cloned().unwrap_or_default();
    let balances = accounts["accounts"]
        .as_array()?
        .iter()
        .filter_map(|a| Some((a["name"].as_str()?.to_string(), a["balance"].as_u64()?)))
        .collect();
    Some(Final {
        name: cluster.agents[i].name.clone(),
        last_executed: health["last_executed"].as_u64()?,
        digest: health["state_digest"].as_str()?.to_string(),
        balances,
        quarantined: health["quarantined"]
            .as_array()?
            .iter()
            .filter_map(|q| q.as_str().map(String::from))
            .collect(),
        accusations: entries
            .iter()
            .filter(|e| !suspicion(e))
            .map(|e| {
                format!(
                    "{} {} by {} ({}, {})",
                    e["detected_agent"].as_str().unwrap_or("?"),
                    e["fault_type"].as_str().unwrap_or("?"),
                    e["detection_method"].as_str().unwrap_or("?"),
                    e["evidence"].as_str().unwrap_or("?"),
                    e["action"].as_str().unwrap_or("?")
                )
            })
            .collect(),
        suspicions: entries.iter().filter(|e| suspicion(e)).count() as u64,
        evidence_accepted: health["evidence_accepted"].as_u64().unwrap_or(0),
    })
}

pub fn run(a: ChaosArgs) -> Result<ExitCode, String> {
    if a.dir.exists() {
        return Err(format!("{} exists; chaos creates its own cluster folder", a.dir.display()));
    }
    if a.clients < 2 {
        return Err("--clients: at least 2 (each pays another)".into());
    }
    let dir = a.dir.to_str().ok_or("--dir must be valid UTF-8")?.to_string();
    let (n, port, clients) = (a.agents.to_string(), a.base_port.to_string(), a.clients.to_string());
    crate::bench::phalanx(&[
        "init",
        "--testing",
        "--agents",
        &n,
        "--dir",
        &dir,
        "--base-port",
        &port,
        "--bench-clients",
        &clients,
    ])?;
    let cluster = Arc::new(Cluster::load(&a.dir)?);
    let n = cluster.n();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the proxies' runtime: {e}"))?;
    let net = Network::new(n);
    tokio.block_on(wire_proxies(&a.dir, &cluster, &net, a.seed))?;

    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let procs = Procs::new(a.dir.clone(), exe, cluster.agents.iter().map(|m| m.name.clone()).collect());
    let log = std::fs::File::create(a.dir.join("chaos.log")).map_err(|e| format!("chaos.log: {e}"))?;
    let mut run = Run {
        args: a.clone(),
        cluster: cluster.clone(),
        procs,
        net,
        log,
        started: Instant::now(),
        rng: ChaCha8Rng::seed_from_u64(a.seed ^ 0x5eed),
        counts: BTreeMap::new(),
        recoveries: Vec::new(),
        journal_faults: Vec::new(),
        journal_outcomes: BTreeMap::new(),
    };
    let outcome = drive(&mut run);
    if !a.keep {
        for i in 0..n {
            run.procs.resume(i);
            run.procs.kill(i);
        }
    }
    let (report, violations) = outcome?;
    if a.json {
        println!("{report}");
    } else {
        print_report(&report, &violations);
    }
    if !a.keep && violations.is_empty() {
        let _ = std::fs::remove_dir_all(&a.dir);
    } else if !violations.is_empty() {
        eprintln!("cluster folder kept for inspection: {} (chaos.log, data/*/node.log)", a.dir.display());
    }
    Ok(if violations.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn drive(run: &mut Run) -> Result<(Value, Vec<String>), String> {
    let (n, f) = (run.cluster.n(), run.cluster.genesis.max_failures);
    let vc_timeout = Duration::from_millis(run.cluster.genesis.params.view_change_timeout_ms);
    let limit = 2 * vc_timeout;
    for i in 0..n {
        run.procs.start(i)?;
    }
    let up_by = Instant::now() + Duration::from_secs(30);
    while run.cluster.members_answering() < n {
        if Instant::now() > up_by {
            return Err(format!(
                "the cluster did not come up; see {}/data/*/node.log",
                run.args.dir.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    run.say(&format!("{n} members up (f = {f}), every link through its fault proxy; seed {}", run.args.seed));
    let watch = watch::Watch::start(&run.cluster);
    let accounts: Vec<String> = (0..run.args.clients).map(|c| format!("bench-{c}")).collect();
    let load = load::Load::start(run.cluster.clone(), accounts, run.args.seed)?;
    let mut plan = Plan::new(run.args.seed, n, f);
    let duration: Duration = run.args.duration.into();
    let end = Instant::now() + duration;
    // A moment of normal operation first: the baseline every fault departs from.
    std::thread::sleep(Duration::from_secs(2).min(duration));
    while Instant::now() < end {
        let episode = plan.next_episode();
        let undo = run.inject(&episode.fault)?;
        std::thread::sleep(episode.hold.min(end.saturating_duration_since(Instant::now())));
        let above = watch.top();
        run.heal(&episode.fault, &undo)?;
        let healed = Instant::now();
        let took = watch.commit_after(healed, above, 5 * limit);
        match took {
            Some(t) => run.say(&format!("committing again {} ms after the heal", t.as_millis())),
            None => run.say("no commit after the heal"),
        }
        run.recoveries.push(Recovery { after: episode.fault.kind().into(), took });
        let calm = episode.calm.saturating_sub(healed.elapsed());
        std::thread::sleep(calm.min(end.saturating_duration_since(Instant::now())));
    }
    run.say(&format!("faults over; {} transfers acknowledged; draining", load.acknowledged()));
    // Every member is up and every link healed: in-flight transfers get their answer.
    let ops = load.finish(Duration::from_secs(20));
    if !quiesce(&run.cluster, Duration::from_secs(30)) {
        run.say("the members did not all reach one executed seq within 30 s");
    }
    watch.stop();
    let finals: Vec<Final> = (0..n).filter_map(|i| final_state(&run.cluster, i)).collect();
    let history = History {
        genesis: run.cluster.genesis.accounts.iter().map(|a| (a.name.clone(), a.balance)).collect(),
        ops,
        finals,
        members: run.procs.names.clone(),
        observed: std::mem::take(&mut *watch.observed.lock().unwrap_or_else(|p| p.into_inner())),
        recoveries: run.recoveries.clone(),
        journal_faults: run.journal_faults.clone(),
        recovery_limit: limit,
    };
    let violations = check::check(&history);
    let acked = history.ops.iter().filter(|o| o.ack.is_some()).count();
    let worst = run.recoveries.iter().filter_map(|r| r.took).max().map(|t| t.as_millis() as u64);
    let top = history.finals.iter().map(|f| f.last_executed).max().unwrap_or(0);
    for v in &violations {
        run.say(&format!("VIOLATION: {v}"));
    }
    let report = json!({
        "seed": run.args.seed,
        "agents": n,
        "max_failures": f,
        "duration_s": duration.as_secs_f64(),
        "faults": run.counts.values().sum::<u64>(),
        "faults_by_kind": run.counts,
        "damaged_journals": run.journal_outcomes,
        "transfers": {
            "signed": history.ops.len(),
            "acknowledged": acked,
            "unacknowledged": history.ops.len() - acked,
        },
        "executed_seq": top,
        "digests_compared": history.observed.len(),
        "timeout_suspicions": history.finals.iter().map(|f| f.suspicions).max().unwrap_or(0),
        "recovery_ms": { "worst": worst, "limit": limit.as_millis() as u64, "heals": run.recoveries.len() },
        "bytes_through_proxies": run.net.bytes(),
        "violations": violations,
        "replay": format!(
            "phalanx chaos --dir DIR --seed {} --agents {} --clients {} --duration {}",
            run.args.seed,
            n,
            run.args.clients,
            humantime::format_duration(duration)
        ),
    });
    Ok((report, violations))
}

fn print_report(r: &Value, violations: &[String]) {
    println!();
    println!(
        "{} faults injected over {} s ({}), {} transfers signed, {} acknowledged and checked",
        r["faults"],
        r["duration_s"],
        r["faults_by_kind"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "))
            .unwrap_or_default(),
        r["transfers"]["signed"],
        r["transfers"]["acknowledged"]
    );
    println!(
        "executed up to seq {}; {} (seq, digest) observations compared; worst recovery after a heal {} ms (limit {} ms)",
        r["executed_seq"], r["digests_compared"], r["recovery_ms"]["worst"], r["recovery_ms"]["limit"]
    );
    if violations.is_empty() {
        println!(
            "[PASS] no violation: exactly-once, conservation, equal digests, no honest member accused, recovery within the limit"
        );
    } else {
        for v in violations {
            println!("[FAIL] {v}");
        }
        println!("replay: {}", r["replay"].as_str().unwrap_or(""));
    }
}
