//! The Phalanx node: one process per agent. It runs the core replica on its own task, talks to
//! the other replicas over authenticated TCP, keeps its journal in redb, and serves HTTP/JSON.

pub mod api;
pub mod config;
pub mod decisions;
pub mod directory;
pub mod federated;
mod injected;
pub mod metrics;
pub mod runtime;
pub mod storage;
pub mod transport;

use config::NodeSetup;
use directory::{Directory, SharedDirectory};
use phalanx_app::Replica;
use phalanx_core::consensus::CachedVerifier;
use phalanx_crypto::VerdictCache;
use runtime::{Command, Runtime};
use std::sync::{Arc, Mutex, RwLock};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use transport::Identity;

/// 32 bytes from the operating system's randomness source.
pub fn os_seed() -> std::io::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom")?;
    std::io::Read::read_exact(&mut f, &mut seed)?;
    Ok(seed)
}

/// Runs one node until the process is killed.
pub async fn run(setup: NodeSetup) -> Result<(), String> {
    let mut store = storage::Store::open(&setup.data_dir).map_err(|e| e.to_string())?;
    let seed = os_seed().map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    let cache = Arc::new(VerdictCache::new(1 << 20));
    let verifier = Box::new(CachedVerifier::new(cache.clone(), seed));
    let (id, key, config) = (setup.id, setup.key.clone(), setup.config.clone());
    let replica = if store.records().is_empty() {
        Replica::new(id, key.clone(), config.clone(), verifier)
    } else {
        tracing::info!(records = store.records().len(), "recovering from disk");
        match Replica::recover(id, key.clone(), config.clone(), verifier, store.records()) {
            Ok(replica) => replica,
            Err(e) => {
                return Err(format!(
                    "cannot recover from {}: {e}{}",
                    setup.data_dir.display(),
                    store.refused()
                ));
            }
        }
    };
    store.recovered();
    let replica_listener = TcpListener::bind(setup.replica_addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", setup.replica_addr))?;
    let http_listener = TcpListener::bind(setup.http_addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", setup.http_addr))?;
    let directory: SharedDirectory = Arc::new(RwLock::new(Directory::from_genesis(&setup.genesis, id)));
    let identity =
        Identity { key, cluster: config.cluster_id, directory: directory.clone(), views: Default::default() };
    let seen = Arc::new(Mutex::new(vec![None; setup.genesis.members.len()]));
    let connector = runtime::Connector { identity: identity.clone(), dial: setup.dial.clone() };

    let metrics = Arc::new(metrics::Metrics::default());
    let (cmd_tx, cmd_rx) = mpsc::channel(65_536);
    let (inbound, registrations) = transport::FairInbound::new();
    let mut s = seed;
    s[0] ^= 0xa5;
    tokio::spawn(transport::accept_loop(
        replica_listener,
        identity,
        registrations,
        cache.clone(),
        seen.clone(),
        s,
        metrics.clone(),
    ));

    let traffic = Arc::new(runtime::Traffic::default());
    let api_state = api::ApiState {
        cache: cache.clone(),
        rng_seed: {
            let mut s = seed;
            s[0] ^= 0x3c;
            s
        },
        traffic: traffic.clone(),
        metrics: metrics.clone(),
        commands: cmd_tx.clone(),
        directory: directory.clone(),
        seen,
        cluster: config.cluster_id,
        name: setup.name.clone(),
        testing: setup.genesis.testing,
    };
    tokio::spawn(async move {
        if let Err(e) = axum::serve(http_listener, api::router(api_state)).await {
            tracing::error!("HTTP server stopped: {e}");
        }
    });
    if id == Replica::STANDBY {
        tracing::info!(name = %setup.name, "standby: waiting for a committed reconfiguration to admit this agent");
    }
    tracing::info!(name = %setup.name, replica = %setup.replica_addr, http = %setup.http_addr, "node started");
    // The dashboard's charts: one sample a second.
    let sampled = metrics.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            every.tick().await;
            sampled.sample(runtime::now_ms());
        }
    });
    // Injected faults act on their own every 300 ms (as in the simulator); idle otherwise.
    let ticker = cmd_tx.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_millis(300));
        loop {
            every.tick().await;
            if ticker.send(Command::FaultTick).await.is_err() {
                break;
            }
        }
    });
    Runtime::new(replica, store, connector, directory, cmd_tx, traffic, metrics).run(cmd_rx, inbound).await;
    Ok(())
}
