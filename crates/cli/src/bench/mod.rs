//! `phalanx bench`: the benchmark harness. Against a running cluster folder, or with `--nodes`
//! a fresh local cluster per size (created, started, measured, stopped). Transfers are signed
//! before the timed phase, as clients would on their own machines; load is closed loop
//! (`--clients`) or open loop (`--rate`).

mod flood;
mod kill;
mod limit;
mod load;

use clap::Args;
use load::{Load, Window};
use phalanx_client::{Cluster, clock_nonce};
use phalanx_core::wire::ClientRequest;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct BenchArgs {
    /// Cluster folder to measure (ignored with --nodes).
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    /// Cluster sizes: a fresh local cluster per size, e.g. 4,7,10,13.
    #[arg(long, value_delimiter = ',')]
    nodes: Option<Vec<usize>>,
    /// ledger: client-signed transfers, verified and executed. opaque: fixed-size unsigned
    /// payloads, ordered and acknowledged but not executed (testing clusters only).
    #[arg(long, value_enum, default_value_t = Mode::Ledger)]
    mode: Mode,
    /// Size of each opaque payload.
    #[arg(long, default_value_t = 512)]
    payload_bytes: usize,
    /// Closed loop: clients with one outstanding transfer each (bench-N accounts).
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Open loop: transfers offered per second, whatever the cluster manages.
    #[arg(long)]
    rate: Option<u64>,
    /// A fixed number of transfers instead of a timed run (no warm-up).
    #[arg(long)]
    txs: Option<usize>,
    /// Measured phase.
    #[arg(long, default_value = "10s")]
    duration: humantime::Duration,
    /// Load before the measured phase, not counted.
    #[arg(long, default_value = "2s")]
    warmup: humantime::Duration,
    /// Print this machine's signature-verification bound per cluster size (with --nodes, only
    /// those sizes) and, with --nodes and a load, compare each row with it.
    #[arg(long)]
    limit: bool,
    /// First replica port of the fresh clusters (HTTP ports are +100).
    #[arg(long, default_value_t = 7800)]
    base_port: u16,
    /// A third into the measured phase, kill the primary's process and report the time to the
    /// first transfer accepted from the next view (target: view-change timeout + 200 ms).
    #[arg(long)]
    kill_primary: bool,
    /// The last agent turns Byzantine: its node stops and the benchmark floods every other
    /// agent with its key for the measured phase; reports each node's peak memory (target
    /// under 256 MiB) alongside what still commits (target: honest p50 at most twice an
    /// unflooded run's).
    #[arg(long, conflicts_with = "kill_primary")]
    flood: bool,
    /// With --flood, flood only the first N agents (the primary first): what one node sees
    /// apart from the load the flood puts on the machine that all local agents share.
    #[arg(long, requires = "flood", value_name = "N")]
    flood_victims: Option<usize>,
    /// Keep the fresh clusters' folders (logs) instead of deleting them.
    #[arg(long)]
    keep: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Ledger,
    Opaque,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Ledger => "ledger",
            Mode::Opaque => "opaque",
        }
    }
}

/// What one account sends, in nonce order.
type Queue = Box<dyn Iterator<Item = ClientRequest> + Send>;

/// Open-loop pacing: a chunk every tick.
const TICK: Duration = Duration::from_millis(5);
/// Accounts the fresh clusters get for open-loop load (each account's nonces must execute in
/// order, so load is spread over many).
const OPEN_LOOP_ACCOUNTS: usize = 1024;

