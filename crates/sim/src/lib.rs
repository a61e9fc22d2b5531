//! Phalanx's deterministic simulator.
//!
//! One seed decides everything: keys, which agents are faulty and how, every network delay,
//! loss, duplication and partition, crashes and restarts. The replicas are the real
//! `phalanx-core` state machines; Byzantine agents run a real replica whose output a
//! [`phalanx_faults::Strategy`] rewrites. After every step the [`invariants::Checker`] verifies
//! agreement, validity (against an independent reference ledger), no double spend, balance
//! conservation, equal honest checkpoint digests, exactly-once execution, bounded memory and
//! that evidence only ever names a faulty party. Any failure replays from its seed.
//!
//! - `world`: virtual time and its scheduler, the faulty network, and the hosts of the
//!   replicas (the node's effect rules, `consensus::perform`).
//! - [`workload`]: what clients do: transfers and federated-learning rounds.
//! - [`invariants`]: one checker per safety invariant.
//! - [`config`]: what a run is made of; [`disk`]: what survives a crash.

pub mod config;
pub mod disk;
pub mod invariants;
pub mod workload;
mod world;

pub use config::{Behaviour, NetProfile, SimConfig};
use serde::Serialize;

/// The outcome of one seeded run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub seed: u64,
    /// Transfers accepted by their clients as applied / as rejected by the ledger.
    pub committed: u64,
    pub rejected: u64,
    pub messages: u64,
    pub virtual_ms: u64,
    pub latency_p50_ms: u64,
    pub safety_violations: Vec<String>,
    pub liveness_failure: Option<String>,
    /// With `require_quarantine`: a faulty agent that was not quarantined everywhere.
    pub detection_failure: Option<String>,
    pub evidence: u64,
    /// Faulty agents quarantined on every honest replica at the end.
    pub quarantined: Vec<u32>,
    /// Detection log entries by fault type, on the most advanced honest replica.
    pub detections: std::collections::BTreeMap<String, u64>,
    pub max_view: u64,
    /// Federated rounds closed on the most advanced honest replica.
    pub federated_rounds: u64,
    pub faulty: Vec<(u32, Vec<Behaviour>)>,
    pub wall_ms: u64,
    pub replay: String,
    #[serde(skip)]
    pub trace: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.safety_violations.is_empty()
            && self.liveness_failure.is_none()
            && self.detection_failure.is_none()
    }
}

/// Runs one simulation to completion.
pub fn run(cfg: &SimConfig) -> Report {
    world::World::new(cfg.clone(), false).run()
}

/// Runs one simulation and keeps a trace of notable events.
pub fn run_traced(cfg: &SimConfig) -> Report {
    world::World::new(cfg.clone(), true).run()
}
