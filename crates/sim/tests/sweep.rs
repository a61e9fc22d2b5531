//! A seeded sweep over cluster sizes and networks with every Byzantine behaviour, sized for CI.
//! The full-size commands (1000 seeds x 1000 transfers) are in docs/simulator.md.

use phalanx_sim::{NetProfile, SimConfig, run};
use std::sync::Mutex;

#[test]
fn all_behaviours_all_sizes_all_networks() {
    let mut jobs = Vec::new();
    for n in [4usize, 7, 10, 13] {
        for net in [NetProfile::Reliable, NetProfile::Lossy, NetProfile::Partition] {
            for seed in 0..12 {
                let mut c = SimConfig::new(n, (n - 1) / 3, 1000 + seed);
                c.net = net;
                c.txs = 200;
                jobs.push(c);
            }
        }
    }
    let jobs = Mutex::new(jobs);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while let Some(c) = jobs.lock().unwrap().pop() {
                    let r = run(&c);
                    if !r.ok() || r.committed + r.rejected != c.txs as u64 {
                        failures.lock().unwrap().push(format!(
                            "{:?} {:?} (accepted {}/{})\n  replay: {}",
                            r.safety_violations,
                            r.liveness_failure,
                            r.committed + r.rejected,
                            c.txs,
                            r.replay
                        ));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} failing runs:\n{}", failures.len(), failures.join("\n"));
}
