//! The files that describe a cluster: `genesis.toml` (shared by every agent) and one
//! `node.toml` per agent. Everything read here is untrusted input: errors name the file and
//! the field that is wrong.

use phalanx_app::GenesisAccount;
use phalanx_app::{Config, Replica};
use phalanx_core::consensus::{Epoch, Member, Params};
use phalanx_core::quorum::Quorum;
use phalanx_core::state::Genesis;
use phalanx_crypto::{Digest, Keypair, PublicKey};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

fn invalid(path: &Path, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { path: path.to_path_buf(), message: message.into() }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberEntry {
    pub name: String,
    pub public_key: String,
    /// Where other replicas connect to this one.
    pub replica_addr: SocketAddr,
    /// Where clients and operators reach its HTTP API.
    pub http_addr: SocketAddr,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountEntry {
    pub name: String,
    pub owner: String,
    pub balance: u64,
}

/// `genesis.toml`: the cluster every agent agrees to at start.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GenesisFile {
    pub cluster_id: String,
    pub consensus: String,
    pub max_failures: usize,
    pub quorum_size: usize,
    /// Clusters created with `init --testing` accept fault injection; others never do.
    pub testing: bool,
    pub operator_key: String,
    /// How long a quarantine lasts, judged on committed batch time (default one hour).
    #[serde(default = "default_quarantine_ms")]
    pub quarantine_ms: u64,
    pub params: Params,
    pub members: Vec<MemberEntry>,
    pub accounts: Vec<AccountEntry>,
}

/// `node.toml`: one agent. Relative paths are relative to this file's folder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeFile {
    pub name: String,
    pub key: PathBuf,
    pub genesis: PathBuf,
    pub data_dir: PathBuf,
    /// For an agent not in genesis (spawned to join by reconfiguration): where it listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_addr: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_addr: Option<SocketAddr>,
    /// Where this node dials a peer instead of the peer's listed `replica_addr`, by peer name:
    /// for a relay, a tunnel or NAT between two hosts (and the chaos test's fault proxies).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub dial: std::collections::BTreeMap<String, SocketAddr>,
}

fn default_quarantine_ms() -> u64 {
    phalanx_core::accountability::DEFAULT_QUARANTINE_MS
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })
}

fn hex32(path: &Path, field: &str, s: &str) -> Result<[u8; 32], ConfigError> {
    PublicKey::from_hex(s).map(|k| k.0).map_err(|e| invalid(path, format!("{field}: {e}")))
}

