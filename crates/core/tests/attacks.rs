//! Attacks on one honest replica by a Byzantine primary or client, one test per attack, each named
//! for it. Each fails on code without the defence.

mod common;

use common::*;
use phalanx_app::Replica;
use phalanx_core::consensus::{DirectVerifier, Effect, Input, Record, Timer, plan_new_view};
use phalanx_core::evidence::Evidence;
use phalanx_core::wire::{
    self, Batch, BatchRequest, CheckpointCert, ClientRequest, Message, NewView, Operation, Phase, PrePrepare,
    PreparedCert, RequestBody, ViewChange, limits,
};
use phalanx_crypto::{Digest, Keypair};

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

/// Every kind of request at its largest, from every client the pool admits. Cut by count alone, a
/// batch of reports went over the frame limit: the link refused it, resends failed the same way,
/// and every next primary cut the same batch (a halt for good). Batches are cut by bytes too, so
/// every message the primary emits fits the wire.
#[test]
fn oversize_a_pool_of_the_largest_requests_never_yields_a_message_over_the_wire_limit() {
    let mut fx = Fixture::new(4);
    fx.config.genesis.testing = true; // opaque payloads too
    fx.config.params.batch_size = limits::MAX_BATCH_REQUESTS;
    fx.config.params.batch_delay_ms = 1_000;
    let mut primary = fx.replica(0);
    let signers: Vec<Keypair> = fx.keys.iter().chain([&fx.client]).cloned().collect();
    let mut offered = 0;
    let mut out = Vec::new();
    for (c, key) in signers.iter().enumerate() {
        for nonce in 1..=16u64 {
            let op = match nonce % 4 {
                0 => Operation::MemoryStore {
                    namespace: "n".repeat(limits::MAX_MEMORY_NAMESPACE),
                    key: format!("{nonce}-{}", "k".repeat(200)),
                    value: "v".repeat(limits::MAX_MEMORY_VALUE),
                    ttl_ms: None,
                },
                1 => Operation::Opaque(vec![c as u8; limits::MAX_OPAQUE_BYTES]),
                _ => Operation::Report(vec![nonce as u8; limits::MAX_REPORT_BYTES]),
            };
            let body = RequestBody { client: key.public(), nonce, op };
            let req = match body.op {
                Operation::Opaque(ref p) => ClientRequest::opaque(key.public(), nonce, p.clone()),
                _ => ClientRequest::sign(body, key, fx.cluster()),
            };
            offered += 1;
            out.extend(feed(&mut primary, Message::Request(req)));
        }
    }
    out.extend(primary.handle(0, Input::Timeout(Timer::Batch)));
    let messages = sent(&out);
    let mut proposed = 0;
    let mut largest = 0;
    for m in &messages {
        let bytes = wire::encode(m).len();
        assert!(bytes <= limits::MAX_MESSAGE_BYTES, "a {} of {bytes} bytes", m.name());
        if let Message::PrePrepare(_, b) = m {
            proposed += b.requests.len();
            largest = largest.max(b.requests.len());
        }
    }
    assert!(largest > 1, "batches still group requests");
    assert_eq!(proposed, offered, "every request was proposed");
    // A commit certificate carries the batch and up to MAX_MEMBERS commits: it fits too.
    let commit = fx.vote(0, Phase::Commit, u64::MAX, u64::MAX, Digest([0xff; 32]));
    let commit_bytes = wire::encode(&commit).len();
    assert!(limits::MAX_BATCH_BYTES + limits::MAX_MEMBERS * commit_bytes + 64 <= limits::MAX_MESSAGE_BYTES);
}

/// A backup that holds a request and is shown a proposal of it with `timestamp_ms`, at `now`.
fn prepares_at(fx: &Fixture, now: u64, timestamp_ms: u64) -> bool {
    let mut backup = fx.replica(1);
    let req = fx.request(1, 5);
    backup.handle(now, Input::Message(Message::Request(req.clone())));
    let batch = Batch { timestamp_ms, requests: vec![req].into() };
    let out = backup.handle(now, Input::Message(fx.pre_prepare(0, 1, &batch)));
    sent_vote(&out, Phase::Prepare, 1)
}

