//! Signature verification for simulated replicas, memoised across the whole run.
//!
//! Sound because verification is a pure function of (key, message, signature): a corrupted
//! signature or message is a different cache key and is verified for real. It lets thousands of
//! seeded runs finish in minutes without changing any verdict.

use phalanx_core::consensus::SignatureVerifier;
use phalanx_crypto::{BatchVerifier, SeededRng, VerifyItem};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub type Cache = Arc<Mutex<HashMap<[u8; 32], bool>>>;

pub struct MemoVerifier {
    cache: Cache,
    rng: SeededRng,
}

impl MemoVerifier {
    pub fn new(cache: Cache, seed: u64) -> Self {
        MemoVerifier { cache, rng: SeededRng::from_u64(seed) }
    }
}

fn key_of(it: &VerifyItem) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&it.key.0);
    h.update(&it.signature.to_bytes());
    h.update(&it.message);
    *h.finalize().as_bytes()
}

impl SignatureVerifier for MemoVerifier {
    fn verify(&mut self, items: &[VerifyItem]) -> Vec<bool> {
        let keys: Vec<[u8; 32]> = items.iter().map(key_of).collect();
        let mut out: Vec<Option<bool>> = {
            let cache = self.cache.lock().expect("the simulator is single-threaded per run");
            keys.iter().map(|k| cache.get(k).copied()).collect()
        };
        let missing: Vec<usize> = (0..items.len()).filter(|i| out[*i].is_none()).collect();
        if !missing.is_empty() {
            let todo: Vec<VerifyItem> = missing.iter().map(|i| items[*i].clone()).collect();
            let verdicts = BatchVerifier::verify(&mut self.rng, &todo);
            let mut cache = self.cache.lock().expect("the simulator is single-threaded per run");
            for (i, ok) in missing.into_iter().zip(verdicts) {
                cache.insert(keys[i], ok);
                out[i] = Some(ok);
            }
        }
        out.into_iter().map(|v| v.unwrap_or(false)).collect()
    }
}