impl GenesisFile {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let g: GenesisFile = toml::from_str(&read(path)?).map_err(|e| invalid(path, e.to_string()))?;
        g.core_config(path)?;
        Ok(g)
    }

    pub fn cluster_id(&self) -> Digest {
        Digest(PublicKey::from_hex(&self.cluster_id).map(|k| k.0).unwrap_or_default())
    }

    /// The replica configuration, fully validated.
    pub fn core_config(&self, path: &Path) -> Result<Config, ConfigError> {
        let cluster_id = Digest(hex32(path, "cluster_id", &self.cluster_id)?);
        let mut members = Vec::with_capacity(self.members.len());
        let mut keys = std::collections::BTreeSet::new();
        let mut addrs = std::collections::BTreeSet::new();
        for m in &self.members {
            let key = PublicKey(hex32(path, &format!("members.{}.public_key", m.name), &m.public_key)?);
            if !keys.insert(key) {
                return Err(invalid(
                    path,
                    format!("members.{}: the same public key is listed twice", m.name),
                ));
            }
            if !addrs.insert(m.replica_addr) || !addrs.insert(m.http_addr) {
                return Err(invalid(path, format!("members.{}: an address is used twice", m.name)));
            }
            members.push(Member { name: m.name.clone(), key });
        }
        let mut accounts = Vec::with_capacity(self.accounts.len());
        let mut total: u128 = 0;
        for a in &self.accounts {
            let owner = PublicKey(hex32(path, &format!("accounts.{}.owner", a.name), &a.owner)?);
            total += a.balance as u128;
            accounts.push(GenesisAccount { name: a.name.clone(), owner, balance: a.balance });
        }
        if total > u64::MAX as u128 {
            return Err(invalid(path, "the genesis balances add up to more than 2^64-1"));
        }
        let q =
            Quorum::new(self.members.len(), self.max_failures).map_err(|e| invalid(path, e.to_string()))?;
        if self.quorum_size != q.quorum() {
            return Err(invalid(
                path,
                format!(
                    "quorum_size is {} but {} members with f={} need {}",
                    self.quorum_size,
                    q.n,
                    q.f,
                    q.quorum()
                ),
            ));
        }
        hex32(path, "operator_key", &self.operator_key)?;
        let config = Config {
            cluster_id,
            epoch: Epoch::genesis(members, self.max_failures),
            params: self.params.clone(),
            genesis: Genesis {
                operator: Some(PublicKey(hex32(path, "operator_key", &self.operator_key)?)),
                quarantine_ms: self.quarantine_ms,
                testing: self.testing,
            },
            app: phalanx_app::Genesis { accounts },
        };
        config.validate().map_err(|e| invalid(path, e.to_string()))?;
        Ok(config)
    }

    pub fn member(&self, name: &str) -> Option<(usize, &MemberEntry)> {
        self.members.iter().enumerate().find(|(_, m)| m.name == name)
    }
}

/// Everything a node process needs, loaded and checked.
pub struct NodeSetup {
    pub name: String,
    /// Its genesis member id, or `Replica::STANDBY` for a joiner.
    pub id: u32,
    pub replica_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub key: Keypair,
    pub genesis: GenesisFile,
    pub config: Config,
    pub data_dir: PathBuf,
    /// Peer name → the address to dial it at, when not its listed `replica_addr`.
    pub dial: std::collections::BTreeMap<String, SocketAddr>,
}

impl NodeSetup {
    pub fn load(node_toml: &Path) -> Result<Self, ConfigError> {
        let base = node_toml.parent().unwrap_or(Path::new("."));
        let node: NodeFile =
            toml::from_str(&read(node_toml)?).map_err(|e| invalid(node_toml, e.to_string()))?;
        let genesis_path = base.join(&node.genesis);
        let genesis = GenesisFile::load(&genesis_path)?;
        let config = genesis.core_config(&genesis_path)?;
        let key_path = base.join(&node.key);
        let key = Keypair::from_pem(&read(&key_path)?).map_err(|e| invalid(&key_path, e.to_string()))?;
        let (id, replica_addr, http_addr) = match genesis.member(&node.name) {
            Some((id, member)) => {
                if member.public_key != key.public().to_hex() {
                    return Err(invalid(
                        &key_path,
                        format!("this key is not the one genesis lists for {}", node.name),
                    ));
                }
                (id as u32, member.replica_addr, member.http_addr)
            }
            // A joiner: it waits as a standby until a committed reconfiguration admits its key.
            None => match (node.replica_addr, node.http_addr) {
                (Some(r), Some(h)) => (Replica::STANDBY, r, h),
                _ => {
                    return Err(invalid(
                        node_toml,
                        format!(
                            "{} is not a member in {}; a joining agent needs replica_addr and http_addr",
                            node.name,
                            genesis_path.display()
                        ),
                    ));
                }
            },
        };
        if genesis.members.iter().any(|m| m.public_key == key.public().to_hex() && m.name != node.name) {
            return Err(invalid(&key_path, "this key belongs to another genesis member"));
        }
        Ok(NodeSetup {
            name: node.name,
            id,
            replica_addr,
            http_addr,
            key,
            genesis,
            config,
            data_dir: base.join(node.data_dir),
            dial: node.dial,
        })
    }
}
