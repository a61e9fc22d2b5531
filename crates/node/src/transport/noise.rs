//! The secure channel under every replica link: confidential, and authenticated frame by frame.
//!
//! A Noise `NN` handshake (ephemeral X25519, ChaCha20-Poly1305, BLAKE2s) gives both ends fresh
//! session keys and a transcript hash that only this one session has. Inside the encrypted
//! channel each end then signs that hash, with its role, using its member Ed25519 key. A relay
//! that sits between two members runs two sessions with two different hashes, so it can neither
//! pass one member's proof off in the other session nor write a frame either end will open: every
//! frame carries an AEAD tag under keys the relay does not have, and nonces run in order, so a
//! dropped, replayed or reordered frame ends the link instead of being delivered.
//!
//! Why Noise and not TLS: members are known by raw Ed25519 keys from genesis, not by names in a
//! certificate chain, and a signature over the Noise transcript binds the channel to those keys
//! with no X.509 or certificate pinning to get wrong. `snow` is the maintained Rust Noise crate;
//! its RustCrypto backend needs no C.
//!
//! Noise messages are at most 65,535 bytes, protocol frames up to 16 MiB: a frame is sealed as a
//! run of Noise messages of the largest size, the last one shorter. The receiver cuts the run at
//! the same places. Each message's first plaintext byte says whether it ends the frame, so a
//! relay that rewrites a length prefix to split or join frames at a message boundary is caught.

use super::Identity;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use phalanx_core::wire::{self, ReplicaId, limits};
use phalanx_crypto::{Digest, PublicKey, Signature, signing_bytes, verify_one};
use serde::{Deserialize, Serialize};
use snow::TransportState;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

pub const PATTERN: &str = "Noise_NN_25519_ChaChaPoly_BLAKE2s";
/// Kind byte of the channel proof's signing domain (distinct from every protocol message kind).
const PROOF_KIND: u8 = 100;
const NOISE_MAX: usize = 65_535;
const TAG: usize = 16;
/// Plaintext bytes per Noise message: one byte says whether the frame ends with it.
const CHUNK: usize = NOISE_MAX - TAG - 1;
const MORE: u8 = 0;
const LAST: u8 = 1;

/// The largest sealed frame: a protocol frame of the wire limit, plus a tag and a flag per chunk.
pub const MAX_SEALED_FRAME: usize =
    limits::MAX_MESSAGE_BYTES + (TAG + 1) * limits::MAX_MESSAGE_BYTES.div_ceil(CHUNK);

/// What each end sends first inside the channel: who it is, and its signature over the session.
#[derive(Serialize, Deserialize)]
struct Proof {
    key: PublicKey,
    signature: Signature,
}

/// What a member signs: the session's transcript hash, its role in it, and its own key.
fn proof_bytes(cluster: &Digest, transcript: &[u8], initiator: bool, prover: &PublicKey) -> Vec<u8> {
    let mut body = transcript.to_vec();
    body.push(initiator as u8);
    body.extend_from_slice(&prover.0);
    signing_bytes(cluster, 0, PROOF_KIND, &body)
}

fn noise_err(e: snow::Error) -> String {
    format!("secure channel: {e}")
}

/// Seals one protocol frame for the peer. Each chunk says whether it is the frame's last, so
/// a relay that rewrites the length prefix to cut a frame at a chunk boundary is caught.
pub fn seal(noise: &mut TransportState, plain: &[u8]) -> Result<Bytes, String> {
    let chunks = plain.len().div_ceil(CHUNK).max(1);
    let mut out = vec![0u8; plain.len() + (TAG + 1) * chunks];
    // Sized to the frame: most are small (votes), and a 64 KiB buffer per frame costs.
    let mut piece = Vec::with_capacity(plain.len().min(CHUNK) + 1);
    let mut written = 0;
    let mut pieces = plain.chunks(CHUNK);
    for k in 0..chunks {
        piece.clear();
        piece.push(if k + 1 == chunks { LAST } else { MORE });
        piece.extend_from_slice(pieces.next().unwrap_or(&[]));
        written += noise.write_message(&piece, &mut out[written..]).map_err(noise_err)?;
    }
    out.truncate(written);
    Ok(Bytes::from(out))
}

/// Opens one sealed frame: any frame the peer did not seal, whole and in this order, is refused.
pub fn open(noise: &mut TransportState, sealed: &[u8]) -> Result<Vec<u8>, String> {
    if sealed.is_empty() {
        return Err("secure channel: empty frame".into());
    }
    let mut plain = Vec::with_capacity(sealed.len());
    let mut piece = vec![0u8; sealed.len().min(NOISE_MAX)];
    let count = sealed.len().div_ceil(NOISE_MAX);
    for (k, message) in sealed.chunks(NOISE_MAX).enumerate() {
        let n = noise.read_message(message, &mut piece).map_err(noise_err)?;
        let expected = if k + 1 == count { LAST } else { MORE };
        if n == 0 || piece[0] != expected {
            return Err("secure channel: a frame cut or joined on the way".into());
        }
        plain.extend_from_slice(&piece[1..n]);
    }
    Ok(plain)
}

