//! Verdicts already computed, keyed by (key, signature, message). Verification is a pure
//! function of those three, so a cached verdict is exactly the verdict: the node's network tasks
//! verify in batches off the event loop and the replica finds the answers here; the simulator
//! shares one cache among its replicas.

use crate::{BatchVerifier, VerifyItem};
use std::collections::HashMap;
use std::sync::Mutex;

pub struct VerdictCache {
    map: Mutex<HashMap<[u8; 32], bool>>,
    capacity: usize,
}

fn key_of(it: &VerifyItem) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&it.key.0);
    h.update(&it.signature.to_bytes());
    h.update(&it.message);
    *h.finalize().as_bytes()
}

impl VerdictCache {
    /// A cache that forgets everything when it reaches `capacity` entries (bounded memory).
    pub fn new(capacity: usize) -> Self {
        VerdictCache { map: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }

    /// Verifies `items`, batch-verifying only those not cached.
    pub fn verify<R: rand_core::CryptoRng>(&self, rng: &mut R, items: &[VerifyItem]) -> Vec<bool> {
        let keys: Vec<[u8; 32]> = items.iter().map(key_of).collect();
        let mut out: Vec<Option<bool>> = {
            let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            keys.iter().map(|k| map.get(k).copied()).collect()
        };
        let missing: Vec<usize> = (0..items.len()).filter(|i| out[*i].is_none()).collect();
        if !missing.is_empty() {
            let todo: Vec<VerifyItem> = missing.iter().map(|i| items[*i].clone()).collect();
            let verdicts = BatchVerifier::verify(rng, &todo);
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() + missing.len() > self.capacity {
                map.clear();
            }
            for (i, ok) in missing.into_iter().zip(verdicts) {
                map.insert(keys[i], ok);
                out[i] = Some(ok);
            }
        }
        out.into_iter().map(|v| v.unwrap_or(false)).collect()
    }
}