/// A primary that stamps its batches with time 0 forever freezes the replicated clock (no
/// quarantine expires, no memory entry lapses, no federated deadline passes); one that stamps
/// them far ahead jumps it. Backups prepare only batches stamped within the skew bound of their
/// own clock, either way, and such a primary's requests time out into a view change.
#[test]
fn clock_skew_a_primary_can_neither_freeze_nor_jump_the_replicated_clock() {
    let fx = Fixture::new(4);
    let skew = fx.config.params.max_clock_skew_ms;
    let now = 3_600_000;
    assert!(prepares_at(&fx, now, now), "an honest timestamp");
    assert!(prepares_at(&fx, now, now - skew), "a proposal that waited up to the bound");
    assert!(!prepares_at(&fx, now, 0), "a frozen clock");
    assert!(!prepares_at(&fx, now, now - skew - 1), "just past the bound, behind");
    assert!(!prepares_at(&fx, now, now + skew + 1), "just past the bound, ahead");

    // The frozen primary's request is still waiting: the backup suspects it.
    let mut backup = fx.replica(1);
    let req = fx.request(1, 5);
    backup.handle(now, Input::Message(Message::Request(req.clone())));
    let frozen = Batch { timestamp_ms: 0, requests: vec![req].into() };
    backup.handle(now, Input::Message(fx.pre_prepare(0, 1, &frozen)));
    assert_eq!(backup.clock_refusals(), 1);
    let timeout = fx.config.params.view_change_timeout_ms;
    let mut effects = Vec::new();
    for t in 1..=4 {
        effects.extend(backup.handle(now + t * timeout / 2, Input::Timeout(Timer::Request)));
    }
    assert!(view_change_started(&effects), "the frozen primary was never suspected");
}

/// Clients that each fill their share of the pool with the largest requests cannot make an
/// honest replica hold more than the pool's byte bound (count limits alone allowed 100 GB).
#[test]
fn oversize_the_pool_is_bounded_in_bytes_not_only_in_count() {
    let fx = Fixture::new(4);
    let mut backup = fx.replica(1);
    let signers: Vec<Keypair> = fx.keys.iter().chain([&fx.client]).cloned().collect();
    for key in &signers {
        for nonce in 1..=16u64 {
            let body = RequestBody {
                client: key.public(),
                nonce,
                op: Operation::Report(vec![1; limits::MAX_REPORT_BYTES]),
            };
            feed(&mut backup, Message::Request(ClientRequest::sign(body, key, fx.cluster())));
        }
    }
    let pending = backup.status().pending_requests;
    assert!((60..64).contains(&pending), "{pending} one-megabyte requests pending (the bound is 64 MiB)");
}

fn own_report_nonces(effects: &[Effect], me: &Keypair) -> Vec<u64> {
    sent(effects)
        .iter()
        .filter_map(|m| match m {
            Message::Request(r) if r.body.client == me.public() => Some(r.body.nonce),
            _ => None,
        })
        .collect()
}

/// A member signs its reports as a client, with its own nonces. Taken from the clock alone, a
/// restart with the clock stepped back reused a nonce: two different reports under one nonce,
/// which its peers prove as a double spend against it. The last nonce is persisted.
#[test]
fn own_nonces_are_never_reused_after_a_restart_with_the_clock_stepped_back() {
    let fx = Fixture::new(4);
    let me = &fx.keys[1];
    let mut backup = fx.replica(1);
    let now = 10_000_000;
    let stamped = |r| Batch { timestamp_ms: now, requests: vec![r].into() };
    let (a, b) = (stamped(fx.request(1, 5)), stamped(fx.request(2, 6)));
    let mut out = backup.handle(now, Input::Message(fx.pre_prepare(0, 1, &a)));
    out.extend(backup.handle(now, Input::Message(fx.pre_prepare(0, 1, &b))));
    let before = own_report_nonces(&out, me);
    assert!(!before.is_empty(), "the equivocation was reported");
    let records: Vec<Record> = out
        .iter()
        .filter_map(|e| match e {
            Effect::Persist(r) => Some(r.clone()),
            _ => None,
        })
        .collect();

    // Restarted an hour earlier by its clock, it reports a client's double spend.
    let mut again =
        Replica::recover(1, me.clone(), fx.config.clone(), Box::new(DirectVerifier::new([1; 32])), &records)
            .unwrap();
    let earlier = now - 3_600_000;
    again.start(earlier);
    let mut out = again.handle(earlier, Input::Message(Message::Request(fx.request(7, 1))));
    out.extend(again.handle(earlier, Input::Message(Message::Request(fx.request(7, 2)))));
    let after = own_report_nonces(&out, me);
    assert!(!after.is_empty(), "the client's double spend was reported");
    let last = before.iter().max().unwrap();
    assert!(after.iter().all(|n| n > last), "reused nonces: before {before:?}, after {after:?}");
}

