//! Who the agents are, as this node knows them: genesis members plus those admitted by
//! reconfigurations (ids are stable: an agent's index here is its replica id). Shared by the
//! replica loop (which updates it when an epoch starts), the transport (which authenticates
//! peers against it) and the HTTP API.

use crate::config::GenesisFile;
use phalanx_app::Replica;
use phalanx_core::consensus::Epoch;
use phalanx_core::wire::ReplicaId;
use phalanx_crypto::PublicKey;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

#[derive(Clone, Debug)]
pub struct Agent {
    pub name: String,
    pub key: PublicKey,
    pub replica_addr: Option<SocketAddr>,
    pub http_addr: Option<SocketAddr>,
    /// Votes in the current epoch.
    pub voter: bool,
}

#[derive(Clone, Debug)]
pub struct Directory {
    /// This node's id ([`Replica::STANDBY`] while a joiner waits for its epoch).
    pub id: ReplicaId,
    pub epoch: u64,
    pub f: usize,
    pub quorum: usize,
    pub agents: Vec<Agent>,
}

pub type SharedDirectory = Arc<RwLock<Directory>>;

impl Directory {
    pub fn from_genesis(genesis: &GenesisFile, id: ReplicaId) -> Self {
        let agents = genesis
            .members
            .iter()
            .map(|m| Agent {
                name: m.name.clone(),
                key: PublicKey::from_hex(&m.public_key).unwrap_or(PublicKey([0; 32])),
                replica_addr: Some(m.replica_addr),
                http_addr: Some(m.http_addr),
                voter: true,
            })
            .collect();
        Directory { id, epoch: 0, f: genesis.max_failures, quorum: genesis.quorum_size, agents }
    }

    /// Adopts a new epoch: joiners' addresses come from the committed reconfiguration.
    pub fn enter(&mut self, epoch: &Epoch, addresses: &BTreeMap<ReplicaId, (String, String)>, id: ReplicaId) {
        self.id = id;
        self.epoch = epoch.number;
        self.f = epoch.f;
        self.quorum = epoch.quorum().map(|q| q.quorum()).unwrap_or(self.quorum);
        for (i, m) in epoch.members.iter().enumerate() {
            let addr = |pick: fn(&(String, String)) -> &String| {
                addresses.get(&(i as ReplicaId)).and_then(|a| pick(a).parse::<SocketAddr>().ok())
            };
            if i >= self.agents.len() {
                self.agents.push(Agent {
                    name: m.name.clone(),
                    key: m.key,
                    replica_addr: addr(|a| &a.0),
                    http_addr: addr(|a| &a.1),
                    voter: false,
                });
            }
            self.agents[i].voter = epoch.is_voter(i as ReplicaId);
        }
    }

    pub fn key(&self, id: ReplicaId) -> Option<PublicKey> {
        self.agents.get(id as usize).map(|a| a.key)
    }

    pub fn id_of(&self, key: &PublicKey) -> Option<ReplicaId> {
        self.agents.iter().position(|a| a.key == *key).map(|i| i as ReplicaId)
    }

    pub fn name(&self, id: ReplicaId) -> String {
        match self.agents.get(id as usize) {
            Some(a) => a.name.clone(),
            None if id == Replica::STANDBY => "standby".into(),
            None => format!("member-{id}"),
        }
    }
}
