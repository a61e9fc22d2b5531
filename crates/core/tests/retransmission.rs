//! Under overload every request waits and every slot stays undecided for a while. A replica
//! must not answer that with retransmissions, which multiply the load that delays them: it
//! relays a request to every replica only when execution stalls or the primary passed the
//! request over (and to the primary alone after a whole timeout), and resends its votes only
//! when execution stalls.

mod common;

use common::*;
use phalanx_app::Replica;
use phalanx_core::consensus::{Effect, Input, Timer};
use phalanx_core::wire::{Batch, ClientRequest, Message, Operation, Phase, RequestBody};

/// Far from the clock's zero, so no wait is cut short by it.
const T0: u64 = 1_000_000;

fn arrive(r: &mut Replica, now: u64, req: &ClientRequest) {
    r.handle(now, Input::Message(Message::Request(req.clone())));
}

/// (client's first key byte, nonce) of the requests relayed to every replica.
fn relayed(effects: &[Effect]) -> Vec<(u8, u64)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Broadcast(Message::Request(r)) => Some((r.body.client.0[0], r.body.nonce)),
            _ => None,
        })
        .collect()
}

fn batch_at(now: u64, reqs: Vec<ClientRequest>) -> Batch {
    Batch { timestamp_ms: now, requests: reqs.into() }
}

/// A request of a second client (member 0's key signing as a client).
fn other_client(fx: &Fixture, nonce: u64) -> ClientRequest {
    let op = Operation::Transfer { from: "bob".into(), to: "alice".into(), amount: 0 };
    ClientRequest::sign(RequestBody { client: fx.keys[0].public(), nonce, op }, &fx.keys[0], fx.cluster())
}

/// Backup 2 with alice's nonces 1 and 2 arrived at T0 and nonce 1 executed at `executed_at`:
/// nonce 2 waits. Returns alice's key byte, as `relayed` reports it.
fn one_waiting(fx: &Fixture, executed_at: u64) -> (Replica, u8) {
    let mut r = fx.replica(2);
    let (a1, a2) = (fx.request(1, 1), fx.request(2, 1));
    arrive(&mut r, T0, &a1);
    arrive(&mut r, T0, &a2);
    assert_eq!(executed(&commit_slot_at(fx, &mut r, executed_at, 1, &batch_at(T0, vec![a1]), true)), vec![1]);
    (r, fx.client.public().0[0])
}

#[test]
fn a_request_queued_behind_progress_is_not_relayed_one_passed_over_is() {
    let fx = Fixture::new(4);
    let (mut r, alice) = one_waiting(&fx, T0 + 300);
    let b1 = other_client(&fx, 1);
    // a2 waited 600 ms, but only behind older requests while execution went on.
    assert_eq!(relayed(&r.handle(T0 + 600, Input::Timeout(Timer::Request))), vec![]);
    // Then the primary orders b1, which arrived 700 ms after a2: a2 was passed over.
    arrive(&mut r, T0 + 700, &b1);
    assert_eq!(
        executed(&commit_slot_at(&fx, &mut r, T0 + 1200, 2, &batch_at(T0 + 700, vec![b1]), true)),
        vec![2]
    );
    assert_eq!(relayed(&r.handle(T0 + 1300, Input::Timeout(Timer::Request))), vec![(alice, 2)]);
}

#[test]
fn a_waiting_request_is_relayed_once_execution_stalls() {
    let fx = Fixture::new(4);
    let (mut r, alice) = one_waiting(&fx, T0 + 100);
    assert_eq!(relayed(&r.handle(T0 + 550, Input::Timeout(Timer::Request))), vec![]);
    // Nothing executed for 600 ms: the primary may never have had a2.
    assert_eq!(relayed(&r.handle(T0 + 700, Input::Timeout(Timer::Request))), vec![(alice, 2)]);
}

#[test]
fn votes_of_an_old_undecided_slot_are_resent_only_once_execution_stalls() {
    let fx = Fixture::new(4);
    let mut r = fx.replica(2);
    let (b1, b2) = (batch_at(T0, vec![fx.request(1, 1)]), batch_at(T0, vec![fx.request(2, 1)]));
    assert!(sent_vote(&r.handle(T0, Input::Message(fx.pre_prepare(0, 1, &b1))), Phase::Prepare, 1));
    assert!(sent_vote(&r.handle(T0, Input::Message(fx.pre_prepare(0, 2, &b2))), Phase::Prepare, 2));
    // Slot 1 completes late (an overloaded pipeline); slot 2 is still undecided.
    assert_eq!(executed(&commit_slot_at(&fx, &mut r, T0 + 900, 1, &b1, false)), vec![1]);
    let tick = r.handle(T0 + 1000, Input::Timeout(Timer::Resend));
    assert!(!sent_vote(&tick, Phase::Prepare, 2), "slot 2 is only queued while execution advances");
    // 600 ms without execution: slot 2 may have lost a message.
    let tick = r.handle(T0 + 1500, Input::Timeout(Timer::Resend));
    assert!(sent_vote(&tick, Phase::Prepare, 2), "a stalled slot's votes are resent");
}

/// Client requests sent to member `to` alone.
fn forwarded_to(effects: &[Effect], to: u32) -> Vec<u64> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { to: t, msg: Message::Request(r) } if *t == to => Some(r.body.nonce),
            _ => None,
        })
        .collect()
}

#[test]
fn a_request_only_a_backup_holds_reaches_the_primary_while_execution_goes_on() {
    let fx = Fixture::new(4);
    let mut r = fx.replica(2);
    let lonely = fx.request(1, 1);
    arrive(&mut r, T0, &lonely);
    // Another client's requests keep the cluster executing.
    let (b1, b2) = (other_client(&fx, 1), other_client(&fx, 2));
    arrive(&mut r, T0 + 100, &b1);
    arrive(&mut r, T0 + 100, &b2);
    assert_eq!(
        executed(&commit_slot_at(&fx, &mut r, T0 + 300, 1, &batch_at(T0 + 100, vec![b1]), true)),
        vec![1]
    );
    assert_eq!(
        executed(&commit_slot_at(&fx, &mut r, T0 + 900, 2, &batch_at(T0 + 100, vec![b2]), true)),
        vec![2]
    );
    // A whole timeout unproposed, not passed over by half a timeout, no stall: to the primary
    // alone, once.
    let tick = r.handle(T0 + 1050, Input::Timeout(Timer::Request));
    assert_eq!(relayed(&tick), vec![]);
    assert_eq!(forwarded_to(&tick, 0), vec![1]);
    assert_eq!(forwarded_to(&r.handle(T0 + 1200, Input::Timeout(Timer::Request)), 0), Vec::<u64>::new());
}
