//! Attacks on one honest replica by a Byzantine primary or client, one test per attack, each named
//! for it. Each fails on code without the defence.

mod common;

use common::*;
use phalanx_core::consensus::Effect;
use phalanx_core::evidence::Evidence;
use phalanx_core::wire::{ClientRequest, Message, Phase};

fn evidence(effects: &[Effect]) -> Vec<Evidence> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Evidence(ev) => Some(ev.clone()),
            _ => None,
        })
        .collect()
}

fn view_change_started(effects: &[Effect]) -> bool {
    sent(effects).iter().any(|m| matches!(m, Message::ViewChange(_)))
}

/// A primary proposes an unsigned opaque payload under an honest client's (client, nonce) in a
/// cluster that orders none. Executed, it would be rejected, and the honest request under that
/// nonce would leave every pool with it: censorship no timer notices. A backup refuses the
/// proposal with evidence that every replica can check, and keeps the honest request.
#[test]
fn opaque_censor_a_primary_proposing_an_opaque_payload_under_a_clients_nonce_is_caught() {
    let fx = Fixture::new(4);
    let mut backup = fx.replica(1);
    feed(&mut backup, Message::Request(fx.request(1, 5)));
    assert_eq!(backup.status().pending_requests, 1);

    let forged = ClientRequest::opaque(fx.client.public(), 1, b"censor".to_vec());
    let out = feed(&mut backup, fx.pre_prepare(0, 1, &fx.batch(vec![forged])));
    assert!(!sent_vote(&out, Phase::Prepare, 1), "a backup prepared an opaque payload");
    let ev = evidence(&out);
    assert!(matches!(ev.as_slice(), [Evidence::InvalidProposal(..)]), "{ev:?}");
    let keys = fx.config.epoch.keys();
    assert_eq!(ev[0].verify(fx.cluster(), &keys, false), Ok(()), "the evidence convinces every replica");
    assert!(ev[0].verify(fx.cluster(), &keys, true).is_err(), "in a cluster that orders opaque it would not");
    assert!(view_change_started(&out), "the censoring primary is replaced");
    // Pending: the honest request, and the backup's own report of the evidence.
    assert_eq!(backup.status().pending_requests, 2, "the honest request was dropped");
}

/// Where opaque payloads are legitimate (a testing cluster), executing one under an honest
/// client's (client, nonce) must not take that client's signed request out of the pool.
#[test]
fn opaque_censor_an_executed_payload_removes_only_itself_from_the_pool() {
    let mut fx = Fixture::new(4);
    fx.config.genesis.testing = true;
    let mut backup = fx.replica(1);
    feed(&mut backup, Message::Request(fx.request(1, 5)));
    let forged = ClientRequest::opaque(fx.client.public(), 1, b"same nonce".to_vec());
    let out = commit_slot(&fx, &mut backup, 1, &fx.batch(vec![forged]));
    assert_eq!(executed(&out), vec![1]);
    assert_eq!(backup.status().pending_requests, 1, "the honest request left the pool with the payload");
}
