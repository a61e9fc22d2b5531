use crate::keys::{PublicKey, Signature};
use ed25519_zebra::{VerificationKey, VerificationKeyBytes, batch};

/// One signature to check: key, signed bytes, signature.
#[derive(Clone, Debug)]
pub struct VerifyItem {
    pub key: PublicKey,
    pub message: Vec<u8>,
    pub signature: Signature,
}

/// Single verification under ZIP 215 rules.
pub fn verify_one(key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
    match VerificationKey::try_from(key.0) {
        Ok(vk) => vk.verify(&signature.to_zebra(), message).is_ok(),
        Err(_) => false,
    }
}

/// Batch verification. Under ZIP 215 a batch accepts exactly when every signature accepts
/// singly, so the verdict per item here always equals `verify_one`: when a batch fails we fall
/// back to single verification to find the culprits.
pub struct BatchVerifier;

impl BatchVerifier {
    /// Verifies all items; returns one verdict per item, in order.
    pub fn verify<R: rand_core::CryptoRng>(rng: &mut R, items: &[VerifyItem]) -> Vec<bool> {
        match items.len() {
            0 => return Vec::new(),
            1 => return vec![verify_one(&items[0].key, &items[0].message, &items[0].signature)],
            _ => {}
        }
        let mut v = batch::Verifier::new();
        for it in items {
            v.queue((VerificationKeyBytes::from(it.key.0), it.signature.to_zebra(), &it.message));
        }
        if v.verify(&mut *rng).is_ok() {
            return vec![true; items.len()];
        }
        items.iter().map(|it| verify_one(&it.key, &it.message, &it.signature)).collect()
    }
}
