//! A replica says why it dropped each message it could not use, and counts the reasons.

mod common;

use common::{Fixture, feed};
use phalanx_core::consensus::Ignored;
use phalanx_core::wire::{Message, Phase, PrePrepare};

fn count(r: &phalanx_app::Replica, why: Ignored) -> u64 {
    r.status().ignored.get(&why).copied().unwrap_or(0)
}

#[test]
fn each_dropped_message_is_counted_under_its_reason() {
    let fx = Fixture::new(4);
    let mut r = fx.replica(1);
    let batch = fx.batch(vec![fx.request(1, 5)]);
    let d = batch.digest();
    assert!(r.status().ignored.is_empty(), "nothing dropped yet");

    // A PRE-PREPARE for view 0 signed by member 2, who is not its primary.
    let pp = fx.sign(2, PrePrepare { epoch: 0, view: 0, seq: 1, digest: d });
    feed(&mut r, Message::PrePrepare(pp, batch.clone()));
    assert_eq!(count(&r, Ignored::WrongSender), 1);

    // The primary's PRE-PREPARE with a batch that does not hash to its digest.
    let other = fx.batch(vec![fx.request(1, 6)]);
    let pp = fx.sign(0, PrePrepare { epoch: 0, view: 0, seq: 1, digest: d });
    feed(&mut r, Message::PrePrepare(pp, other));
    assert_eq!(count(&r, Ignored::DigestMismatch), 1);

    // A PREPARE whose signature was made with another member's key.
    let mut forged = fx.sign(3, fx.vote_body(Phase::Prepare, 0, 1, d));
    forged.from = 2;
    feed(&mut r, Message::Vote(forged));
    assert_eq!(count(&r, Ignored::BadSignature), 1);

    // A vote signed for an epoch the replica is not in.
    let mut body = fx.vote_body(Phase::Prepare, 0, 1, d);
    body.epoch = 7;
    feed(&mut r, Message::Vote(fx.sign(2, body)));
    assert_eq!(count(&r, Ignored::OtherEpoch), 1);

    // The primary's PREPARE: its PRE-PREPARE is its prepare.
    feed(&mut r, fx.vote(0, Phase::Prepare, 0, 1, d));
    assert_eq!(count(&r, Ignored::WrongSender), 2);

    // A request that was never signed by its client.
    let mut unsigned = fx.request(1, 5);
    unsigned.sig = fx.request(2, 5).sig;
    feed(&mut r, Message::Request(unsigned));
    assert_eq!(count(&r, Ignored::BadSignature), 2);

    // The same request twice: the second is already pending.
    feed(&mut r, Message::Request(fx.request(3, 5)));
    feed(&mut r, Message::Request(fx.request(3, 5)));
    assert_eq!(count(&r, Ignored::Duplicate), 1);

    // Nothing was dropped without a reason being counted, and nothing counted twice.
    let total: u64 = r.status().ignored.values().sum();
    assert_eq!(total, 7, "{:?}", r.status().ignored);
}

#[test]
fn reasons_have_stable_names() {
    // Operators read these in `phalanx status` and will graph them: names must not drift.
    assert_eq!(Ignored::BadSignature.to_string(), "bad-signature");
    assert_eq!(Ignored::InvalidCertificate.as_str(), "invalid-certificate");
    assert_eq!(Ignored::TooFarAhead.to_string(), "too-far-ahead");
}