/// A NEW-VIEW for `view` from its primary, over the seq-0 checkpoint, built from `view_changes`
/// (sender, prepared certificates) as an honest primary would build it.
fn new_view(fx: &Fixture, view: u64, view_changes: Vec<(u32, Vec<PreparedCert>)>) -> Message {
    let stable = CheckpointCert { seq: 0, state: fx.replica(0).state().digest(), proofs: Vec::new() };
    let view_changes: Vec<_> = view_changes
        .into_iter()
        .map(|(from, prepared)| {
            fx.sign(from, ViewChange { epoch: 0, new_view: view, stable: stable.clone(), prepared })
        })
        .collect();
    let primary = fx.config.epoch.primary(view);
    let plan = plan_new_view(&view_changes).unwrap();
    let pre_prepares = plan
        .proposals
        .iter()
        .map(|p| fx.sign(primary, PrePrepare { epoch: 0, view, seq: p.seq, digest: p.digest }))
        .collect();
    Message::NewView(fx.sign(primary, NewView { epoch: 0, view, view_changes, pre_prepares }))
}

/// Two colluding members at n = 7. D1 leads view 0 and pre-prepares batch b at seq 1 to three
/// honest backups only; D2 sends its PREPARE to D1 alone. No honest replica prepares b, yet D1
/// holds a valid prepared certificate for it. D2 leads view 1 and its NEW-VIEW leaves seq 1 out;
/// the honest primary of view 2 must re-propose b from D1's certificate, and D1 withholds it.
/// Had the honest backups dropped b on entering view 1, nobody could serve it and seq 1 would
/// never commit. They keep what they pre-prepared until the seq is stable, and hand it over.
#[test]
fn withhold_batch_a_batch_certified_by_a_colluding_pair_is_still_served_by_honest_replicas() {
    let fx = Fixture::new(7);
    let (d1, d2, honest_primary, me) = (0, 1, 2, 3);
    let mut backup = fx.replica(me);
    let req = fx.request(1, 5);
    let b = fx.batch(vec![req.clone()]);
    feed(&mut backup, Message::Request(req));
    let out = feed(&mut backup, fx.pre_prepare(0, 1, &b));
    assert!(sent_vote(&out, Phase::Prepare, 1));

    // View 1: D2's NEW-VIEW from view changes that prepared nothing.
    let out = feed(&mut backup, new_view(&fx, 1, [d2, 2, 3, 4, 5].map(|i| (i, Vec::new())).to_vec()));
    assert_eq!(backup.view(), 1, "{:?}", sent(&out));

    // View 2: D1's view change carries its certificate (D2's PREPARE and three honest ones).
    let d = b.digest();
    let cert = PreparedCert {
        pre_prepare: fx.sign(d1, PrePrepare { epoch: 0, view: 0, seq: 1, digest: d }),
        prepares: [d2, 3, 4, 5].map(|i| fx.sign(i, fx.vote_body(Phase::Prepare, 0, 1, d))).to_vec(),
    };
    let vcs = vec![
        (d1, vec![cert]),
        (honest_primary, Vec::new()),
        (4, Vec::new()),
        (5, Vec::new()),
        (6, Vec::new()),
    ];
    let out = feed(&mut backup, new_view(&fx, 2, vcs));
    assert_eq!(backup.view(), 2);
    assert!(
        !sent(&out).iter().any(|m| matches!(m, Message::BatchRequest(_))),
        "the backup no longer held the batch it pre-prepared"
    );
    // Replica 6 never had it and asks: the backup serves it.
    let ask = fx.sign(6, BatchRequest { epoch: 0, wanted: vec![(1, d)] });
    let out = feed(&mut backup, Message::BatchRequest(ask));
    assert!(
        sent(&out).iter().any(|m| matches!(m, Message::Batch(1, got) if got.digest() == d)),
        "nobody honest can serve the certified batch"
    );
}

