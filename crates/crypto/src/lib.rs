//! Phalanx cryptography: agent identities (Ed25519 in PKCS#8 PEM), domain-separated signing,
//! verification whose batch verdict always equals the single verdict (ZIP 215 rules: single
//! verification by `ed25519-zebra`, the batch equation over remembered signer points in
//! `equation`), and BLAKE3 digests.
//!
//! Nothing here performs I/O except the explicit PEM helpers, which take and return strings.

mod cache;
mod digest;
mod equation;
mod keys;
mod verify;

pub use cache::VerdictCache;
pub use digest::{Digest, DigestWriter, digest};
pub use keys::{KeyError, Keypair, PublicKey, Signature};
pub use verify::{BatchVerifier, VerifyItem, verify_one};

/// Domain tag prefixed to every signed message so a Phalanx signature can never be replayed as
/// a signature of some other protocol (or another version of this one).
pub const DOMAIN_TAG: &[u8; 11] = b"phalanx/v1\0";

/// Builds the exact bytes that are signed: tag, cluster id, epoch, message kind, then the
/// canonical encoding of the message body.
pub fn signing_bytes(cluster: &Digest, epoch: u64, kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(DOMAIN_TAG.len() + 32 + 8 + 1 + body.len());
    out.extend_from_slice(DOMAIN_TAG);
    out.extend_from_slice(cluster.as_bytes());
    out.extend_from_slice(&epoch.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests;

mod rng;
pub use rng::SeededRng;
