//! Observability on real processes: a real Prometheus scrapes a 4-agent cluster, and its
//! query API shows the series exist and move (commits under load, a quarantine after a fault).
//!
//! Needs the `prometheus` binary (Debian's `prometheus` package; `.ci/run` installs it). Without
//! it the test says so and passes, except under CI (`CI` set), where it fails.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{free_base, ok, phalanx};

/// `prometheus` on the PATH, or None (a failure under CI).
fn prometheus_binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI must install Prometheus (apt-get install prometheus)");
        eprintln!("skipped: no `prometheus` binary (apt-get install prometheus)");
    }
    found
}

struct Running {
    dir: PathBuf,
    prometheus: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.prometheus.kill();
        let _ = self.prometheus.wait();
        let _ = phalanx(&["down", "--dir", self.dir.to_str().unwrap(), "--kill"]);
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs a PromQL instant query; the result vector's (labels, value) pairs.
fn query(prom: &str, q: &str) -> Vec<(Value, f64)> {
    let url = format!("http://{prom}/api/v1/query");
    let Ok(mut resp) = ureq::get(&url).query("query", q).call() else { return Vec::new() };
    let body: Value =
        serde_json::from_str(&resp.body_mut().read_to_string().unwrap_or_default()).unwrap_or_default();
    assert_eq!(body["status"], "success", "query {q}: {body}");
    (body["data"]["result"].as_array().cloned().unwrap_or_default().into_iter())
        .map(|r| {
            (r["metric"].clone(), r["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN))
        })
        .collect()
}

/// Polls `q` until `done` holds for its result.
fn until(
    prom: &str,
    q: &str,
    timeout: Duration,
    done: impl Fn(&[(Value, f64)]) -> bool,
) -> Vec<(Value, f64)> {
    let deadline = Instant::now() + timeout;
    loop {
        let r = query(prom, q);
        if done(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "Prometheus query {q} never held; last result: {r:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_real_prometheus_scrapes_every_node_and_sees_commits_and_a_quarantine() {
    let Some(binary) = prometheus_binary() else { return };
    let dir = std::env::temp_dir().join(format!("phalanx-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let base = free_base(5);
    let d = dir.to_str().unwrap().to_string();
    ok(&[
        "init",
        "--agents",
        "4",
        "--testing",
        "--dir",
        &d,
        "--base-port",
        &base.to_string(),
        "--bench-clients",
        "16",
    ]);
    ok(&["up", "--dir", &d]);
    let targets: Vec<String> = (0..4).map(|i| format!("'127.0.0.1:{}'", base + 100 + i)).collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: phalanx\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    // The fifth port pair is free and ours: Prometheus listens on its HTTP one.
    let prom = format!("127.0.0.1:{}", base + 104);
    let child = Command::new(binary)
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address={prom}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let _running = Running { dir: dir.clone(), prometheus: child };

    // Every node is scraped, and the series an operator needs are there.
    until(&prom, "up{job=\"phalanx\"} == 1", Duration::from_secs(60), |r| r.len() == 4);
    for series in [
        "phalanx_height",
        "phalanx_view",
        "phalanx_epoch",
        "phalanx_voters",
        "phalanx_quorum",
        "phalanx_requests_pending",
        "phalanx_member_reputation",
        "phalanx_peer_link_up",
        "phalanx_journal_fsync_duration_seconds_bucket",
        "phalanx_messages_sent_total",
        "phalanx_received_bytes_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ] {
        until(&prom, &format!("count by (instance) ({series})"), Duration::from_secs(20), |r| r.len() == 4);
    }
    // Each node hears the three others.
    until(&prom, "sum by (instance) (phalanx_peer_link_up)", Duration::from_secs(20), |r| {
        r.len() == 4 && r.iter().all(|(_, v)| *v == 3.0)
    });

    // Under load, commits move on every node, and so do latency and batch sizes.
    let load_dir = d.clone();
    let load = std::thread::spawn(move || {
        phalanx(&["bench", "--dir", &load_dir, "--txs", "30000", "--clients", "16", "--json"])
    });
    until(&prom, "rate(phalanx_transactions_committed_total[5s]) > 0", Duration::from_secs(40), |r| {
        r.len() == 4
    });
    until(&prom, "increase(phalanx_height[5s]) > 0", Duration::from_secs(20), |r| r.len() == 4);
    until(&prom, "sum(phalanx_commit_latency_seconds_count) > 0", Duration::from_secs(20), |r| r.len() == 1);
    until(
        &prom,
        "histogram_quantile(0.5, sum by (le) (rate(phalanx_batch_size_bucket[5s]))) >= 1",
        Duration::from_secs(20),
        |r| r.len() == 1,
    );
    until(&prom, "phalanx_checkpoint_digest_disagreements == 0", Duration::from_secs(20), |r| r.len() == 4);
    assert!(query(&prom, "phalanx_quarantined_members > 0").is_empty(), "nobody is quarantined yet");

    // A Byzantine agent: the quarantine shows on the honest nodes, with its detection.
    ok(&[
        "inject-fault",
        "--dir",
        &d,
        "--agent",
        "bft-agent-4",
        "--fault-type",
        "double-spend",
        "--probability",
        "1",
    ]);
    until(&prom, "phalanx_quarantined_members >= 1", Duration::from_secs(60), |r| r.len() >= 3);
    let flagged = until(&prom, "phalanx_member_quarantined == 1", Duration::from_secs(20), |r| r.len() >= 3);
    assert!(flagged.iter().all(|(m, _)| m["member"] == "bft-agent-4"), "only the faulty agent: {flagged:?}");
    until(
        &prom,
        "sum by (instance) (phalanx_byzantine_detections_total{fault_type=\"double-spend\",method=\"evidence\"}) > 0",
        Duration::from_secs(20),
        |r| r.len() >= 3,
    );
    until(&prom, "phalanx_member_reputation{member=\"bft-agent-4\"} < 0.5", Duration::from_secs(20), |r| {
        r.len() >= 3
    });
    let _ = load.join();
}
