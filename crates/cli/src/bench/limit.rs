//! `phalanx bench --limit`: this machine's Ed25519 verification costs and the throughput bound
//! they put on a cluster where every node verifies every client signature once.

use phalanx_crypto::{BatchVerifier, Keypair, SeededRng, VerifyItem, verify_one};
use std::time::{Duration, Instant};

/// Signatures per batch when measuring (a replica verifies a pre-prepare's batch at once).
const BATCH: usize = 64;

pub struct Costs {
    /// Microseconds per signature, verified one at a time.
    pub single_us: f64,
    /// Microseconds per signature in batches of 64 by `ed25519-zebra`'s verifier, which
    /// decompresses every signer's key: the cost the limit is defined with.
    pub batch_us: f64,
    /// The same batches through Phalanx's verifier, which remembers signer points.
    pub remembered_us: f64,
    pub cores: usize,
}

impl Costs {
    /// Transactions per second when n nodes each verify every transaction's signature once and
    /// do nothing else: cores ÷ (n × batch cost).
    pub fn limit(&self, n: usize) -> f64 {
        self.cores as f64 / (n as f64 * self.batch_us * 1e-6)
    }
}

fn items(count: usize) -> Vec<VerifyItem> {
    (0..count)
        .map(|i| {
            let key = Keypair::from_seed([(i % 251) as u8 + 1; 32]);
            let message = format!("transfer {i} from bench-{i} to bench-{}", i + 1).into_bytes();
            let signature = key.sign(&message);
            VerifyItem { key: key.public(), message, signature }
        })
        .collect()
}

/// Repeats `f` for about `budget` and returns microseconds per signature.
fn per_signature(budget: Duration, per_call: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < budget {
        f();
        calls += 1;
    }
    start.elapsed().as_secs_f64() * 1e6 / (calls as f64 * per_call as f64)
}

/// Measures on one core for about `budget` per figure.
pub fn measure(budget: Duration) -> Costs {
    let batch = items(BATCH);
    let single_us = per_signature(budget, BATCH, || {
        for it in &batch {
            assert!(verify_one(&it.key, &it.message, &it.signature));
        }
    });
    let mut rng = SeededRng::new([9; 32]);
    let batch_us = per_signature(budget, BATCH, || {
        assert!(BatchVerifier::verify_reference(&mut rng, &batch).iter().all(|ok| *ok));
    });
    let remembered_us = per_signature(budget, BATCH, || {
        assert!(BatchVerifier::verify(&mut rng, &batch).iter().all(|ok| *ok));
    });
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    Costs { single_us, batch_us, remembered_us, cores }
}
