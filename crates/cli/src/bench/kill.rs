//! `--kill-primary`: part-way through the measured phase the primary's process is killed
//! (SIGKILL, no goodbye). Recovery is the time from the kill to the first transfer the client
//! accepts with replies from a later view: the survivors noticed, changed view and committed.

use phalanx_client::Cluster;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Instant;

/// Who was killed, when, and in which view.
pub struct Kill {
    pub victim: String,
    pub view: u64,
    pub at: Instant,
}

/// Kills the current primary (as most nodes report it).
pub fn kill_primary(cluster: &Cluster, dir: &Path) -> Result<Kill, String> {
    let statuses: Vec<Value> = cluster.get_all("/v1/status").into_iter().flatten().collect();
    // The view a majority of the answers are in, and its primary.
    let mut views: Vec<(u64, String)> = statuses
        .iter()
        .filter_map(|s| Some((s["view"].as_u64()?, s["primary"].as_str()?.to_string())))
        .collect();
    views.sort();
    let (view, victim) = views.get(views.len() / 2).cloned().ok_or("no node reports a view and a primary")?;
    let pid_file = dir.join("data").join(&victim).join("node.pid");
    let pid = std::fs::read_to_string(&pid_file).map_err(|e| format!("{}: {e}", pid_file.display()))?;
    let status = std::process::Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .map_err(|e| format!("cannot run kill: {e}"))?;
    let at = Instant::now();
    if !status.success() {
        return Err(format!("kill -KILL {} ({victim}) failed", pid.trim()));
    }
    Ok(Kill { victim, view, at })
}

/// The row's `kill_primary` object: recovery against the target (view-change timeout + 200 ms).
pub fn report(
    kill: &Kill,
    first_accept_in_view: &std::collections::BTreeMap<u64, Instant>,
    timeout_ms: u64,
) -> Value {
    let recovered = first_accept_in_view
        .range(kill.view + 1..)
        .map(|(_, t)| *t)
        .min()
        .map(|t| (t.saturating_duration_since(kill.at).as_secs_f64() * 1000.0 * 10.0).round() / 10.0);
    let target = timeout_ms + 200;
    json!({
        "victim": kill.victim,
        "view_before": kill.view,
        "recovery_ms": recovered,
        "view_change_timeout_ms": timeout_ms,
        "target_ms": target,
        "met": recovered.is_some_and(|r| r <= target as f64),
    })
}
