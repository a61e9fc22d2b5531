//! The clients of a chaos run. Each sends one transfer at a time and, like a careful client,
//! retries the same signed request (same nonce) until f+1 agents vouch for its result: a new
//! nonce for a request that may already have executed could pay twice. What each was told is
//! the history the checker judges.

use super::check::{Ack, Op};
use phalanx_client::Cluster;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Load {
    pub ops: Arc<Mutex<Vec<Op>>>,
    /// Set: sign no new transfer, finish the one in flight.
    pub stop: Arc<AtomicBool>,
    /// When a client stops retrying the transfer in flight.
    pub give_up: Arc<Mutex<Option<Instant>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    /// `accounts` are the client names (each owns the account of its name); transfers go from
    /// a client's account to another's.
    pub fn start(cluster: Arc<Cluster>, accounts: Vec<String>, seed: u64) -> Result<Self, String> {
        let ops = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let give_up = Arc::new(Mutex::new(None));
        let mut threads = Vec::new();
        for (c, name) in accounts.iter().enumerate() {
            let key = cluster.client_key(name)?;
            let (cluster, accounts, name) = (cluster.clone(), accounts.clone(), name.clone());
            let (ops, stop, give_up) = (ops.clone(), stop.clone(), give_up.clone());
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (c as u64) << 32);
            threads.push(std::thread::spawn(move || {
                let mut last_nonce = 0;
                while !stop.load(Ordering::Relaxed) {
                    let to = &accounts[(c + rng.random_range(1..accounts.len())) % accounts.len()];
                    let amount = rng.random_range(1..=1000);
                    let nonce = phalanx_client::clock_nonce().max(last_nonce + 1);
                    last_nonce = nonce;
                    let req = cluster.sign_transfer(&key, nonce, &name, to, amount);
                    let ack = loop {
                        match cluster.submit(&req, Duration::from_secs(3)) {
                            Ok(a) => break Some(Ack { outcome: a.outcome, seq: a.seq }),
                            Err(_) => {
                                let over = give_up.lock().unwrap_or_else(|p| p.into_inner());
                                if over.is_some_and(|t| Instant::now() > t) {
                                    break None;
                                }
                                drop(over);
                                // No agent may be up to answer at all: don't spin.
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        }
                    };
                    let op =
                        Op { client: name.clone(), nonce, from: name.clone(), to: to.clone(), amount, ack };
                    ops.lock().unwrap_or_else(|p| p.into_inner()).push(op);
                }
            }));
        }
        Ok(Load { ops, stop, give_up, threads })
    }

    /// Stops signing new transfers, and waits until each client has an answer for the one it
    /// has in flight or `wait` has passed.
    pub fn finish(self, wait: Duration) -> Vec<Op> {
        self.stop.store(true, Ordering::Relaxed);
        *self.give_up.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + wait);
        for t in self.threads {
            let _ = t.join();
        }
        std::mem::take(&mut *self.ops.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn acknowledged(&self) -> usize {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|o| o.ack.is_some()).count()
    }
}
