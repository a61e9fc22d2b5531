//! What a simulation run is made of: cluster size, Byzantine strategies, network profile.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// A named Byzantine strategy. A faulty agent runs an honest replica and one or more of these
/// strategies rewrite what it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// Sends nothing.
    Silent,
    /// Stops for good at a random time.
    Crash,
    /// Corrupts the signature of each message it sends with probability 0.5.
    CorruptSignatures,
    /// As primary, proposes different batches for one seq to different backups; as backup,
    /// votes for two digests.
    Equivocate,
    /// As an account holder, signs two transfers with one nonce and sends them to different
    /// replicas.
    DoubleSpend,
    /// As primary, never proposes.
    Censor,
    /// As primary, proposes batches containing a request with a bad client signature.
    InvalidProposal,
    /// Delays everything it sends by up to 400 ms.
    Delay,
    /// Re-sends old messages to random peers.
    Replay,
    /// Sends VIEW-CHANGEs carrying bogus prepared certificates.
    ForgeViewChange,
}

impl Behaviour {
    pub const ALL: [Behaviour; 10] = [
        Behaviour::Silent,
        Behaviour::Crash,
        Behaviour::CorruptSignatures,
        Behaviour::Equivocate,
        Behaviour::DoubleSpend,
        Behaviour::Censor,
        Behaviour::InvalidProposal,
        Behaviour::Delay,
        Behaviour::Replay,
        Behaviour::ForgeViewChange,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Behaviour::Silent => "silent",
            Behaviour::Crash => "crash",
            Behaviour::CorruptSignatures => "corrupt-signatures",
            Behaviour::Equivocate => "equivocate",
            Behaviour::DoubleSpend => "double-spend",
            Behaviour::Censor => "censor",
            Behaviour::InvalidProposal => "invalid-proposal",
            Behaviour::Delay => "delay",
            Behaviour::Replay => "replay",
            Behaviour::ForgeViewChange => "forge-view-change",
        }
    }

    /// Parses `all` or a comma-separated list of names.
    pub fn parse_list(s: &str) -> Result<Vec<Behaviour>, String> {
        if s.trim() == "all" {
            return Ok(Self::ALL.to_vec());
        }
        if s.trim().is_empty() || s.trim() == "none" {
            return Ok(Vec::new());
        }
        s.split(',').map(|p| p.trim().parse()).collect()
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Behaviour {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.iter().find(|b| b.name() == s).copied().ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|b| b.name()).collect();
            format!("unknown behaviour {s:?}; expected `all` or some of: {}", names.join(", "))
        })
    }
}

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
        cmd
    }
}
