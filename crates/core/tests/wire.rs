//! Decoding untrusted bytes is total: any input yields a message or an error, never a panic.

mod common;

use common::Fixture;
use phalanx_core::wire::{Batch, Message, Phase, WireError, decode, encode, limits};
use proptest::prelude::*;

fn samples() -> Vec<Message> {
    let fx = Fixture::new(4);
    let batch = fx.batch(vec![fx.request(1, 5), fx.request(2, 6)]);
    vec![
        Message::Request(fx.request(1, 5)),
        fx.pre_prepare(0, 1, &batch),
        fx.vote(1, Phase::Prepare, 0, 1, batch.digest()),
        fx.vote(2, Phase::Commit, 0, 1, batch.digest()),
        fx.checkpoint(3, 10, batch.digest()),
    ]
}

#[test]
fn every_message_round_trips() {
    for m in samples() {
        assert_eq!(decode(&encode(&m)).unwrap(), m);
    }
}

#[test]
fn oversized_and_trailing_input_is_refused() {
    let big = vec![0u8; limits::MAX_MESSAGE_BYTES + 1];
    assert_eq!(decode(&big), Err(WireError::TooLarge(big.len())));
    let mut bytes = encode(&samples()[0]);
    bytes.push(0);
    assert_eq!(decode(&bytes), Err(WireError::TrailingBytes(1)));
    assert!(matches!(decode(&[]), Err(WireError::Malformed(_))));
}

#[test]
fn batches_above_the_limit_are_refused() {
    let fx = Fixture::new(4);
    let req = fx.request(1, 1);
    let batch = Batch { timestamp_ms: 0, requests: vec![req; limits::MAX_BATCH_REQUESTS + 1].into() };
    let m = fx.pre_prepare(0, 1, &batch);
    assert!(matches!(decode(&encode(&m)), Err(WireError::Limit(_))));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(idx in 0usize..5, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let mut bytes = encode(&samples()[idx]);
        for (pos, val) in flips {
            let i = pos % bytes.len();
            bytes[i] ^= val;
        }
        let _ = decode(&bytes);
        let _ = decode(&bytes[..cut % (bytes.len() + 1)]);
    }
}

#[test]
fn batch_digest_commits_to_every_request_and_their_order() {
    let fx = Fixture::new(4);
    let (a, b) = (fx.request(1, 5), fx.request(2, 6));
    let batch = fx.batch(vec![a.clone(), b.clone()]);
    let (op, d) = a.digests();
    assert_eq!((op, d), (a.op_digest(), a.digest()));
    assert_eq!(batch.digest(), Batch::digest_over(0, &[a.digest(), b.digest()]));
    assert_ne!(batch.digest(), fx.batch(vec![b.clone(), a.clone()]).digest(), "order");
    assert_ne!(batch.digest(), fx.batch(vec![a.clone()]).digest(), "a request left out");
    assert_ne!(batch.digest(), Batch::digest_over(1, &[a.digest(), b.digest()]), "timestamp");
    // Another encoding of the same signature is another request, with the same operation.
    let mut c = a.clone();
    c.sig.s[31] ^= 0x80;
    assert_eq!(c.op_digest(), a.op_digest());
    assert_ne!(c.digest(), a.digest());
    assert_ne!(fx.batch(vec![c, b]).digest(), batch.digest());
}
