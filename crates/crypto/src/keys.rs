use crate::digest::hex;
use ed25519_zebra::ed25519::pkcs8::{DecodePrivateKey, KeypairBytes};
use ed25519_zebra::{SigningKey, VerificationKey};
use serde::{Deserialize, Serialize};
use std::fmt;

/// An agent's Ed25519 public key (32 bytes, as it appears in genesis).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicKey(#[serde(with = "serde_bytes")] pub [u8; 32]);

impl PublicKey {
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    pub fn from_hex(s: &str) -> Result<Self, KeyError> {
        let s = s.trim();
        if s.len() != 64 {
            return Err(KeyError::Hex(format!("expected 64 hex characters, got {}", s.len())));
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let pair = std::str::from_utf8(chunk).map_err(|_| KeyError::Hex("not ASCII".into()))?;
            out[i] = u8::from_str_radix(pair, 16)
                .map_err(|_| KeyError::Hex(format!("invalid hex pair {pair:?}")))?;
        }
        Ok(PublicKey(out))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex(&self.0[..4]))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// An Ed25519 signature, stored as its two 32-byte halves (R, s) so serde can derive it.
/// Never compare signatures to decide anything: a signature can be re-encoded.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    #[serde(with = "serde_bytes")]
    pub r: [u8; 32],
    #[serde(with = "serde_bytes")]
    pub s: [u8; 32],
}

impl Signature {
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.r);
        out[32..].copy_from_slice(&self.s);
        out
    }

    pub fn from_bytes(b: &[u8; 64]) -> Self {
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&b[..32]);
        s.copy_from_slice(&b[32..]);
        Signature { r, s }
    }

    pub(crate) fn to_zebra(self) -> ed25519_zebra::Signature {
        ed25519_zebra::Signature::from_bytes(&self.to_bytes())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", hex(&self.r[..4]))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("not a PKCS#8 Ed25519 private key in PEM form: {0}")]
    Pem(String),
    #[error("the PEM's embedded public key does not match its private key")]
    PublicKeyMismatch,
    #[error("invalid hex public key: {0}")]
    Hex(String),
}

/// A signing identity: an Ed25519 key pair.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
    public: PublicKey,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({:?})", self.public)
    }
}

impl Keypair {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let signing = SigningKey::from(seed);
        let public = PublicKey(VerificationKey::from(&signing).into());
        Keypair { signing, public }
    }

    pub fn generate<R: rand_core::CryptoRng>(rng: &mut R) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        Self::from_seed(seed)
    }

    pub fn public(&self) -> PublicKey {
        self.public
    }

    pub fn sign(&self, msg: &[u8]) -> Signature {
        let bytes = self.signing.sign(msg).to_bytes();
        Signature::from_bytes(&bytes)
    }

    /// PKCS#8 v1 PEM ("BEGIN PRIVATE KEY"), the form `openssl pkey` reads.
    pub fn to_pem(&self) -> String {
        self.signing
            .to_pkcs8_pem_v1(Default::default())
            .expect("encoding a 32-byte seed as PKCS#8 cannot fail")
            .to_string()
    }

    /// Parses PKCS#8 v1 or v2 PEM. Never panics on malformed input (ed25519-zebra's own
    /// `DecodePrivateKey` impl unwraps, so we decode the key pair bytes ourselves).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let kp = KeypairBytes::from_pkcs8_pem(pem).map_err(|e| KeyError::Pem(e.to_string()))?;
        let me = Self::from_seed(kp.secret_key);
        if let Some(public) = kp.public_key
            && public.to_bytes() != me.public.0
        {
            return Err(KeyError::PublicKeyMismatch);
        }
        Ok(me)
    }
}
