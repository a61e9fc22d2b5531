//! `phalanx init`: keys, genesis and one node.toml per agent for a new cluster.

use clap::Args;
use phalanx_core::consensus::Params;
use phalanx_core::quorum::Quorum;
use phalanx_crypto::Keypair;
use phalanx_node::config::{AccountEntry, GenesisFile, MemberEntry, NodeFile};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Named client accounts created with every cluster (keys under `clients/`).
pub const CLIENTS: [&str; 4] = ["alice", "bob", "carol", "dave"];
pub const CLIENT_BALANCE: u64 = 1_000_000_000;
pub const AGENT_BALANCE: u64 = 1_000_000;

#[derive(Args)]
pub struct InitArgs {
    /// Number of agents.
    #[arg(long, default_value_t = 7)]
    agents: usize,
    /// Byzantine agents to tolerate (default ⌊(n-1)/3⌋).
    #[arg(long)]
    max_failures: Option<usize>,
    /// Folder to create.
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    /// Comma-separated agent names (default bft-agent-1 … bft-agent-N).
    #[arg(long, value_delimiter = ',')]
    names: Option<Vec<String>>,
    /// A cluster for testing: accepts operator fault injection.
    #[arg(long)]
    testing: bool,
    /// How long a quarantine lasts (judged on committed batch time), e.g. 1h, 90s.
    #[arg(long, default_value = "1h")]
    quarantine: humantime::Duration,
    /// Host the agents listen on, all on one machine (ports base, base+1, …).
    #[arg(long, default_value = "127.0.0.1", conflicts_with = "hosts")]
    host: String,
    /// One address per agent, comma-separated, for a cluster across hosts: agent i listens on
    /// the i-th address at --base-port (replicas) and --base-port + 100 (HTTP).
    #[arg(long, value_delimiter = ',')]
    hosts: Option<Vec<String>>,
    /// Replica ports are base, base+1, …; HTTP ports base+100, base+101, …
    #[arg(long, default_value_t = 7100)]
    base_port: u16,
    /// Benchmark client accounts (bench-0 …) created besides alice, bob, carol and dave.
    #[arg(long, default_value_t = 64)]
    bench_clients: usize,
    #[arg(long)]
    json: bool,
}

pub fn write_new(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    #[cfg(unix)]
    if path.extension().is_some_and(|e| e == "pem") {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(())
}

fn new_key() -> Result<Keypair, String> {
    Ok(Keypair::from_seed(phalanx_node::os_seed().map_err(|e| format!("no OS randomness: {e}"))?))
}

pub fn run(a: InitArgs) -> Result<ExitCode, String> {
    let n = a.agents;
    let f = a.max_failures.unwrap_or_else(|| Quorum::max_faults(n));
    let q = Quorum::new(n, f).map_err(|e| format!("refusing to create this cluster: {e}"))?;
    let names: Vec<String> = match a.names {
        Some(names) if names.len() != n => {
            return Err(format!("--names lists {} names for {n} agents", names.len()));
        }
        Some(names) => names,
        None => (1..=n).map(|i| format!("bft-agent-{i}")).collect(),
    };
    let genesis_path = a.dir.join("genesis.toml");
    if genesis_path.exists() {
        return Err(format!("{} already exists; choose another --dir", genesis_path.display()));
    }
    if let Some(hosts) = &a.hosts
        && hosts.len() != n
    {
        return Err(format!("--hosts lists {} addresses for {n} agents", hosts.len()));
    }
    if a.base_port as usize + 100 + n > u16::MAX as usize {
        return Err("--base-port is too high for this many agents".into());
    }
    let mut members = Vec::new();
    let mut accounts = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("agent name {name:?}: use letters, digits, '-' and '_'"));
        }
        let key = new_key()?;
        write_new(&a.dir.join("keys").join(format!("{name}.pem")), &key.to_pem())?;
        // Every agent also holds an account of its own, owned by its agent key.
        accounts.push(AccountEntry {
            name: name.clone(),
            owner: key.public().to_hex(),
            balance: AGENT_BALANCE,
        });
        // One machine: a port per agent. Several hosts: the same ports on each.
        let (host, port) = match &a.hosts {
            Some(hosts) => (hosts[i].as_str(), a.base_port),
            None => (a.host.as_str(), a.base_port + i as u16),
        };
        let addr = |p: u16| {
            format!("{host}:{p}")
                .parse()
                .map_err(|e| format!("agent {name}'s address {host:?}: {e} (give IP addresses)"))
        };
        members.push(MemberEntry {
            name: name.clone(),
            public_key: key.public().to_hex(),
            replica_addr: addr(port)?,
            http_addr: addr(port + 100)?,
        });
        let node = NodeFile {
            name: name.clone(),
            key: PathBuf::from(format!("../keys/{name}.pem")),
            genesis: PathBuf::from("../genesis.toml"),
            data_dir: PathBuf::from(format!("../data/{name}")),
            replica_addr: None,
            http_addr: None,
            dial: Default::default(),
        };
        write_new(
            &a.dir.join("nodes").join(format!("{name}.toml")),
            &toml::to_string(&node).map_err(|e| e.to_string())?,
        )?;
    }
    let operator = new_key()?;
    write_new(&a.dir.join("keys").join("operator.pem"), &operator.to_pem())?;
    let bench: Vec<String> = (0..a.bench_clients).map(|i| format!("bench-{i}")).collect();
    for name in CLIENTS.iter().map(|s| s.to_string()).chain(bench) {
        let key = new_key()?;
        write_new(&a.dir.join("clients").join(format!("{name}.pem")), &key.to_pem())?;
        accounts.push(AccountEntry { name, owner: key.public().to_hex(), balance: CLIENT_BALANCE });
    }
    let cluster_id = phalanx_crypto::PublicKey(phalanx_node::os_seed().map_err(|e| e.to_string())?).to_hex();
    let genesis = GenesisFile {
        cluster_id,
        consensus: "pbft".into(),
        max_failures: f,
        quorum_size: q.quorum(),
        testing: a.testing,
        operator_key: operator.public().to_hex(),
        quarantine_ms: a.quarantine.as_millis().max(1) as u64,
        params: Params::default(),
        members: members.clone(),
        accounts,
    };
    write_new(&genesis_path, &toml::to_string(&genesis).map_err(|e| e.to_string())?)?;
    GenesisFile::load(&genesis_path).map_err(|e| e.to_string())?;
    if a.json {
        let agents: Vec<_> = members
            .iter()
            .map(|m| json!({"name": m.name, "public_key": m.public_key, "replica_addr": m.replica_addr, "http_addr": m.http_addr}))
            .collect();
        println!(
            "{}",
            json!({
                "cluster_id": genesis.cluster_id,
                "consensus": "pbft",
                "max_failures": f,
                "required_agents": 3 * f + 1,
                "quorum_size": q.quorum(),
                "testing": a.testing,
                "dir": a.dir,
                "agents": agents,
            })
        );
    } else {
        println!(
            "Created a {n}-agent PBFT cluster in {} (tolerates f={f}, quorum {}).",
            a.dir.display(),
            q.quorum()
        );
        for m in &members {
            println!(
                "  {:<16} replica {:<21} http {:<21} {}",
                m.name,
                m.replica_addr,
                m.http_addr,
                &m.public_key[..16]
            );
        }
        println!("Start it with: phalanx up --dir {}", a.dir.display());
    }
    Ok(ExitCode::SUCCESS)
}
