//! The `phalanx` binary as a user runs it.

use std::process::Command;

fn phalanx(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_phalanx")).args(args).output().expect("run phalanx")
}

#[test]
fn sim_json_summary_is_the_last_line() {
    let out = phalanx(&["sim", "--nodes", "4", "--faulty", "1", "--seeds", "3", "--txs", "50", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    for field in [
        "runs",
        "nodes",
        "faulty",
        "behaviours",
        "safety_violations",
        "liveness_failures",
        "committed",
        "rejected",
        "messages",
        "virtual_ms_p50",
        "wall_ms",
        "failing_seeds",
    ] {
        assert!(v.get(field).is_some(), "missing {field} in {last}");
    }
    assert_eq!(v["runs"], 3);
    assert_eq!(v["safety_violations"], 0);
    assert_eq!(v["committed"].as_u64().unwrap() + v["rejected"].as_u64().unwrap(), 150);
}

#[test]
fn sim_exits_non_zero_on_a_violation_and_prints_the_replay_command() {
    let out = phalanx(&[
        "sim",
        "--nodes",
        "4",
        "--faulty",
        "2",
        "--faulty-ids",
        "0,1",
        "--allow-excess-faults",
        "--behaviours",
        "equivocate",
        "--seeds",
        "4",
        "--txs",
        "60",
        "--json",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("replay: phalanx sim"), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(!v["failing_seeds"].as_array().unwrap().is_empty());
}

#[test]
fn bad_arguments_get_clear_errors() {
    let out = phalanx(&["sim", "--nodes", "6", "--faulty", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("n >= 3f+1"));
    let out = phalanx(&["sim", "--behaviours", "teleport"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown behaviour"));
    let out = phalanx(&["sim", "--net", "wifi"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown network profile"));
}

#[test]
fn keygen_writes_a_pem_openssl_can_read_and_refuses_to_overwrite() {
    let dir = std::env::temp_dir().join(format!("phalanx-keygen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a.pem");
    let _ = std::fs::remove_file(&file);
    let out = phalanx(&["keygen", "--name", "bft-agent-1", "--out", file.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pem = std::fs::read_to_string(&file).unwrap();
    let key = phalanx_crypto::Keypair::from_pem(&pem).unwrap();
    assert_eq!(v["public_key"], key.public().to_hex());
    let again = phalanx(&["keygen", "--name", "x", "--out", file.to_str().unwrap()]);
    assert!(!again.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}
