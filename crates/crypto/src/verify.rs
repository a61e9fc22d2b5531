use crate::keys::{PublicKey, Signature};
use ed25519_zebra::{VerificationKey, VerificationKeyBytes, batch};
use std::cell::RefCell;
use std::collections::HashMap;

/// One signature to check: key, signed bytes, signature.
#[derive(Clone, Debug)]
pub struct VerifyItem {
    pub key: PublicKey,
    pub message: Vec<u8>,
    pub signature: Signature,
}

/// Single verification under ZIP 215 rules.
pub fn verify_one(key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
    match decompressed(key) {
        Some(vk) => vk.verify(&signature.to_zebra(), message).is_ok(),
        None => false,
    }
}

/// Decompressed keys remembered per thread, at most this many (then forgotten all at once).
const KEY_CACHE: usize = 4096;

thread_local! {
    static KEYS: RefCell<HashMap<[u8; 32], VerificationKey>> = RefCell::new(HashMap::new());
}

/// The key as a curve point. Decompressing costs about a fifth of a verification, and the same
/// few members sign every vote, so the points are remembered. Decompression is a pure function
/// of the bytes: a remembered point is exactly the point, and an invalid key is never stored.
fn decompressed(key: &PublicKey) -> Option<VerificationKey> {
    if let Some(vk) = KEYS.with(|k| k.borrow().get(&key.0).copied()) {
        return Some(vk);
    }
    let vk = VerificationKey::try_from(key.0).ok()?;
    KEYS.with(|k| {
        let mut k = k.borrow_mut();
        if k.len() >= KEY_CACHE {
            k.clear();
        }
        k.insert(key.0, vk);
    });
    Some(vk)
}

/// Batch verification. Under ZIP 215 a batch accepts exactly when every signature accepts
/// singly, so the verdict per item here always equals `verify_one`: when a batch fails we fall
/// back to single verification to find the culprits.
pub struct BatchVerifier;

impl BatchVerifier {
    /// Verifies all items; returns one verdict per item, in order. The batch equation runs over
    /// remembered signer points (`equation`); only its "holds" is taken as a verdict.
    pub fn verify<R: rand_core::CryptoRng>(rng: &mut R, items: &[VerifyItem]) -> Vec<bool> {
        Self::verify_with(items, |items| crate::equation::holds(rng, items))
    }

    /// The same verdicts through `ed25519-zebra`'s own batch verifier, which decompresses every
    /// signer's key in every batch: the reference cost `phalanx bench --limit` measures, and
    /// the verifier the tests compare with.
    pub fn verify_reference<R: rand_core::CryptoRng>(rng: &mut R, items: &[VerifyItem]) -> Vec<bool> {
        Self::verify_with(items, |items| {
            let mut v = batch::Verifier::new();
            for it in items {
                v.queue((VerificationKeyBytes::from(it.key.0), it.signature.to_zebra(), &it.message));
            }
            v.verify(&mut *rng).is_ok()
        })
    }

    fn verify_with(items: &[VerifyItem], batch_holds: impl FnOnce(&[VerifyItem]) -> bool) -> Vec<bool> {
        match items.len() {
            0 => return Vec::new(),
            1 => return vec![verify_one(&items[0].key, &items[0].message, &items[0].signature)],
            _ => {}
        }
        if batch_holds(items) {
            return vec![true; items.len()];
        }
        items.iter().map(|it| verify_one(&it.key, &it.message, &it.signature)).collect()
    }
}
