//! `phalanx up` / `phalanx down`: every agent of a cluster folder as its own OS process.

use clap::Args;
use phalanx_client::Cluster;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct UpArgs {
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    /// Start only these agents (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
    /// Seconds to wait for a quorum to answer.
    #[arg(long, default_value_t = 30)]
    wait: u64,
}

#[derive(Args)]
pub struct DownArgs {
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    /// Stop only these agents; with --kill, like a crash (SIGKILL).
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
    #[arg(long)]
    kill: bool,
}

fn pid_file(dir: &Path, name: &str) -> PathBuf {
    dir.join("data").join(name).join("node.pid")
}

/// Whether `pid` is this agent's node process (not some other process that reused the pid).
pub(crate) fn alive(pid: u32, name: &str) -> bool {
    let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let cmd = String::from_utf8_lossy(&cmd);
    cmd.contains("node") && cmd.contains(&format!("{name}.toml"))
}

fn check_names(cluster: &Cluster, only: &Option<Vec<String>>) -> Result<(), String> {
    for name in only.iter().flatten() {
        if cluster.agent(name).is_none() {
            return Err(format!("{name} is not a member of this cluster"));
        }
    }
    Ok(())
}

pub(crate) fn read_pid(dir: &Path, name: &str) -> Option<u32> {
    std::fs::read_to_string(pid_file(dir, name)).ok()?.trim().parse().ok()
}

/// Starts one agent's node as a background process (its own process group), unless it runs.
/// Returns the process when it started one.
pub fn start_agent(dir: &Path, exe: &Path, name: &str) -> Result<Option<std::process::Child>, String> {
    if let Some(pid) = read_pid(dir, name)
        && alive(pid, name)
    {
        println!("{name} is already running (pid {pid})");
        return Ok(None);
    }
    let data = dir.join("data").join(name);
    std::fs::create_dir_all(&data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.join("node.log"))
        .map_err(|e| format!("cannot open the log of {name}: {e}"))?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    // Its own process group: a Ctrl-C in this terminal does not take the cluster down.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd
        .arg("node")
        .arg("--config")
        .arg(dir.join("nodes").join(format!("{name}.toml")))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    std::fs::write(pid_file(dir, name), child.id().to_string()).map_err(|e| e.to_string())?;
    Ok(Some(child))
}

pub fn up(a: UpArgs) -> Result<ExitCode, String> {
    let cluster = Cluster::load(&a.dir)?;
    check_names(&cluster, &a.only)?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the phalanx binary: {e}"))?;
    for m in &cluster.agents {
        if a.only.as_ref().is_some_and(|o| !o.contains(&m.name)) {
            continue;
        }
        start_agent(&a.dir, &exe, &m.name)?;
    }
    let deadline = Instant::now() + Duration::from_secs(a.wait);
    loop {
        let ready = cluster.members_answering();
        if ready >= cluster.genesis.quorum_size {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {ready} of {} agents answer after {} s; see {}/data/*/node.log",
                cluster.agents.len(),
                a.wait,
                a.dir.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "Cluster is up ({} agents, quorum {}). APIs:",
        cluster.agents.len(),
        cluster.genesis.quorum_size
    );
    for m in &cluster.agents {
        println!("  {:<16} http://{}/v1/status", m.name, m.http_addr);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn down(a: DownArgs) -> Result<ExitCode, String> {
    let cluster = Cluster::load(&a.dir)?;
    check_names(&cluster, &a.only)?;
    let mut stopped = 0;
    let mut stuck = Vec::new();
    for m in &cluster.agents {
        if a.only.as_ref().is_some_and(|o| !o.contains(&m.name)) {
            continue;
        }
        let Some(pid) = read_pid(&a.dir, &m.name) else { continue };
        if alive(pid, &m.name) {
            let signal = if a.kill { "-KILL" } else { "-TERM" };
            let _ = Command::new("kill").arg(signal).arg(pid.to_string()).status();
            let mut waited = 0;
            while alive(pid, &m.name) && waited < 100 {
                if waited == 50 {
                    let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
                }
                std::thread::sleep(Duration::from_millis(100));
                waited += 1;
            }
            if alive(pid, &m.name) {
                stuck.push(m.name.clone());
                continue;
            }
            stopped += 1;
        }
        let _ = std::fs::remove_file(pid_file(&a.dir, &m.name));
    }
    println!("stopped {stopped} agent(s)");
    if !stuck.is_empty() {
        return Err(format!("could not stop {}", stuck.join(", ")));
    }
    Ok(ExitCode::SUCCESS)
}