/// The handshake's prologue: a peer of another cluster fails the handshake.
pub fn prologue(cluster: &Digest) -> Vec<u8> {
    let mut prologue = b"phalanx-link/1".to_vec();
    prologue.extend_from_slice(&cluster.0);
    prologue
}

async fn next_frame<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S, LengthDelimitedCodec>,
) -> Result<bytes::BytesMut, String> {
    framed.next().await.ok_or("closed during handshake")?.map_err(|e| e.to_string())
}

/// Runs the handshake on `framed` and returns the session with the peer's member id in our
/// directory. Frames stay small until it succeeds (the caller caps them).
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S, LengthDelimitedCodec>,
    me: &Identity,
    initiator: bool,
) -> Result<(TransportState, ReplicaId), String> {
    let prologue = prologue(&me.cluster);
    let params = PATTERN.parse().map_err(noise_err)?;
    let builder = snow::Builder::new(params).prologue(&prologue).map_err(noise_err)?;
    let mut hs =
        if initiator { builder.build_initiator() } else { builder.build_responder() }.map_err(noise_err)?;
    let mut buf = [0u8; 128];
    // -> e, then <- e, ee. A peer of another cluster (another prologue) fails the second message.
    for step in 0..2 {
        if (step == 0) == initiator {
            let n = hs.write_message(&[], &mut buf).map_err(noise_err)?;
            framed.send(Bytes::copy_from_slice(&buf[..n])).await.map_err(|e| e.to_string())?;
        } else {
            let frame = next_frame(framed).await?;
            hs.read_message(&frame, &mut buf)
                .map_err(|e| format!("{} (another cluster, or not a Phalanx replica)", noise_err(e)))?;
        }
    }
    let transcript = hs.get_handshake_hash().to_vec();
    let mut noise = hs.into_transport_mode().map_err(noise_err)?;
    let mine = me.key.public();
    let proof =
        Proof { key: mine, signature: me.key.sign(&proof_bytes(&me.cluster, &transcript, initiator, &mine)) };
    framed.send(seal(&mut noise, &wire::to_bytes(&proof))?).await.map_err(|e| e.to_string())?;
    let frame = next_frame(framed).await?;
    let theirs: Proof =
        wire::decode_value(&open(&mut noise, &frame)?).map_err(|e| format!("bad channel proof: {e}"))?;
    if theirs.key == mine {
        return Err("peer claims to be this node".into());
    }
    let Some(peer) = me.directory.read().ok().and_then(|d| d.id_of(&theirs.key)) else {
        return Err(format!("peer key {} is not an agent of this cluster (yet)", &theirs.key.to_hex()[..16]));
    };
    if !verify_one(
        &theirs.key,
        &proof_bytes(&me.cluster, &transcript, !initiator, &theirs.key),
        &theirs.signature,
    ) {
        return Err(format!("peer does not hold the key of member {peer} for this session"));
    }
    Ok((noise, peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (TransportState, TransportState) {
        let params: snow::params::NoiseParams = PATTERN.parse().unwrap();
        let mut a = snow::Builder::new(params.clone()).build_initiator().unwrap();
        let mut b = snow::Builder::new(params).build_responder().unwrap();
        let (mut m, mut p) = ([0u8; 128], [0u8; 128]);
        let n = a.write_message(&[], &mut m).unwrap();
        b.read_message(&m[..n], &mut p).unwrap();
        let n = b.write_message(&[], &mut m).unwrap();
        a.read_message(&m[..n], &mut p).unwrap();
        (a.into_transport_mode().unwrap(), b.into_transport_mode().unwrap())
    }

    #[test]
    fn frames_of_every_size_up_to_the_wire_limit_round_trip() {
        let (mut a, mut b) = pair();
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, limits::MAX_MESSAGE_BYTES] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = seal(&mut a, &plain).unwrap();
            assert!(sealed.len() <= MAX_SEALED_FRAME);
            assert_eq!(open(&mut b, &sealed).unwrap(), plain, "length {len}");
        }
    }

    #[test]
    fn a_flipped_bit_a_replay_or_a_dropped_frame_is_refused() {
        let (mut a, mut b) = pair();
        let first = seal(&mut a, b"first").unwrap();
        let mut flipped = first.to_vec();
        flipped[2] ^= 1;
        assert!(open(&mut b, &flipped).is_err());
        // A dropped frame: the next one is out of order.
        let (mut a, mut b) = pair();
        let _lost = seal(&mut a, b"first").unwrap();
        let later = seal(&mut a, b"second").unwrap();
        assert!(open(&mut b, &later).is_err());
        // Frames too short to hold a tag, or cut anywhere, are refused (and nothing panics).
        let (mut a, mut b) = pair();
        let whole = seal(&mut a, &vec![7u8; 3 * CHUNK]).unwrap();
        for len in [0, 1, 15, 16, 17, NOISE_MAX - 1, NOISE_MAX, NOISE_MAX + 3, whole.len() - 1] {
            assert!(open(&mut b, &whole[..len]).is_err(), "a frame cut at {len} bytes was opened");
        }
        // A replay.
        let (mut a, mut b) = pair();
        let once = seal(&mut a, b"once").unwrap();
        assert_eq!(open(&mut b, &once).unwrap(), b"once");
        assert!(open(&mut b, &once).is_err());
    }
}
