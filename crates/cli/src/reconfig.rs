//! Reconfiguration from the command line: `phalanx agent spawn` prepares and starts a joining
//! agent as a standby; `phalanx update-quorum` commits the operator-signed membership change and
//! waits for the new epoch to run with the joiners voting.

use crate::operator::{operator_key, submit_action};
use clap::{Args, Subcommand};
use phalanx_client::Cluster;
use phalanx_core::wire::{Joiner, OperatorAction};
use phalanx_crypto::{Keypair, PublicKey};
use phalanx_node::config::NodeFile;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Create a key and node config for a new agent and start it as a standby; it votes once
    /// `update-quorum --add` admits it.
    Spawn(SpawnArgs),
}

#[derive(Args)]
pub struct SpawnArgs {
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    #[arg(long)]
    name: String,
    /// Host to listen on; ports are the next free ones after the cluster's.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Only write the files; start it later with `phalanx up --only NAME`.
    #[arg(long)]
    no_start: bool,
    #[arg(long)]
    json: bool,
}

pub fn agent(c: AgentCommand) -> Result<ExitCode, String> {
    match c {
        AgentCommand::Spawn(a) => spawn(a),
    }
}

fn spawn(a: SpawnArgs) -> Result<ExitCode, String> {
    let cluster = Cluster::load(&a.dir)?;
    let name = &a.name;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(format!("agent name {name:?}: use letters, digits, '-' and '_'"));
    }
    if cluster.agent(name).is_some() {
        return Err(format!("{name} already exists in {}", a.dir.display()));
    }
    // Ports: one past the highest the cluster uses, HTTP 100 above (as `init` lays them out).
    let highest = cluster.agents.iter().map(|m| m.replica_addr.port()).max().unwrap_or(7000);
    let used: Vec<u16> =
        cluster.agents.iter().flat_map(|m| [m.replica_addr.port(), m.http_addr.port()]).collect();
    let port = (highest + 1..u16::MAX - 100)
        .find(|p| !used.contains(p) && !used.contains(&(p + 100)))
        .ok_or("no free port left above the cluster's")?;
    let addr = |p: u16| -> Result<SocketAddr, String> {
        format!("{}:{p}", a.host).parse().map_err(|e| format!("--host {}: {e}", a.host))
    };
    let (replica_addr, http_addr) = (addr(port)?, addr(port + 100)?);
    let seed = phalanx_node::os_seed().map_err(|e| format!("no OS randomness: {e}"))?;
    let key = Keypair::from_seed(seed);
    crate::init::write_new(&a.dir.join("keys").join(format!("{name}.pem")), &key.to_pem())?;
    let node = NodeFile {
        name: name.clone(),
        key: PathBuf::from(format!("../keys/{name}.pem")),
        genesis: PathBuf::from("../genesis.toml"),
        data_dir: PathBuf::from(format!("../data/{name}")),
        replica_addr: Some(replica_addr),
        http_addr: Some(http_addr),
        dial: Default::default(),
    };
    let text = toml::to_string(&node).map_err(|e| e.to_string())?;
    crate::init::write_new(&a.dir.join("nodes").join(format!("{name}.toml")), &text)?;
    if !a.no_start {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find the phalanx binary: {e}"))?;
        crate::up::start_agent(&a.dir, &exe, name)?;
        wait_for_api(&a.dir, name, Duration::from_secs(15))?;
    }
    let public_key = key.public().to_hex();
    if a.json {
        println!(
            "{}",
            json!({"name": name, "public_key": public_key, "replica_addr": replica_addr, "http_addr": http_addr, "status": "standby", "started": !a.no_start})
        );
    } else {
        println!("{name}: key {}…, replica {replica_addr}, http {http_addr}", &public_key[..16]);
        println!(
            "{} as a standby. Admit it with: phalanx update-quorum --dir {} --add {name}",
            if a.no_start { "Not started; it will run" } else { "Started" },
            a.dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn wait_for_api(dir: &Path, name: &str, limit: Duration) -> Result<(), String> {
    let cluster = Cluster::load(dir)?;
    let i = cluster.agents.iter().position(|m| m.name == name).ok_or("agent vanished")?;
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cluster.get(i, "/v1/status").is_ok_and(|v| v["name"].as_str() == Some(name)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("{name} did not start; see {}/data/{name}/node.log", dir.display()))
}

#[derive(Args)]
pub struct UpdateQuorumArgs {
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    /// Members that stop voting (comma-separated).
    #[arg(long, value_delimiter = ',')]
    remove: Vec<String>,
    /// Spawned agents that start voting (comma-separated; see `agent spawn`).
    #[arg(long, value_delimiter = ',')]
    add: Vec<String>,
    /// Faults the new epoch tolerates (default: unchanged).
    #[arg(long)]
    f: Option<u32>,
    /// Seconds to wait for the new epoch to run with every joiner voting (0: do not wait).
    #[arg(long, default_value_t = 60)]
    wait: u64,
    #[arg(long)]
    json: bool,
}

pub fn update_quorum(a: UpdateQuorumArgs) -> Result<ExitCode, String> {
    let cluster = Cluster::load(&a.dir)?;
    if a.remove.is_empty() && a.add.is_empty() && a.f.is_none() {
        return Err("nothing to change: give --remove, --add or --f".into());
    }
    for name in &a.remove {
        if cluster.agent(name).is_none() {
            return Err(format!("--remove {name}: no such agent in {}", a.dir.display()));
        }
    }
    let mut add = Vec::new();
    for name in &a.add {
        let m = cluster.agent(name).ok_or_else(|| {
            format!("--add {name}: no such agent; create it first with `phalanx agent spawn --name {name}`")
        })?;
        let key = PublicKey::from_hex(&m.public_key).map_err(|e| format!("{name}: {e}"))?;
        add.push(Joiner {
            name: name.clone(),
            key,
            replica_addr: m.replica_addr.to_string(),
            http_addr: m.http_addr.to_string(),
        });
    }
    let action = OperatorAction::UpdateQuorum { remove: a.remove.clone(), add, f: a.f };
    let accepted = submit_action(&cluster, &operator_key(&a.dir)?, action)?;
    if accepted.outcome != "applied" {
        let why = "n >= 3f+1, at most f members out and f in per epoch, one change at a time, known names";
        if a.json {
            println!("{}", json!({"outcome": accepted.outcome, "seq": accepted.seq}));
        } else {
            eprintln!("refused: {} ({why})", accepted.outcome);
        }
        return Ok(ExitCode::FAILURE);
    }
    if !a.json {
        println!(
            "reconfiguration committed at seq {}; it takes effect at the next checkpoint boundary",
            accepted.seq
        );
    }
    let joined =
        if a.wait > 0 { wait_for_epoch(&cluster, &a.add, Duration::from_secs(a.wait))? } else { None };
    if a.json {
        println!(
            "{}",
            json!({"outcome": accepted.outcome, "seq": accepted.seq, "removed": a.remove, "added": a.add, "epoch": joined})
        );
    } else if let Some(e) = &joined {
        println!(
            "epoch {} runs: voters {} (joiners voting, at seq {})",
            e["epoch"], e["voters"], e["last_executed"]
        );
    }
    Ok(if a.wait == 0 || joined.is_some() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Waits until every joiner reports itself a voter of a new epoch that f+1 agents agree on.
pub fn wait_for_epoch(
    cluster: &Cluster,
    joiners: &[String],
    limit: Duration,
) -> Result<Option<Value>, String> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let all = cluster.get_all("/v1/status");
        let status = |name: &str| {
            cluster.agents.iter().position(|m| m.name == name).and_then(|i| all[i].as_ref().ok().cloned())
        };
        let joined: Vec<Value> =
            joiners.iter().filter_map(|n| status(n)).filter(|v| v["voter"] == true).collect();
        if joined.len() == joiners.len()
            && let Some(first) = joined.first().or(all.iter().flatten().next())
        {
            let epoch = first["epoch"].as_u64().unwrap_or(0);
            let agree = all.iter().flatten().filter(|v| v["epoch"].as_u64() == Some(epoch)).count();
            if epoch > 0 && agree > cluster.genesis.max_failures {
                return Ok(Some(first.clone()));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("the new epoch did not start with every joiner voting within {} s", limit.as_secs());
    Ok(None)
}
