//! Byzantine behaviours, written once and driven twice: by the deterministic simulator and by a
//! node of a testing cluster after `phalanx inject-fault`. A faulty agent runs an honest replica;
//! its [`Strategy`] rewrites what that replica sends and adds actions of its own.

mod board;
mod chaos;
mod strategy;

pub use board::Blackboard;
pub use strategy::{Outgoing, Strategy};

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
    /// Sends VIEW-CHANGEs carrying bogus prepared certificates and, as a new primary, NEW-VIEWs
    /// whose re-proposals do not follow from their view changes (provable: invalid new view).
    ForgeViewChange,
    /// As primary, replaces the requests of a batch with unsigned opaque payloads under the same
    /// clients and nonces: executed, they would be rejected and the honest requests dropped
    /// with them (silent censorship). Provable: an invalid proposal.
    OpaqueCensor,
    /// As primary, pads a batch with megabyte-sized requests of its own past the batch size
    /// limit: a batch no frame can carry. Provable: an invalid proposal.
    Oversize,
    /// Colluding members withhold batches: as primary, a member pre-prepares to its accomplices
    /// and just enough honest backups that none can prepare; accomplices send their PREPAREs for
    /// it to each other only (so the primary holds a certificate nobody honest has); and none
    /// of them ever hands a batch to a replica that asks for it.
    WithholdBatch,
    /// As primary, stamps batches with a frozen clock (time 0) or one far ahead, to stop or jump
    /// the replicated clock (quarantine expiry, memory TTLs, federated deadlines).
    ClockSkew,
    /// Nobody scripted it: seeded, it mutates any field of what its replica sends (re-signed
    /// with its own key, or not), sends each recipient its own version or none or a late one,
    /// and replays and mutates what any colluder has seen.
    Chaos,
}

impl Behaviour {
    pub const ALL: [Behaviour; 15] = [
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
        Behaviour::OpaqueCensor,
        Behaviour::Oversize,
        Behaviour::WithholdBatch,
        Behaviour::ClockSkew,
        Behaviour::Chaos,
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
            Behaviour::OpaqueCensor => "opaque-censor",
            Behaviour::Oversize => "oversize",
            Behaviour::WithholdBatch => "withhold-batch",
            Behaviour::ClockSkew => "clock-skew",
            Behaviour::Chaos => "chaos",
        }
    }

    /// The name operators use with `phalanx inject-fault --fault-type` (the detection log's
    /// vocabulary); accepted wherever a behaviour name is.
    pub fn fault_name(&self) -> &'static str {
        match self {
            Behaviour::Silent => "silence",
            Behaviour::CorruptSignatures => "signature-corruption",
            Behaviour::Equivocate => "equivocation",
            Behaviour::Censor => "censorship",
            other => other.name(),
        }
    }

    /// How often the behaviour acts when it has the chance, unless the operator says otherwise.
    pub fn default_probability(&self) -> f64 {
        match self {
            Behaviour::CorruptSignatures | Behaviour::InvalidProposal | Behaviour::ClockSkew => 0.5,
            // Each oversized batch costs every backup hashing megabytes: now and then is enough.
            Behaviour::Oversize => 0.2,
            Behaviour::DoubleSpend => 0.3,
            _ => 1.0,
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
        Self::ALL.iter().find(|b| b.name() == s || b.fault_name() == s).copied().ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|b| b.name()).collect();
            format!("unknown behaviour {s:?}; expected `all` or some of: {}", names.join(", "))
        })
    }
}