/// A NEW-VIEW carries a quorum of VIEW-CHANGEs with a prepared certificate per slot of the log
/// window: at large n it outgrows the frame, and a view change could then never complete.
/// Such configurations are refused with the window that would fit; the bound used is an upper
/// bound of a real worst-case NEW-VIEW.
#[test]
fn oversize_a_configuration_whose_new_view_could_exceed_the_frame_is_refused() {
    use phalanx_core::consensus::{Epoch, Member, worst_new_view_bytes};
    let mut fx = Fixture::new(4);
    assert_eq!(fx.config.validate(), Ok(()));
    let members: Vec<Member> = (0..100)
        .map(|i| Member { name: format!("a{i}"), key: Keypair::from_seed([i as u8; 32]).public() })
        .collect();
    fx.config.epoch = Epoch::genesis(members, 33);
    fx.config.params.log_window = 200;
    let err = fx.config.validate().unwrap_err().to_string();
    assert!(err.contains("lower the log window"), "{err}");

    // A real worst case at n = 4: a quorum of VIEW-CHANGEs, each certifying every slot.
    let window = 20u64;
    let stable = CheckpointCert {
        seq: u64::MAX,
        state: Digest([0xff; 32]),
        proofs: (0..3)
            .map(|i| {
                fx.sign(
                    i,
                    phalanx_core::wire::Checkpoint { epoch: u64::MAX, seq: u64::MAX, state: Digest([1; 32]) },
                )
            })
            .collect(),
    };
    let cert = |seq: u64| PreparedCert {
        pre_prepare: fx.sign(0, PrePrepare { epoch: u64::MAX, view: u64::MAX, seq, digest: Digest([2; 32]) }),
        prepares: (1..3)
            .map(|i| fx.sign(i, fx.vote_body(Phase::Prepare, u64::MAX, seq, Digest([2; 32]))))
            .collect(),
    };
    let view_changes = (0..3)
        .map(|i| {
            let prepared = (0..window).map(|k| cert(u64::MAX - k)).collect();
            fx.sign(i, ViewChange { epoch: u64::MAX, new_view: u64::MAX, stable: stable.clone(), prepared })
        })
        .collect();
    let pre_prepares = (0..window)
        .map(|k| {
            fx.sign(
                1,
                PrePrepare { epoch: u64::MAX, view: u64::MAX, seq: u64::MAX - k, digest: Digest([2; 32]) },
            )
        })
        .collect();
    let nv = fx.sign(1, NewView { epoch: u64::MAX, view: u64::MAX, view_changes, pre_prepares });
    let real = wire::encode(&Message::NewView(nv)).len();
    let bound = worst_new_view_bytes(4, 1, window);
    assert!(real <= bound && bound < real * 2, "real {real}, bound {bound}");
}

/// Reconfigurations are held to the same bound: growing the cluster until a NEW-VIEW could
/// outgrow the frame is refused, at the log window the cluster runs with.
#[test]
fn oversize_a_reconfiguration_that_would_let_a_new_view_outgrow_the_frame_is_refused() {
    use phalanx_core::consensus::{Epoch, Member};
    use phalanx_core::wire::Joiner;
    let member = |i: usize| Member { name: format!("a{i}"), key: Keypair::from_seed([i as u8; 32]).public() };
    let epoch = Epoch::genesis((0..34).map(member).collect(), 11);
    let joiners: Vec<Joiner> = (34..45)
        .map(|i| Joiner {
            name: format!("a{i}"),
            key: member(i).key,
            replica_addr: String::new(),
            http_addr: String::new(),
        })
        .collect();
    assert!(
        epoch.reconfigured(10, (100, 200), &[], &joiners, None).is_none(),
        "45 voters at a window of 200"
    );
    let smaller =
        epoch.reconfigured(10, (100, 100), &[], &joiners, None).expect("45 voters at a window of 100");
    assert_eq!(smaller.voters.len(), 45);
}
