//! Watches every member's status during a chaos run: each (executed seq, state digest) it
//! reports is kept for the checker, and the highest executed seq tells when the cluster
//! commits again after a heal.

use phalanx_client::Cluster;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Watch {
    pub observed: Arc<Mutex<Vec<(String, u64, String)>>>,
    top: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

const EVERY: Duration = Duration::from_millis(50);

impl Watch {
    pub fn start(cluster: &Cluster) -> Self {
        let w = Watch {
            observed: Default::default(),
            top: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        for i in 0..cluster.n() {
            let (w, url, name) = (w.clone(), cluster.url(i, "/v1/status"), cluster.agents[i].name.clone());
            std::thread::spawn(move || {
                let http = phalanx_client::agent(Duration::from_millis(500));
                let mut last = None;
                while !w.stop.load(Ordering::Relaxed) {
                    let status = http
                        .get(&url)
                        .call()
                        .ok()
                        .and_then(|mut r| r.body_mut().read_to_string().ok())
                        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
                    if let Some(s) = status
                        && let (Some(seq), Some(digest)) =
                            (s["last_executed"].as_u64(), s["state_digest"].as_str())
                        && last != Some(seq)
                    {
                        last = Some(seq);
                        w.top.fetch_max(seq, Ordering::Relaxed);
                        w.observed.lock().unwrap_or_else(|p| p.into_inner()).push((
                            name.clone(),
                            seq,
                            digest.into(),
                        ));
                    }
                    std::thread::sleep(EVERY);
                }
            });
        }
        w
    }

    /// The highest seq any member reported executed.
    pub fn top(&self) -> u64 {
        self.top.load(Ordering::Relaxed)
    }

    /// How long, from `since`, until some member executes past `above`; None if not by `within`.
    pub fn commit_after(&self, since: Instant, above: u64, within: Duration) -> Option<Duration> {
        while since.elapsed() < within {
            if self.top() > above {
                return Some(since.elapsed());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
