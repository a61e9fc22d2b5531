//! `phalanx chaos` on real processes. Its own test binary, so that no other cluster test shares
//! the two cores with it: the run checks recovery times.

use serde_json::Value;

mod common;
use common::{free_base, phalanx};

/// `phalanx chaos` for 30 s: seed 8 damages a journal, bridges a partition, slows a member,
/// kills one and splits the cluster in halves twice, all while four clients pay each other;
/// then every acknowledged transfer must be in every node's state exactly once.
#[test]
fn chaos_on_real_processes_breaks_no_invariant() {
    let dir = std::env::temp_dir().join(format!("phalanx-chaos-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let base = free_base(4).to_string();
    let out = phalanx(&[
        "chaos",
        "--dir",
        dir.to_str().unwrap(),
        "--duration",
        "30s",
        "--seed",
        "8",
        "--base-port",
        &base,
        "--json",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(text.lines().last().unwrap_or("")).unwrap_or(Value::Null);
    assert!(
        out.status.success() && report["violations"] == serde_json::json!([]),
        "chaos found violations (cluster folder kept at {}): {text}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    for kind in ["corrupt-journal", "bridge", "kill", "halves"] {
        assert!(report["faults_by_kind"][kind].as_u64() >= Some(1), "no {kind} fault injected: {report}");
    }
    assert!(report["transfers"]["acknowledged"].as_u64() > Some(500), "{report}");
    assert_eq!(report["transfers"]["unacknowledged"], 0, "{report}");
    assert!(report["digests_compared"].as_u64() > Some(100), "{report}");
    assert!(!dir.exists(), "a clean run removes its folder");
}
