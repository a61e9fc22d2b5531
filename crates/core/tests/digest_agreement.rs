//! Each member's latest signed checkpoint, compared with this replica's own state at that seq:
//! what `phalanx_checkpoint_digest_agrees` and the dashboard report.

mod common;

use common::{Fixture, commit_slot, feed};
use phalanx_core::consensus::{DigestAgreement, Effect};
use phalanx_crypto::digest;

fn of(r: &phalanx_app::Replica, member: u32) -> Option<DigestAgreement> {
    r.digest_agreement().into_iter().find(|a| a.member == member)
}

#[test]
fn a_member_whose_checkpoint_differs_from_our_state_is_reported_and_agreeing_ones_are_not() {
    let fx = Fixture::new(4);
    let k = fx.config.params.checkpoint_interval;
    let mut r = fx.replica(1);
    assert!(r.digest_agreement().is_empty(), "no checkpoint signed yet");
    let mut state = None;
    for seq in 1..=k {
        for e in commit_slot(&fx, &mut r, seq, &fx.batch(vec![fx.request(seq, 1)])) {
            if let Effect::Checkpoint { state: s, .. } = e {
                state = Some(s);
            }
        }
    }
    let state = state.expect("a checkpoint at seq K");
    assert_eq!(of(&r, 1), Some(DigestAgreement { member: 1, seq: k, agrees: Some(true) }), "its own");

    feed(&mut r, fx.checkpoint(0, k, state));
    feed(&mut r, fx.checkpoint(3, k, digest(b"a diverged state")));
    // A checkpoint above what this replica executed: nothing to compare with yet.
    feed(&mut r, fx.checkpoint(2, 2 * k, digest(b"later")));
    assert_eq!(of(&r, 0).and_then(|a| a.agrees), Some(true));
    assert_eq!(of(&r, 3).and_then(|a| a.agrees), Some(false));
    assert_eq!(of(&r, 2), Some(DigestAgreement { member: 2, seq: 2 * k, agrees: None }));

    // An older checkpoint does not replace a member's latest, and a forged one is not counted.
    feed(&mut r, fx.checkpoint(2, k, state));
    assert_eq!(of(&r, 2).map(|a| a.seq), Some(2 * k));
    let mut forged = match fx.checkpoint(0, k, digest(b"x")) {
        phalanx_core::wire::Message::Checkpoint(c) => c,
        _ => unreachable!(),
    };
    forged.from = 3;
    feed(&mut r, phalanx_core::wire::Message::Checkpoint(forged));
    assert_eq!(of(&r, 3).and_then(|a| a.agrees), Some(false));
    // The checkpoint became stable (0, 1 and 2 agree); the comparison still holds there.
    assert_eq!(r.stable_seq(), k);
    assert_eq!(of(&r, 0).and_then(|a| a.agrees), Some(true));
}
