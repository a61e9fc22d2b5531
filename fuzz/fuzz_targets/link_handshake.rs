//! A stranger dials a member and runs the link handshake with bytes of the fuzzer's choosing:
//! either raw frames where the Noise messages belong, or a real Noise session carrying a channel
//! proof the fuzzer wrote. The member's side ends in a session or an error, never a panic, and
//! never accepts anyone: nobody but the members holds their keys.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use libfuzzer_sys::fuzz_target;
use phalanx_core::wire::ReplicaId;
use phalanx_crypto::{Keypair, digest};
use phalanx_node::directory::{Agent, Directory};
use phalanx_node::transport::{Identity, authenticate_over, noise};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

#[derive(Arbitrary, Debug)]
enum Dialer {
    /// Raw frames where the handshake's messages belong.
    Raw(Vec<Vec<u8>>),
    /// A real Noise session, then a channel proof of the fuzzer's bytes.
    Proof(Vec<u8>),
}

fn member(keys: &[Keypair]) -> Identity {
    let agents = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Agent {
            name: format!("m{i}"),
            key: k.public(),
            replica_addr: None,
            http_addr: None,
            voter: true,
        })
        .collect();
    let directory = Directory { id: 0 as ReplicaId, epoch: 0, f: 0, quorum: 1, agents };
    Identity {
        key: keys[0].clone(),
        cluster: digest(b"fuzz-cluster"),
        directory: Arc::new(RwLock::new(directory)),
        views: Default::default(),
    }
}

async fn dial(stream: tokio::io::DuplexStream, dialer: Dialer) {
    let mut framed = Framed::new(stream, LengthDelimitedCodec::new());
    match dialer {
        Dialer::Raw(frames) => {
            for f in frames.into_iter().take(8) {
                if framed.send(Bytes::from(f)).await.is_err() {
                    return;
                }
            }
        }
        Dialer::Proof(proof) => {
            let params: snow::params::NoiseParams = noise::PATTERN.parse().unwrap();
            let prologue = noise::prologue(&digest(b"fuzz-cluster"));
            let mut hs = snow::Builder::new(params).prologue(&prologue).unwrap().build_initiator().unwrap();
            let mut buf = [0u8; 128];
            let n = hs.write_message(&[], &mut buf).unwrap();
            if framed.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                return;
            }
            let Some(Ok(reply)) = framed.next().await else { return };
            if hs.read_message(&reply, &mut buf).is_err() {
                return;
            }
            let mut session = hs.into_transport_mode().unwrap();
            let Ok(sealed) = noise::seal(&mut session, &proof) else { return };
            let _ = framed.send(sealed).await;
        }
    }
}

fuzz_target!(|dialer: Dialer| {
    let keys: Vec<Keypair> = (0..2u8).map(|i| Keypair::from_seed([i + 1; 32])).collect();
    let me = member(&keys);
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    rt.block_on(async {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let dialing = tokio::spawn(dial(theirs, dialer));
        let accepted =
            tokio::time::timeout(Duration::from_secs(1), authenticate_over(ours, &me, false)).await;
        assert!(!matches!(accepted, Ok(Ok(_))), "a stranger without a member's secret key was accepted");
        dialing.abort();
    });
});
