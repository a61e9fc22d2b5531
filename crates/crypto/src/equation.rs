//! The ZIP 215 batch equation over signer points that are decompressed once and remembered.
//!
//! `ed25519-zebra`'s batch verifier takes key bytes and decompresses every distinct key in
//! every batch: about a fifth of a verification when each signature has its own signer, as in
//! a batch of client transfers. Its `Verifier` accepts no decompressed keys, so this module
//! states the same equation itself, on the same `curve25519-dalek` primitives, with the same
//! decoding rules (any encoding `decompress` accepts, canonical `s` only, cofactored check):
//!
//!   [8] ( −(Σ zᵢ sᵢ) B + Σ_A (Σ_{i signed by A} zᵢ kᵢ) A + Σ zᵢ Rᵢ ) = 0,  kᵢ = H(Rᵢ ‖ Aᵢ ‖ Mᵢ)
//!
//! with random 128-bit zᵢ. It holds for every batch of signatures that each verify singly (the
//! cofactored single equation multiplied by zᵢ, summed) and fails except with probability about
//! 2⁻¹²⁸ otherwise. Callers only take "holds" as acceptance; on "fails" they ask the reference
//! single verifier (`verify_one`, ed25519-zebra) about each signature, so a rejection here never
//! decides a verdict by itself.

use crate::VerifyItem;
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::digest::Update;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use sha2::Sha512;
use std::collections::HashMap;
use std::sync::Mutex;

/// Signer points remembered, at most (then forgotten all at once): about 200 bytes each.
/// A Byzantine client inventing keys only makes the cache forget; each key still costs one
/// decompression, as it would without the cache.
const POINTS: usize = 16_384;

/// Shared by every thread that verifies (HTTP verification runs on tokio's blocking pool,
/// whose threads come and go; a per-thread cache would decompress every key again per thread).
static SIGNERS: Mutex<Option<HashMap<[u8; 32], EdwardsPoint>>> = Mutex::new(None);

/// The points of `keys`, in order (`None`: the bytes are no curve point). Decompression is a
/// pure function of the bytes, so a remembered point is exactly the point.
fn signer_points(keys: &[[u8; 32]]) -> Vec<Option<EdwardsPoint>> {
    let mut out: Vec<Option<EdwardsPoint>> = {
        let guard = SIGNERS.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter().map(|k| guard.as_ref().and_then(|m| m.get(k).copied())).collect()
    };
    let mut learned: HashMap<[u8; 32], EdwardsPoint> = HashMap::new();
    for (key, slot) in keys.iter().zip(out.iter_mut()) {
        if slot.is_none() {
            *slot = match learned.get(key) {
                Some(p) => Some(*p),
                None => CompressedEdwardsY(*key).decompress(),
            };
            if let Some(p) = slot {
                learned.insert(*key, *p);
            }
        }
    }
    if !learned.is_empty() {
        let mut guard = SIGNERS.lock().unwrap_or_else(|p| p.into_inner());
        let map = guard.get_or_insert_with(HashMap::new);
        if map.len() + learned.len() > POINTS {
            // A fresh map: `clear` would keep the grown allocation.
            *map = HashMap::new();
        }
        map.extend(learned.into_iter().take(POINTS));
    }
    out
}

/// Whether the batch equation holds for `items` (false if any key, R or s does not decode).
pub(crate) fn holds<R: rand_core::CryptoRng>(rng: &mut R, items: &[VerifyItem]) -> bool {
    let keys: Vec<[u8; 32]> = items.iter().map(|it| it.key.0).collect();
    let points = signer_points(&keys);
    // One term per distinct signer: votes of a few members share their key's term.
    let mut signer_index: HashMap<[u8; 32], usize> = HashMap::with_capacity(items.len());
    let mut signers: Vec<EdwardsPoint> = Vec::with_capacity(items.len());
    let mut signer_coeffs: Vec<Scalar> = Vec::with_capacity(items.len());
    let mut rs: Vec<EdwardsPoint> = Vec::with_capacity(items.len());
    let mut r_coeffs: Vec<Scalar> = Vec::with_capacity(items.len());
    let mut base_coeff = Scalar::ZERO;
    for (it, point) in items.iter().zip(points) {
        let Some(a) = point else { return false };
        let Some(r) = CompressedEdwardsY(it.signature.r).decompress() else { return false };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(it.signature.s)) else {
            return false;
        };
        let k = Scalar::from_hash(
            Sha512::default().chain(&it.signature.r[..]).chain(&it.key.0[..]).chain(&it.message),
        );
        let mut z = [0u8; 16];
        rng.fill_bytes(&mut z);
        let z = Scalar::from(u128::from_le_bytes(z));
        base_coeff -= z * s;
        rs.push(r);
        r_coeffs.push(z);
        let i = *signer_index.entry(it.key.0).or_insert_with(|| {
            signers.push(a);
            signer_coeffs.push(Scalar::ZERO);
            signers.len() - 1
        });
        signer_coeffs[i] += z * k;
    }
    let check = EdwardsPoint::vartime_multiscalar_mul(
        std::iter::once(&base_coeff).chain(&signer_coeffs).chain(&r_coeffs),
        std::iter::once(&ED25519_BASEPOINT_POINT).chain(&signers).chain(&rs),
    );
    check.mul_by_cofactor().is_identity()
}