pub fn bench(a: BenchArgs) -> Result<ExitCode, String> {
    if a.payload_bytes > phalanx_core::wire::limits::MAX_OPAQUE_BYTES {
        return Err(format!(
            "--payload-bytes {} is above the {}-byte limit of an opaque payload",
            a.payload_bytes,
            phalanx_core::wire::limits::MAX_OPAQUE_BYTES
        ));
    }
    let costs = (a.limit || a.txs.is_none()).then(|| limit::measure(Duration::from_millis(400)));
    if a.limit {
        print_limit(costs.as_ref().expect("measured above"), &a)?;
        if a.nodes.is_none() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let mut ok = true;
    let mut rows = Vec::new();
    match &a.nodes {
        None => {
            let cluster = Arc::new(Cluster::load(&a.dir)?);
            let row = run(&a, cluster, &a.dir, costs.as_ref())?;
            ok &= row["failed"] == 0;
            rows.push(row);
        }
        Some(sizes) => {
            for (k, &n) in sizes.iter().enumerate() {
                let dir = std::env::temp_dir().join(format!("phalanx-bench-{}-{n}", std::process::id()));
                let port = a.base_port + (k as u16 % 4) * 20;
                let row = fresh(&a, n, &dir, port, costs.as_ref());
                // A failed size keeps its folder: the error names its logs.
                if !a.keep && row.is_ok() {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                let row = row?;
                ok &= row["failed"] == 0;
                rows.push(row);
            }
        }
    }
    if !a.json {
        print_table(&rows);
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print_limit(c: &limit::Costs, a: &BenchArgs) -> Result<(), String> {
    let sizes = a.nodes.clone().unwrap_or_else(|| vec![4, 7, 10, 13]);
    let rows: Vec<Value> = sizes
        .iter()
        .map(|&n| json!({"nodes": n, "limit_tx_per_sec": c.limit(n).round(), "target_tx_per_sec": (0.8 * c.limit(n)).round()}))
        .collect();
    let v = json!({
        "cores": c.cores,
        "verify_single_us": (c.single_us * 100.0).round() / 100.0,
        "verify_batch_us": (c.batch_us * 100.0).round() / 100.0,
        "verify_batch_remembered_keys_us": (c.remembered_us * 100.0).round() / 100.0,
        "limits": rows,
    });
    if a.json {
        println!("{v}");
    } else {
        println!(
            "Ed25519 on this machine: {:.1} µs per signature singly, {:.1} µs in batches of 64; {} cores",
            c.single_us, c.batch_us, c.cores
        );
        println!(
            "  (Phalanx's own verifier remembers signer points: {:.1} µs per signature in the same batches)",
            c.remembered_us
        );
        println!("signature-bound limit = cores ÷ (n × batch cost of ed25519-zebra):");
        for r in &rows {
            println!(
                "  n={:<3} {:>8} tx/s   (0.8× target {} tx/s)",
                r["nodes"],
                r["limit_tx_per_sec"].as_f64().unwrap_or(0.0),
                r["target_tx_per_sec"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(())
}

/// Runs `phalanx ARGS` (this binary) and returns what it printed; fails with its output if it
/// fails.
pub(crate) fn phalanx(args: &[&str]) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let out = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run phalanx {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "phalanx {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Creates, starts, measures and stops an n-agent cluster in `dir`.
fn fresh(
    a: &BenchArgs,
    n: usize,
    dir: &Path,
    port: u16,
    costs: Option<&limit::Costs>,
) -> Result<Value, String> {
    let _ = std::fs::remove_dir_all(dir);
    let d = dir.to_str().ok_or("temporary folder is not UTF-8")?;
    let accounts = if a.rate.is_some() { OPEN_LOOP_ACCOUNTS } else { a.clients.max(2) }.to_string();
    let (n_s, port_s) = (n.to_string(), port.to_string());
    let mut init =
        vec!["init", "--agents", &n_s, "--dir", d, "--base-port", &port_s, "--bench-clients", &accounts];
    if a.mode == Mode::Opaque {
        init.push("--testing");
    }
    phalanx(&init)?;
    phalanx(&["up", "--dir", d])?;
    let result = started(dir).and_then(|_| Cluster::load(dir)).and_then(|c| run(a, Arc::new(c), dir, costs));
    // Throwaway clusters: stop them hard, so none outlives the run and holds its ports.
    let _ = phalanx(&["down", "--dir", d, "--kill"]);
    result
}

/// Opaque payloads: for each account in use, `per_account` payloads (unbounded with `None`),
/// made as they are sent since they need no signature.
fn opaque_queues(
    cluster: &Cluster,
    accounts: usize,
    per_account: Option<usize>,
    payload_bytes: usize,
) -> Result<Vec<Queue>, String> {
    let base = clock_nonce();
    // Incompressible filler, shared; every request still differs by its client and nonce.
    let payload: Vec<u8> =
        (0u64..).flat_map(|i| phalanx_crypto::digest(&i.to_le_bytes()).0).take(payload_bytes).collect();
    (0..accounts)
        .map(|i| {
            let client = cluster.client_key(&format!("bench-{i}"))?.public();
            let payload = payload.clone();
            let nonces = base..base + per_account.map_or(u64::MAX - base, |p| p as u64);
            Ok(Box::new(nonces.map(move |k| ClientRequest::opaque(client, k, payload.clone()))) as Queue)
        })
        .collect()
}

/// Every agent of a fresh cluster runs: a port still held by another process (say, a cluster
/// left over from an interrupted run) stops the benchmark instead of measuring a stranger.
fn started(dir: &Path) -> Result<(), String> {
    std::thread::sleep(Duration::from_millis(300));
    for e in std::fs::read_dir(dir.join("data")).map_err(|e| e.to_string())?.flatten() {
        let pid = std::fs::read_to_string(e.path().join("node.pid")).unwrap_or_default();
        let cmd = std::fs::read(format!("/proc/{}/cmdline", pid.trim())).unwrap_or_default();
        if !String::from_utf8_lossy(&cmd).contains(&*dir.to_string_lossy()) {
            return Err(format!(
                "{} did not start (ports taken by another process?): see {}",
                e.file_name().to_string_lossy(),
                e.path().join("node.log").display()
            ));
        }
    }
    Ok(())
}

/// Pre-signed transfers: for each account in use, a queue of transfers to the next account.
fn presign(
    cluster: &Cluster,
    accounts: usize,
    per_account: usize,
) -> Result<Vec<Vec<ClientRequest>>, String> {
    let keys: Vec<_> =
        (0..accounts).map(|i| cluster.client_key(&format!("bench-{i}"))).collect::<Result<_, _>>()?;
    let base = clock_nonce();
    let sign_range = |range: std::ops::Range<usize>| {
        range
            .map(|c| {
                let (from, to) = (format!("bench-{c}"), format!("bench-{}", (c + 1) % accounts.max(2)));
                (0..per_account)
                    .map(|k| cluster.sign_transfer(&keys[c], base + k as u64, &from, &to, 1))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    // Signing is the clients' work: spread it over the cores, before anything is timed.
    let threads = std::thread::available_parallelism().map_or(1, |c| c.get()).max(1);
    let per = accounts.div_ceil(threads);
    let parts: Vec<Vec<Vec<ClientRequest>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let range = (t * per).min(accounts)..((t + 1) * per).min(accounts);
                s.spawn(move || sign_range(range))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    Ok(parts.into_iter().flatten().collect())
}

fn bench_accounts(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("clients"))
        .map(|it| {
            it.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("bench-"))
                .count()
        })
        .unwrap_or(0)
}

/// What the nodes did so far, summed over the nodes that answer.
#[derive(Clone, Default)]
struct Counters {
    /// CPU seconds per node.
    cpu: Vec<f64>,
    messages: u64,
    bytes: u64,
    fsyncs: u64,
    /// Messages by kind (`Message::NAMES`).
    by_kind: std::collections::BTreeMap<String, u64>,
    /// The highest executed seq and the highest view.
    seq: u64,
    view: u64,
}

fn node_counters(cluster: &Cluster, dir: &Path) -> Counters {
    let mut c = Counters::default();
    for m in &cluster.agents {
        let pid =
            std::fs::read_to_string(dir.join("data").join(&m.name).join("node.pid")).unwrap_or_default();
        c.cpu.push(cpu_seconds(pid.trim()));
    }
    for s in cluster.get_all("/v1/status").into_iter().flatten() {
        let t = &s["traffic"];
        c.messages += t["messages_sent"].as_u64().unwrap_or(0);
        c.bytes += t["bytes_sent"].as_u64().unwrap_or(0);
        c.fsyncs += t["fsyncs"].as_u64().unwrap_or(0);
        for (kind, n) in t["messages_by_kind"].as_object().into_iter().flatten() {
            *c.by_kind.entry(kind.clone()).or_default() += n.as_u64().unwrap_or(0);
        }
        c.seq = c.seq.max(s["last_executed"].as_u64().unwrap_or(0));
        c.view = c.view.max(s["view"].as_u64().unwrap_or(0));
    }
    c
}

/// User + system CPU time of a process (Linux /proc; 0 elsewhere).
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the command name (which may contain spaces) start at field 3.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (index 11 and 12 here), in 1/100 s.
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let v = sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    (v * 100.0).round() / 100.0
}

/// One measured run against `cluster`.
fn run(
    a: &BenchArgs,
    cluster: Arc<Cluster>,
    dir: &Path,
    costs: Option<&limit::Costs>,
) -> Result<Value, String> {
    let n = cluster.n();
    let available = bench_accounts(dir);
    let (warmup, duration) = match a.txs {
        Some(_) => (Duration::ZERO, Duration::from_secs(3600)),
        None => (a.warmup.into(), a.duration.into()),
    };
    // How much to sign: the fixed count, or what 1.5× the signature bound could consume.
    let expected = costs.map_or(20_000.0, |c| 1.5 * c.limit(n));
    let total_secs = (warmup + duration).as_secs_f64();
    let (accounts, per_account) = match (a.txs, a.rate) {
        (Some(t), _) => {
            let c = a.clients.clamp(1, t.max(1));
            (c, t.div_ceil(c))
        }
        (None, Some(r)) => {
            let acc = OPEN_LOOP_ACCOUNTS.min(available);
            (acc, ((r as f64 * total_secs * 1.05) as usize).div_ceil(acc.max(1)) + 1)
        }
        (None, None) => {
            (a.clients.max(1), ((expected * total_secs) as usize).div_ceil(a.clients.max(1)).min(50_000))
        }
    };
    if accounts > available {
        return Err(format!(
            "{accounts} bench accounts needed, the cluster has {available} (init --bench-clients)"
        ));
    }
    let mut queues: Vec<Queue> = match a.mode {
        Mode::Ledger => {
            if !a.json {
                eprintln!("n={n}: signing {} transfers for {accounts} accounts…", accounts * per_account);
            }
            let signed = presign(&cluster, accounts, per_account)?;
            signed.into_iter().map(|q| Box::new(q.into_iter()) as Queue).collect()
        }
        Mode::Opaque => {
            if !cluster.genesis.testing {
                return Err("--mode opaque needs a testing cluster (init --testing): other clusters \
                            refuse unsigned payloads"
                    .into());
            }
            opaque_queues(&cluster, accounts, a.txs.map(|_| per_account), a.payload_bytes)?
        }
    };
    if let Some(t) = a.txs {
        // Exactly t requests: the last accounts send fewer.
        let mut extra = accounts * per_account - t;
        queues = queues
            .into_iter()
            .rev()
            .map(|q| {
                let cut = extra.min(per_account);
                extra -= cut;
                Box::new(q.take(per_account - cut)) as Queue
            })
            .collect();
        queues.reverse();
    }
    let start = Instant::now() + Duration::from_millis(50);
    let window = Window { start: start + warmup, end: start + warmup + duration };
    let mut load = Load::start(cluster.clone(), window)?;
    let client_cpu0 = cpu_seconds("self");
    let mut before = None;
    let measure_start = |before: &mut Option<_>| {
        if before.is_none() && Instant::now() >= window.start {
            *before = Some((Instant::now(), node_counters(&cluster, dir)));
        }
    };
    let flood =
        if a.flood { Some(flood::start(&cluster, dir, window.start, a.flood_victims)?) } else { None };
    let killer = a.kill_primary.then(|| {
        let (cluster, dir) = (cluster.clone(), dir.to_path_buf());
        let at = window.start + duration / 3;
        std::thread::spawn(move || {
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            kill::kill_primary(&cluster, &dir)
        })
    });
    let mut ran_dry = false;
    match a.rate {
        Some(rate) if a.txs.is_none() => {
            // Open loop: transfer j comes from account j mod A, so each account's nonces go out in order.
            let mut sent = 0u64;
            while Instant::now() < start {
                std::thread::sleep(Duration::from_millis(1));
            }
            while Instant::now() < window.end {
                measure_start(&mut before);
                let due = (rate as f64 * start.elapsed().as_secs_f64()) as u64;
                let mut chunk = Vec::new();
                while sent < due && chunk.len() < phalanx_node::api::MAX_SUBMIT_BATCH {
                    let acc = (sent as usize) % queues.len();
                    let Some(r) = queues[acc].next() else {
                        ran_dry = true;
                        break;
                    };
                    chunk.push(r);
                    sent += 1;
                }
                if !chunk.is_empty() {
                    load.send(&chunk, None);
                }
                std::thread::sleep(TICK);
            }
        }
        _ => {
            // Closed loop: each client has one transfer outstanding; clients are served by a few
            // drivers, each sending its clients' next transfers as one chunk.
            let drivers = queues.len().clamp(1, 8);
            let mut per_driver: Vec<Vec<Queue>> = (0..drivers).map(|_| Vec::new()).collect();
            for (i, q) in queues.drain(..).enumerate() {
                per_driver[i % drivers].push(q);
            }
            let (notify_txs, notify_rxs): (Vec<_>, Vec<_>) =
                (0..drivers).map(|_| std::sync::mpsc::channel::<()>()).unzip();
            let mut ready: Vec<bool> = vec![true; drivers];
            while Instant::now() < start {
                std::thread::sleep(Duration::from_millis(1));
            }
            loop {
                measure_start(&mut before);
                if Instant::now() >= window.end {
                    break;
                }
                let mut active = false;
                for d in 0..drivers {
                    if !ready[d] {
                        match notify_rxs[d].try_recv() {
                            Ok(()) => ready[d] = true,
                            Err(std::sync::mpsc::TryRecvError::Empty) => {
                                active = true;
                                continue;
                            }
                            Err(_) => continue,
                        }
                    }
                    let chunk: Vec<ClientRequest> =
                        per_driver[d].iter_mut().filter_map(|q| q.next()).collect();
                    if chunk.is_empty() {
                        if a.txs.is_none() {
                            ran_dry = true;
                        }
                        continue;
                    }
                    active = true;
                    ready[d] = false;
                    load.send(&chunk, Some(notify_txs[d].clone()));
                }
                if !active {
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
    let flood = flood.map(flood::Flood::finish);
    // CPU over the measured window only (the backlog drained below is not part of it).
    let cpu_at_end = node_counters(&cluster, dir).cpu;
    let tally = load.finish(Duration::from_secs(30));
    let kill = match killer.map(|k| k.join()) {
        Some(Ok(Ok(k))) => {
            Some(kill::report(&k, &tally.first_accept_in_view, cluster.genesis.params.view_change_timeout_ms))
        }
        Some(Ok(Err(e))) => return Err(format!("--kill-primary: {e}")),
        Some(Err(_)) => return Err("--kill-primary: the killer thread panicked".into()),
        None => None,
    };
    let end = Instant::now().min(window.end);
    let after = node_counters(&cluster, dir);
    let client_cpu = cpu_seconds("self") - client_cpu0;
    let (t0, before) = before.unwrap_or_else(|| (window.start, after.clone()));
    let secs = match a.txs {
        Some(_) => start.elapsed().as_secs_f64(),
        None => end.duration_since(t0).as_secs_f64().max(1e-3),
    };
    let mut lat = tally.latencies;
    lat.sort_by(|x, y| x.total_cmp(y));
    let done = (tally.committed + tally.rejected) as f64;
    let per_tx = |x: u64| if done > 0.0 { (x as f64 / done * 10.0).round() / 10.0 } else { 0.0 };
    let tx_per_sec = (done / secs).round();
    let limit = costs.map(|c| c.limit(n).round());
    let row = json!({
        "nodes": n,
        "f": cluster.genesis.max_failures,
        "mode": a.mode.name(),
        "load": match (a.rate, a.txs) { (Some(r), None) => format!("open {r} tx/s"), _ => format!("closed {accounts} clients") },
        "txs": a.txs,
        "clients": accounts,
        "seconds": (secs * 1000.0).round() / 1000.0,
        "committed": tally.committed,
        "rejected": tally.rejected,
        "failed": tally.failed,
        "tx_per_sec": tx_per_sec,
        "latency_ms": {"p50": percentile(&lat, 0.5), "p95": percentile(&lat, 0.95), "p99": percentile(&lat, 0.99)},
        // A killed node's counter is gone: only what each node still reports is summed.
        "cpu_pct": (cpu_at_end.iter().zip(&before.cpu).map(|(x, y)| (x - y).max(0.0)).sum::<f64>() / secs
            / std::thread::available_parallelism().map_or(1, |c| c.get()) as f64 * 100.0).round(),
        "client_cpu_pct": (client_cpu / start.elapsed().as_secs_f64() * 100.0).round(),
        "msgs_per_tx": per_tx(after.messages - before.messages),
        "bytes_per_tx": per_tx(after.bytes - before.bytes),
        // Requests ordered per consensus instance: votes cost per instance, so this is what
        // amortises them.
        "tx_per_instance": if after.seq > before.seq { (done / (after.seq - before.seq) as f64).round() } else { 0.0 },
        "msgs_per_tx_by_kind": after.by_kind.iter().map(|(k, n)| (k.clone(), json!(per_tx(n - before.by_kind.get(k).copied().unwrap_or(0))))).collect::<serde_json::Map<_, _>>(),
        "view_changes": after.view - before.view,
        "fsyncs_per_tx": if done > 0.0 { ((after.fsyncs - before.fsyncs) as f64 / done * 1000.0).round() / 1000.0 } else { 0.0 },
        "limit_tx_per_sec": limit,
        "vs_limit": limit.map(|l| (tx_per_sec / l * 100.0).round() / 100.0),
        "presigned_ran_out": ran_dry,
        "first_error": tally.first_error,
        "kill_primary": kill,
        "flood": flood,
    });
    if a.json {
        println!("{row}");
    }
    Ok(row)
}

fn print_table(rows: &[Value]) {
    let cell = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    println!(
        "{:>3} {:>6} {:>18} {:>8} {:>8} {:>8} {:>8} {:>6} {:>8} {:>9} {:>7} {:>8} {:>7}",
        "n",
        "mode",
        "load",
        "tx/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "cpu%",
        "msgs/tx",
        "bytes/tx",
        "tx/inst",
        "limit",
        "×limit"
    );
    for r in rows {
        println!(
            "{:>3} {:>6} {:>18} {:>8} {:>8} {:>8} {:>8} {:>6} {:>8} {:>9} {:>7} {:>8} {:>7}",
            cell(&r["nodes"]),
            cell(&r["mode"]),
            cell(&r["load"]),
            cell(&r["tx_per_sec"]),
            cell(&r["latency_ms"]["p50"]),
            cell(&r["latency_ms"]["p95"]),
            cell(&r["latency_ms"]["p99"]),
            cell(&r["cpu_pct"]),
            cell(&r["msgs_per_tx"]),
            cell(&r["bytes_per_tx"]),
            cell(&r["tx_per_instance"]),
            cell(&r["limit_tx_per_sec"]),
            cell(&r["vs_limit"])
        );
        if r["view_changes"].as_u64().unwrap_or(0) > 0 && r["kill_primary"].is_null() {
            println!("    {} view change(s) during the measured phase", r["view_changes"]);
        }
        if r["failed"] != 0 {
            println!("    {} transfers failed; first error: {}", r["failed"], r["first_error"]);
        }
        if let Some(k) = r["kill_primary"].as_object() {
            println!(
                "    primary {} killed in view {}: first transfer accepted from a later view {} ms later (target {} ms: {})",
                cell(&k["victim"]),
                cell(&k["view_before"]),
                cell(&k["recovery_ms"]),
                cell(&k["target_ms"]),
                if k["met"] == true { "met" } else { "missed" }
            );
        }
        if let Some(f) = r["flood"].as_object() {
            println!(
                "    flooded by {} ({} frames, {} MiB): worst honest peak RSS {} MiB (target < {} MiB: {})",
                cell(&f["attacker"]),
                cell(&f["frames_sent"]),
                cell(&f["mib_sent"]),
                cell(&f["worst_rss_mib"]),
                cell(&f["target_rss_mib"]),
                if f["rss_met"] == true { "met" } else { "missed" }
            );
        }
        if r["presigned_ran_out"] == true {
            println!("    the pre-signed transfers ran out before the end: the figure is a lower bound");
        }
    }
}
