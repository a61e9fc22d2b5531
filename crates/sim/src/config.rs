//! What a simulation run is made of: cluster size, Byzantine strategies, network profile.

pub use phalanx_faults::Behaviour;
use serde::Serialize;
use std::str::FromStr;

/// Network conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetProfile {
    /// Every message arrives after 1–10 ms, in any order.
    Reliable,
    /// 5% loss, 2% duplication, 1–50 ms delays (heavy reordering).
    Lossy,
    /// Reliable, plus partitions that isolate a random minority for 1–5 s and then heal.
    Partition,
}

impl NetProfile {
    pub fn name(&self) -> &'static str {
        match self {
            NetProfile::Reliable => "reliable",
            NetProfile::Lossy => "lossy",
            NetProfile::Partition => "partition",
        }
    }
}

impl FromStr for NetProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reliable" => Ok(NetProfile::Reliable),
            "lossy" => Ok(NetProfile::Lossy),
            "partition" => Ok(NetProfile::Partition),
            _ => Err(format!("unknown network profile {s:?}; expected reliable, lossy or partition")),
        }
    }
}

/// One simulation run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub nodes: usize,
    pub faulty: usize,
    pub behaviours: Vec<Behaviour>,
    pub txs: usize,
    pub net: NetProfile,
    pub seed: u64,
    /// Honest clients submitting transfers (one outstanding request each).
    pub clients: usize,
    /// Crash one honest replica mid-run and restart it from its disk.
    pub crash_restart: bool,
    /// Virtual time after which unfinished transfers count as a liveness failure.
    pub deadline_ms: u64,
    /// Checkpoint interval K: small, so that runs exercise garbage collection and state transfer.
    pub checkpoint_interval: u64,
    /// Which agents are faulty; drawn from the seed when `None`.
    pub faulty_ids: Option<Vec<usize>>,
    /// Fail the run unless every faulty agent ends quarantined on every honest replica (for
    /// behaviours that are detectable: equivocation, invalid proposals, double spends,
    /// corrupted signatures).
    pub require_quarantine: bool,
    /// Federated rounds run alongside the transfers (0: none); see `federated.rs`.
    pub federated_rounds: u64,
}

impl SimConfig {
    pub fn new(nodes: usize, faulty: usize, seed: u64) -> Self {
        SimConfig {
            nodes,
            faulty,
            behaviours: Behaviour::ALL.to_vec(),
            txs: 200,
            net: NetProfile::Reliable,
            seed,
            clients: 64,
            crash_restart: true,
            deadline_ms: 600_000,
            checkpoint_interval: 20,
            faulty_ids: None,
            require_quarantine: false,
            federated_rounds: 0,
        }
    }

    /// The one-line command that replays this run.
    pub fn replay_command(&self) -> String {
        let b: Vec<_> = self.behaviours.iter().map(|b| b.name()).collect();
        let b = if b.is_empty() { "none".to_string() } else { b.join(",") };
        let mut cmd = format!(
            "phalanx sim --nodes {} --faulty {} --behaviours {} --txs {} --net {} --clients {} --seed {} --seeds 1 --verbose",
            self.nodes,
            self.faulty,
            b,
            self.txs,
            self.net.name(),
            self.clients,
            self.seed
        );
        if let Some(ids) = &self.faulty_ids {
            let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
            cmd += &format!(" --faulty-ids {}", ids.join(","));
        }
        if self.faulty > phalanx_core::quorum::Quorum::max_faults(self.nodes) {
            cmd += " --allow-excess-faults";
        }
        if !self.crash_restart {
            cmd += " --no-restarts";
        }
        if self.require_quarantine {
            cmd += " --require-quarantine";
        }
        if self.federated_rounds > 0 {
            cmd += &format!(" --federated-rounds {}", self.federated_rounds);
        }
        cmd
    }
}
