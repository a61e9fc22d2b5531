//! Real node processes on loopback: crash and restart under load, authenticated links, bad
//! input on every interface.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{free_base, ok, phalanx};
use std::time::{Duration, Instant};

fn json(args: &[&str]) -> Value {
    let out = ok(args);
    serde_json::from_str(out.lines().last().unwrap()).unwrap()
}

struct TestCluster {
    dir: PathBuf,
}

impl TestCluster {
    fn new(name: &str, n: u16) -> Self {
        Self::with(name, n, &[])
    }

    fn with(name: &str, n: u16, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("phalanx-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Two spare ports above the cluster's for agents spawned to join it.
        let base = free_base(n + 2).to_string();
        ok(&[
            "init",
            "--agents",
            &n.to_string(),
            "--dir",
            dir.to_str().unwrap(),
            "--base-port",
            &base,
            "--bench-clients",
            "16",
        ]
        .iter()
        .chain(extra)
        .copied()
        .collect::<Vec<_>>());
        ok(&["up", "--dir", dir.to_str().unwrap()]);
        TestCluster { dir }
    }

    fn d(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    fn statuses(&self) -> Vec<Value> {
        json(&["status", "--dir", self.d(), "--json"])["nodes"].as_array().unwrap().clone()
    }

    /// Waits until every node executed the same seq with the same state digest.
    fn converged(&self, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.statuses();
            let heights: Vec<_> = s.iter().map(|v| v["last_executed"].as_u64()).collect();
            let digests: Vec<_> = s.iter().map(|v| v["state_digest"].as_str().map(str::to_string)).collect();
            if heights.iter().all(|h| h.is_some() && *h == heights[0])
                && digests.iter().all(|d| d.is_some() && *d == digests[0])
            {
                return s;
            }
            assert!(Instant::now() < deadline, "nodes did not converge: {s:#?}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let _ = phalanx(&["down", "--dir", self.d(), "--kill"]);
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[test]
fn two_of_seven_killed_under_load_restart_and_catch_up_without_losing_acknowledged_transfers() {
    let c = TestCluster::new("crash", 7);
    let d = c.d().to_string();
    let load = std::thread::spawn(move || {
        json(&["bench", "--dir", &d, "--txs", "600", "--clients", "16", "--json"])
    });
    std::thread::sleep(Duration::from_millis(700));
    ok(&["down", "--dir", c.d(), "--only", "bft-agent-3,bft-agent-6", "--kill"]);
    let first = load.join().unwrap();
    let acked = first["committed"].as_u64().unwrap() + first["rejected"].as_u64().unwrap();
    assert_eq!(acked, 600, "every transfer is acknowledged with two agents down: {first}");
    ok(&["up", "--dir", c.d(), "--only", "bft-agent-3,bft-agent-6"]);
    let second = json(&["bench", "--dir", c.d(), "--txs", "200", "--clients", "8", "--json"]);
    assert_eq!(second["committed"].as_u64().unwrap(), 200, "{second}");
    let s = c.converged(Duration::from_secs(60));
    let h = json(&["health", "--dir", c.d(), "--json"]);
    assert_eq!(h["system_integrity"], "verified", "{h}");
    assert_eq!(h["healthy_agents"], 7);
    // No acknowledged transfer lost: every acknowledged applied transfer is in the state.
    let applied = h["transactions_committed"].as_u64().unwrap();
    assert!(applied >= first["committed"].as_u64().unwrap() + 200, "{h}");
    assert!(s.iter().all(|v| v["last_executed"] == s[0]["last_executed"]));
}

fn http(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn post(addr: &str, body: &str) -> String {
    http(
        addr,
        &format!(
            "POST /v1/transactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn genesis(dir: &Path) -> toml::Value {
    toml::from_str(&std::fs::read_to_string(dir.join("genesis.toml")).unwrap()).unwrap()
}

#[test]
fn bad_input_on_every_interface_is_refused_and_costs_nothing_else() {
    let c = TestCluster::new("bad-input", 4);
    let g = genesis(&c.dir);
    let http_addr = g["members"][0]["http_addr"].as_str().unwrap().to_string();
    let replica_addr = g["members"][1]["replica_addr"].as_str().unwrap().to_string();

    // HTTP: malformed JSON, oversized body, bad signature.
    let r = post(&http_addr, "{not json");
    assert!(r.starts_with("HTTP/1.1 400") && r.contains("malformed request JSON"), "{r}");
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(300_000));
    assert!(post(&http_addr, &big).starts_with("HTTP/1.1 413"));
    let alice = genesis(&c.dir)["accounts"][0]["owner"].as_str().unwrap().to_string();
    let forged = format!(
        "{{\"client\":\"{alice}\",\"nonce\":1,\"op\":{{\"type\":\"transfer\",\"from\":\"alice\",\"to\":\"bob\",\"amount\":5}},\"signature\":\"{}\"}}",
        "ab".repeat(64)
    );
    let r = post(&http_addr, &forged);
    assert!(r.starts_with("HTTP/1.1 401") && r.contains("bad signature"), "{r}");
    let r = post(
        &http_addr,
        "{\"client\":\"zz\",\"nonce\":1,\"op\":{\"type\":\"transfer\",\"from\":\"a\",\"to\":\"b\",\"amount\":1},\"signature\":\"00\"}",
    );
    assert!(r.starts_with("HTTP/1.1 400") && r.contains("client"), "{r}");
    // The batch endpoint: garbage and an empty list are refused with what was wrong.
    let batch = |body: &[u8]| {
        let head = format!(
            "POST /v1/transactions/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let mut s = TcpStream::connect(&http_addr).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let r = batch(&[0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2]);
    assert!(r.starts_with("HTTP/1.1 400") && r.contains("malformed batch"), "{r}");
    let r = batch(&[0]);
    assert!(r.starts_with("HTTP/1.1 400") && r.contains("1 to 4096 requests"), "{r}");

    // Replica port: garbage instead of a Noise handshake, and an oversized frame. Each loses only
    // its own connection.
    let mut garbage = TcpStream::connect(&replica_addr).unwrap();
    garbage.write_all(&[0, 0, 0, 5, 1, 2, 3, 4, 5]).unwrap();
    let mut oversized = TcpStream::connect(&replica_addr).unwrap();
    oversized.write_all(&(100u32 << 20).to_be_bytes()).unwrap();
    for mut s in [garbage, oversized] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        // The node refuses the handshake and closes: read until EOF.
        let mut total = 0;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => panic!("connection was not closed: {e}"),
            }
        }
        assert!(total < 4096);
    }
    // An impostor that claims a member's key without holding it: crates/node/tests/links.rs.

    // The cluster is unaffected.
    let out = ok(&["submit", "--dir", c.d(), "--from", "alice", "--to", "bob", "--amount", "5"]);
    assert!(out.contains("applied"), "{out}");
    c.converged(Duration::from_secs(30));
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn agent_keys_are_pkcs8_pem_that_openssl_reads() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("openssl not installed; skipping");
        return;
    }
    let c = TestCluster::new("openssl", 4);
    let agents = json(&["agents", "--dir", c.d(), "--json"]);
    let out = Command::new("openssl")
        .args([
            "pkey",
            "-in",
            c.dir.join("keys/bft-agent-1.pem").to_str().unwrap(),
            "-pubout",
            "-outform",
            "DER",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let der = out.stdout;
    let raw: String = der[der.len() - 32..].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(agents["agents"][0]["public_key"], raw);
    assert_eq!(agents["agents"][0]["role"], "primary");
    let h = json(&["health", "--dir", c.d(), "--json"]);
    assert_eq!(h["quorum_met"], true);
    // Memory: stored through consensus, read back from committed state.
    ok(&["memory", "store", "--dir", c.d(), "--key", "plan", "--value", "ship it", "--namespace", "team"]);
    let v = json(&["memory", "retrieve", "--dir", c.d(), "--key", "plan", "--namespace", "team", "--json"]);
    assert_eq!(v["value"], "ship it");
    let big = "x".repeat(20_000);
    let out = phalanx(&["memory", "store", "--dir", c.d(), "--key", "big", "--value", &big]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("16 KiB"));
}

/// A production cluster refuses fault injection and logs the attempt; operator actions signed
/// by anyone but the operator are refused; a forced view change by the operator installs a new
/// primary and is reported as a view-change event.
#[test]
fn operator_actions_are_checked_by_the_cluster() {
    let c = TestCluster::new("operator", 4);
    // Unsigned opaque payloads are benchmark load: a production cluster refuses them.
    let opaque = phalanx(&["bench", "--dir", c.d(), "--mode", "opaque", "--txs", "10", "--json"]);
    assert!(!opaque.status.success());
    assert!(String::from_utf8_lossy(&opaque.stderr).contains("needs a testing cluster"));
    let addr = genesis(&c.dir)["members"][0]["http_addr"].as_str().unwrap().to_string();
    let client = genesis(&c.dir)["accounts"][0]["owner"].as_str().unwrap().to_string();
    let body = format!(
        r#"{{"client":"{client}","nonce":1,"op":{{"type":"opaque","payload":"00ff"}},"signature":"{}"}}"#,
        "0".repeat(128)
    );
    let answer = http(
        &addr,
        &format!(
            "POST /v1/transactions HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(answer.contains("403") && answer.contains("only a testing cluster"), "{answer}");

    let refused =
        phalanx(&["inject-fault", "--dir", c.d(), "--agent", "bft-agent-2", "--fault-type", "silence"]);
    assert!(!refused.status.success(), "a production cluster accepted a fault injection");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unauthorized"));
    let log = json(&["detection-log", "--dir", c.d(), "--json"]);
    let entries = log["entries"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["fault_type"] == "fault-injection-refused" && e["action"] == "refused"));

    // The operator key replaced by a client key: every replica refuses the forced view change.
    let keys = c.dir.join("keys");
    std::fs::rename(keys.join("operator.pem"), keys.join("operator.real")).unwrap();
    std::fs::copy(c.dir.join("clients").join("alice.pem"), keys.join("operator.pem")).unwrap();
    let forged = phalanx(&["view-change", "--dir", c.d(), "--force"]);
    assert!(!forged.status.success());
    assert!(String::from_utf8_lossy(&forged.stderr).contains("unauthorized"));
    std::fs::rename(keys.join("operator.real"), keys.join("operator.pem")).unwrap();

    let before = c.statuses()[0]["view"].as_u64().unwrap();
    ok(&["view-change", "--dir", c.d(), "--force"]);
    ok(&["submit", "--dir", c.d(), "--from", "alice", "--to", "bob", "--amount", "5"]);
    let after = c.converged(Duration::from_secs(20));
    assert!(after.iter().all(|s| s["view"].as_u64().unwrap() > before), "no new view: {after:#?}");
    let addr = genesis(&c.dir)["members"][1]["http_addr"].as_str().unwrap().to_string();
    let events = http(&addr, "GET /v1/view-changes HTTP/1.0\r\n\r\n");
    assert!(events.contains("\"triggered_by\":\"operator\""), "{events}");
}

#[test]
fn a_member_is_replaced_by_a_spawned_agent_that_catches_up_and_votes() {
    let c = TestCluster::new("reconfig", 4);
    ok(&["agent", "spawn", "--dir", c.d(), "--name", "bft-agent-5"]);
    let standby = json(&["status", "--dir", c.d(), "--json"])["nodes"][4].clone();
    assert_eq!(standby["name"], "bft-agent-5");
    assert_eq!(standby["voter"], false, "a spawned agent waits as a standby: {standby}");
    ok(&["submit", "--dir", c.d(), "--from", "alice", "--to", "bob", "--amount", "5"]);

    // Refused by every replica: the churn bound (f = 1) and n >= 3f+1.
    for remove in ["bft-agent-3,bft-agent-4", "bft-agent-4"] {
        let out = phalanx(&["update-quorum", "--dir", c.d(), "--remove", remove, "--wait", "0"]);
        assert!(!out.status.success(), "removing {remove} was accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains("invalid-reconfiguration"));
    }
    let unknown = phalanx(&["update-quorum", "--dir", c.d(), "--add", "nobody", "--wait", "0"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("agent spawn"));

    let done = json(&[
        "update-quorum",
        "--dir",
        c.d(),
        "--remove",
        "bft-agent-4",
        "--add",
        "bft-agent-5",
        "--wait",
        "30",
        "--json",
    ]);
    assert_eq!(done["outcome"], "applied", "{done}");
    assert_eq!(done["epoch"]["epoch"], 1, "{done}");
    // A client that starts from genesis learns epoch 1 from the agents' proofs and counts only
    // its voters (the removed agent's reply does not count).
    let paid = json(&["submit", "--dir", c.d(), "--from", "alice", "--to", "bob", "--amount", "1", "--json"]);
    assert_eq!((paid["outcome"].as_str(), paid["epoch"].as_u64()), (Some("applied"), Some(1)), "{paid}");
    // Reads count the new epoch's voters too.
    ok(&["memory", "store", "--dir", c.d(), "--key", "k", "--value", "after the change"]);
    let read = json(&["memory", "retrieve", "--dir", c.d(), "--key", "k", "--json"]);
    assert_eq!(read["value"], "after the change", "{read}");

    // The joiner survives a crash: it recovers into its epoch and catches up.
    ok(&["down", "--dir", c.d(), "--only", "bft-agent-5", "--kill"]);
    let bench = json(&["bench", "--dir", c.d(), "--txs", "200", "--clients", "8", "--json"]);
    assert_eq!(bench["committed"].as_u64().unwrap(), 200, "{bench}");
    ok(&["up", "--dir", c.d(), "--only", "bft-agent-5"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = c.statuses();
        let voters: Vec<&Value> = s.iter().filter(|v| v["voter"] == true).collect();
        let names: Vec<&str> = voters.iter().filter_map(|v| v["name"].as_str()).collect();
        let same = voters.iter().all(|v| {
            v["last_executed"] == voters[0]["last_executed"] && v["state_digest"] == voters[0]["state_digest"]
        });
        if names == ["bft-agent-1", "bft-agent-2", "bft-agent-3", "bft-agent-5"] && same {
            let removed = s.iter().find(|v| v["name"] == "bft-agent-4").unwrap();
            assert_eq!(removed["voter"], false);
            assert!(removed["last_executed"].as_u64() < voters[0]["last_executed"].as_u64());
            break;
        }
        assert!(Instant::now() < deadline, "the new epoch did not converge: {s:#?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_testing_cluster_orders_opaque_payloads_for_benchmarks() {
    let c = TestCluster::with("opaque", 4, &["--testing"]);
    let row = json(&[
        "bench",
        "--dir",
        c.d(),
        "--mode",
        "opaque",
        "--payload-bytes",
        "512",
        "--txs",
        "300",
        "--clients",
        "8",
        "--json",
    ]);
    assert_eq!(row["mode"], "opaque", "{row}");
    assert_eq!(row["committed"].as_u64().unwrap(), 300, "{row}");
    assert_eq!(row["failed"].as_u64().unwrap(), 0, "{row}");
    // Ordered, not executed: every replica counted them and no balance moved.
    let st = c.converged(Duration::from_secs(20));
    assert!(st.iter().all(|s| s["state_digest"] == st[0]["state_digest"]), "{st:#?}");
}

#[test]
fn federated_rounds_end_with_the_same_aggregate_digest_on_every_honest_agent() {
    let c = TestCluster::with("federated", 4, &["--testing"]);
    // One Byzantine agent equivocates throughout the rounds.
    ok(&["inject-fault", "--dir", c.d(), "--agent", "bft-agent-4", "--fault-type", "equivocation"]);
    // More rounds than the cluster keeps results for (32): the driver must still compare all.
    let run = ["federated", "--rule", "multikrum", "--attack", "gaussian", "--rounds", "36", "--json"];
    let local = json(&run);
    // 650 coordinates in chunks of 100: seven signed uploads per agent per round.
    let remote = json(&[&run[..], &["--dir", c.d(), "--chunk", "100"]].concat());
    // Aggregated by the replicas, the rounds train exactly as they do in-process.
    assert_eq!(remote["accuracy"], local[0]["accuracy"], "{remote}");
    let cluster = &remote["cluster"];
    assert_eq!(cluster["rounds"], serde_json::json!((1..=36).collect::<Vec<u64>>()));
    assert!(cluster["agents_agreeing"].as_u64() >= Some(3), "{cluster}");
    let digests: Vec<&Value> = cluster["digests"].as_array().unwrap().iter().map(|a| &a["digests"]).collect();
    for d in &digests[..3] {
        assert_eq!(*d, digests[0], "honest agents disagree: {cluster}");
        assert!(d.as_array().unwrap().iter().all(|x| x.as_str().is_some_and(|x| x.len() == 64)), "{cluster}");
    }
    // Each honest agent serves the last aggregate, and its bytes hash to the committed digest.
    let g = genesis(&c.dir);
    for m in &g["members"].as_array().unwrap()[..3] {
        let addr = m["http_addr"].as_str().unwrap();
        let resp =
            http(addr, "GET /v1/federated/digits/aggregate HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let body: Value = serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["round"], 36);
        assert_eq!(body["digest"], digests[0][35]);
        let bytes = hex(body["values_hex"].as_str().unwrap());
        assert_eq!(phalanx_crypto::digest(&bytes).to_hex(), body["digest"].as_str().unwrap());
    }
    // Gaussian noise is far from every honest update: Multi-Krum removes it each round.
    let standing = cluster["standing"].as_array().unwrap();
    assert_eq!(standing.len(), 10);
    for (i, s) in standing.iter().enumerate() {
        let byzantine = i >= 7;
        assert_eq!(s["suspect"], byzantine, "{s}");
        assert_eq!(s["removed"], if byzantine { 36 } else { 0 }, "{s}");
    }
    // The operator forgets the model: its space is freed, and a second delete names the problem.
    assert!(ok(&["federated", "--dir", c.d(), "--delete"]).contains("applied"));
    let out = phalanx(&["federated", "--dir", c.d(), "--delete"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stdout).contains("rejected:unknown-model"));
    // (Every honest agent executes the delete; the first may still be catching up.)
    let addr = g["members"][0]["http_addr"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = http(addr, "GET /v1/federated HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let summary: Value = serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        let state = (summary["reserved_bytes"].as_u64(), summary["models"].as_array().map(Vec::len));
        if state == (Some(0), Some(0)) {
            break;
        }
        assert!(Instant::now() < deadline, "the model is still there: {summary}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A decision's outcome line (`--json`) whatever the exit code.
fn decision_outcome(args: &[&str]) -> String {
    let out = phalanx(args);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("phalanx {args:?}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.success(), v["outcome"] == "applied", "{v}");
    v["outcome"].as_str().unwrap().to_string()
}

#[test]
fn agents_decide_by_signed_ballots_and_a_double_voter_is_caught() {
    let c = TestCluster::new("decide", 7);
    let d = c.d();
    let agents: Vec<String> = (1..=7).map(|i| format!("bft-agent-{i}")).collect();
    let voters = agents.join(",");
    let open = ["decision", "open", "--dir", d, "--id", "release-1.2", "--question", "Ship release 1.2?"];
    let rest =
        ["--option", "ship", "--option", "wait", "--voters", &voters, "--rule", "two-thirds", "--json"];
    assert_eq!(decision_outcome(&[&open[..], &rest[..]].concat()), "applied");
    assert_eq!(decision_outcome(&[&open[..], &rest[..]].concat()), "rejected:duplicate");
    let vote = |agent: &str, ballot: &[&str], reason: &str| {
        let mut args =
            vec!["decision", "vote", "--dir", d, "--id", "release-1.2", "--as", agent, "--reason", reason];
        args.extend_from_slice(ballot);
        args.push("--json");
        decision_outcome(&args)
    };
    for a in &agents[..4] {
        assert_eq!(vote(a, &["--option", "ship"], "tests pass"), "applied");
    }
    assert_eq!(vote("bft-agent-5", &["--option", "wait"], "the changelog is missing"), "applied");
    assert_eq!(vote("bft-agent-6", &["--option", "wait"], "not sure"), "applied");
    // A second, different ballot: both are void, and they are evidence.
    assert_eq!(vote("bft-agent-6", &["--option", "ship"], "changed my mind"), "rejected:double-vote");
    assert_eq!(vote("bft-agent-7", &["--option", "maybe"], "?"), "rejected:invalid-ballot");
    // 4 of 7 for ship is not two thirds; the seventh ballot makes it 5.
    assert_eq!(vote("bft-agent-7", &["--option", "ship"], "looks good"), "applied");

    let r = json(&["decision", "show", "--dir", d, "--id", "release-1.2", "--json"]);
    assert_eq!((r["status"].as_str(), r["winner"].as_str()), (Some("decided"), Some("ship")), "{r}");
    assert_eq!(r["dissent"][0]["voter"], "bft-agent-5");
    assert_eq!(r["dissent"][0]["reason"], "the changelog is missing");
    assert_eq!(r["double_votes"][0]["voter"], "bft-agent-6");
    assert_eq!(
        (r["double_votes"][0]["first"].as_str(), r["double_votes"][0]["second"].as_str()),
        (Some("wait"), Some("ship"))
    );
    assert_eq!(r["outcome"]["closed_by"]["voter"], "bft-agent-7");
    assert_eq!(r["proof_checked"]["closed_by"], "ballot", "{r}");
    assert!(r["proof_checked"]["commit_signers"].as_u64().unwrap() >= 5, "2f+1 commits: {r}");
    assert!(r["confirmed_by"].as_array().unwrap().len() >= 3, "f+1 agents: {r}");
    let text = ok(&["decision", "show", "--dir", d, "--id", "release-1.2"]);
    assert!(text.contains("decided: ship") && text.contains("bft-agent-6 voted twice"), "{text}");
    // The double vote is committed evidence: the detection log names the voter, who is quarantined.
    let log = json(&["detection-log", "--dir", d, "--json"]);
    let entries = log["entries"].as_array().unwrap();
    let caught = entries.iter().find(|e| e["fault_type"] == "double-vote").expect("logged");
    assert_eq!(
        (caught["detected_agent"].as_str(), caught["action"].as_str()),
        (Some("bft-agent-6"), Some("quarantined"))
    );
    assert!(entries.iter().all(|e| e["detected_agent"] == "bft-agent-6"), "nobody else accused: {entries:?}");

    // Free-form results, f+1 = 2 matching, and a deadline that passes first.
    let open = ["decision", "open", "--dir", d, "--id", "task-7", "--question", "What is 6 x 7?", "--voters"];
    let rest = [
        "bft-agent-1,bft-agent-2,bft-agent-3",
        "--rule",
        "f+1-matching",
        "--f",
        "1",
        "--deadline",
        "2s",
        "--json",
    ];
    assert_eq!(decision_outcome(&[&open[..], &rest[..]].concat()), "applied");
    let result = |agent: &str, text: &str| {
        decision_outcome(&[
            "decision",
            "vote",
            "--dir",
            d,
            "--id",
            "task-7",
            "--as",
            agent,
            "--result",
            text,
            "--location",
            "results/7",
            "--json",
        ])
    };
    assert_eq!(result("bft-agent-1", "42"), "applied");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(result("bft-agent-2", "42"), "rejected:decision-closed");
    assert_eq!(result("bft-agent-4", "42"), "rejected:not-voter");
    let r = json(&["decision", "show", "--dir", d, "--id", "task-7", "--json"]);
    assert_eq!(
        (r["status"].as_str(), r["outcome"]["reason"].as_str()),
        (Some("no-decision"), Some("deadline passed")),
        "{r}"
    );
    assert_eq!(r["late"][0]["voter"], "bft-agent-2");
    assert_eq!(r["proof_checked"]["closed_by"], "deadline", "{r}");

    // Bad input: a clear error, nothing else changes.
    let unknown =
        phalanx(&["decision", "vote", "--dir", d, "--id", "nope", "--as", "bft-agent-1", "--abstain"]);
    assert!(
        !unknown.status.success()
            && String::from_utf8_lossy(&unknown.stderr).contains("no decision with this id")
    );
    let stranger = phalanx(&[
        "decision",
        "open",
        "--dir",
        d,
        "--id",
        "x",
        "--question",
        "q",
        "--option",
        "a",
        "--voters",
        "mallory",
    ]);
    assert!(String::from_utf8_lossy(&stranger.stderr).contains("no key for \"mallory\""));
    let missing = phalanx(&["decision", "show", "--dir", d, "--id", "nope", "--timeout", "1s"]);
    assert!(!missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("no decision"));
    let addr = genesis(&c.dir)["members"][0]["http_addr"].as_str().unwrap().to_string();
    let bad = http(&addr, "GET /v1/decisions/has%20space HTTP/1.0\r\n\r\n");
    assert!(bad.contains("400") && bad.contains("decision id"), "{bad}");
    let list = json(&["decision", "list", "--dir", d, "--json"]);
    assert_eq!(list["decisions"].as_array().unwrap().len(), 2, "{list}");
}

/// A webhook receiver: answers 500 to its first request and 200 after, keeping the bodies.
fn webhook_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        let mut requests = 0;
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break Some(body[..len].to_string());
                    }
                }
            };
            requests += 1;
            let code = if requests == 1 { "500 Internal Server Error" } else { "200 OK" };
            if requests > 1
                && let Some(b) = body
            {
                seen.lock().unwrap().push(serde_json::from_str(&b).unwrap());
            }
            let _ = s.write_all(
                format!("HTTP/1.1 {code}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes(),
            );
        }
    });
    (url, got)
}

/// A child process killed when dropped, even when a test fails.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn hooks_get_committed_events_in_order_at_least_once_through_failures_and_restarts() {
    // Seven agents (f = 2): one quarantined for a double vote and one restarted at once.
    let c = TestCluster::new("hooks", 7);
    let d = c.d();
    let out = c.dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let (url, web) = webhook_receiver();
    let o = out.to_str().unwrap();
    let hooks = format!(
        r#"
[[hook]]
name = "record"
on = ["*"]
command = ["sh", "-c", "cat >> {o}/all.jsonl && echo >> {o}/all.jsonl"]

[[hook]]
name = "flaky"
on = ["onMaliciousDetected", "decision-decided"]
command = ["sh", "-c", "n=$(cat {o}/tries 2>/dev/null || echo 0); echo $((n+1)) > {o}/tries; [ $n -ge 2 ] && cat >> {o}/flaky.jsonl && echo >> {o}/flaky.jsonl"]

[[hook]]
name = "hangs"
on = ["decision-opened"]
timeout = "500ms"
command = ["sh", "-c", "if [ ! -e {o}/hung ]; then touch {o}/hung; sleep 30; fi; cat >> {o}/hangs.jsonl && echo >> {o}/hangs.jsonl"]

[[hook]]
name = "web"
on = ["quarantined", "onViewChange"]
webhook = "{url}"
"#
    );
    std::fs::write(c.dir.join("hooks.toml"), hooks).unwrap();
    let start_hooks = || {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(out.join("hooks.log")).unwrap();
        Killed(
            Command::new(env!("CARGO_BIN_EXE_phalanx"))
                .args(["hooks", "--dir", d, "--poll", "100ms"])
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    };
    let mut hooks_process = start_hooks();

    let decide = |id: &str| {
        ok(&[
            "decision",
            "open",
            "--dir",
            d,
            "--id",
            id,
            "--question",
            "q",
            "--option",
            "a",
            "--option",
            "b",
            "--voters",
            "bft-agent-1,bft-agent-2,bft-agent-3,bft-agent-4",
        ]);
    };
    let vote = |id: &str, agent: &str, option: &str| {
        let _ = phalanx(&["decision", "vote", "--dir", d, "--id", id, "--as", agent, "--option", option]);
    };
    decide("first");
    vote("first", "bft-agent-1", "a");
    vote("first", "bft-agent-2", "b");
    vote("first", "bft-agent-2", "a"); // a double vote: evidence, quarantine
    vote("first", "bft-agent-3", "a");
    vote("first", "bft-agent-4", "a");
    ok(&["view-change", "--dir", d, "--force"]);
    let all = out.join("all.jsonl");
    wait_for("the first events", Duration::from_secs(30), || {
        let names: Vec<String> =
            lines(&all).iter().map(|e| e["event"].as_str().unwrap().to_string()).collect();
        ["decision-opened", "malicious-detected", "quarantined", "decision-decided", "view-change"]
            .iter()
            .all(|n| names.iter().any(|x| x == n))
    });

    // The followed agent goes down mid-stream, and the hooks process is killed and restarted.
    ok(&["down", "--dir", d, "--only", "bft-agent-1", "--kill"]);
    decide("second");
    drop(hooks_process);
    vote("second", "bft-agent-3", "b");
    vote("second", "bft-agent-4", "b");
    hooks_process = start_hooks();
    ok(&["up", "--dir", d, "--only", "bft-agent-1"]);
    // bft-agent-2 is quarantined (it cannot vote): the third ballot for b is bft-agent-1's.
    vote("second", "bft-agent-1", "b");
    wait_for("the events after the restarts", Duration::from_secs(40), || {
        lines(&all).iter().filter(|e| e["event"] == "decision-decided").count() >= 2
            && lines(&out.join("hangs.jsonl")).len() >= 2
            && lines(&out.join("flaky.jsonl")).iter().filter(|e| e["event"] == "decision-decided").count()
                >= 2
            && !web.lock().unwrap().is_empty()
    });
    drop(hooks_process);

    // Commit order, and nothing committed is missing (a redelivery after the kill is allowed).
    let events = lines(&all);
    let committed: Vec<(u64, String, String)> = events
        .iter()
        .filter(|e| e["event"] != "view-change")
        .map(|e| {
            (e["seq"].as_u64().unwrap(), e["event"].as_str().unwrap().to_string(), e["data"].to_string())
        })
        .collect();
    assert!(committed.windows(2).all(|w| w[0].0 <= w[1].0), "out of commit order: {committed:?}");
    let mut distinct = committed.clone();
    distinct.dedup();
    let kinds = |k: &str| distinct.iter().filter(|e| e.1 == k).count();
    assert_eq!((kinds("decision-opened"), kinds("decision-decided")), (2, 2), "{distinct:?}");
    assert_eq!((kinds("malicious-detected"), kinds("quarantined")), (1, 1), "{distinct:?}");
    assert!(committed.len() <= distinct.len() + 1, "more than the one event in flight redelivered");
    let caught = events.iter().find(|e| e["event"] == "quarantined").unwrap();
    assert_eq!(caught["data"]["detected_agent"], "bft-agent-2");
    assert_eq!(caught["data"]["fault_type"], "double-vote");
    // The flaky hook failed twice, then got its events in order; the hanging one was killed
    // after its timeout and retried; the webhook got its events after an HTTP 500.
    let flaky: Vec<String> =
        lines(&out.join("flaky.jsonl")).iter().map(|e| e["event"].as_str().unwrap().into()).collect();
    assert_eq!(flaky[..3], ["malicious-detected", "decision-decided", "decision-decided"], "{flaky:?}");
    assert!(std::fs::read_to_string(out.join("tries")).unwrap().trim().parse::<u32>().unwrap() >= 5);
    assert_eq!(lines(&out.join("hangs.jsonl"))[0]["data"]["id"], "first");
    let web = web.lock().unwrap();
    assert!(web.iter().any(|e| e["event"] == "quarantined" || e["event"] == "view-change"), "{web:?}");
    // Bad configuration is refused with a reason.
    std::fs::write(
        c.dir.join("bad.toml"),
        "[[hook]]\nname = \"x\"\non = [\"onSomething\"]\ncommand = [\"true\"]\n",
    )
    .unwrap();
    let bad = phalanx(&["hooks", "--dir", d, "--config", c.dir.join("bad.toml").to_str().unwrap()]);
    assert!(
        !bad.status.success()
            && String::from_utf8_lossy(&bad.stderr).contains("unknown event \"onSomething\"")
    );
}
