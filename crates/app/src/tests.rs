//! The application executed through consensus's state: client table, ledger and memory together.

use super::*;
use phalanx_core::state::Execution;
use phalanx_core::wire::{self, ClientRequest, Operation, Outcome, RequestBody};
use phalanx_crypto::{Digest, Keypair, digest};

fn setup() -> (State, Keypair, Keypair, Digest) {
    let alice = Keypair::from_seed([1; 32]);
    let bob = Keypair::from_seed([2; 32]);
    let genesis = Genesis {
        accounts: vec![
            GenesisAccount { name: "alice".into(), owner: alice.public(), balance: 100 },
            GenesisAccount { name: "bob".into(), owner: bob.public(), balance: 50 },
        ],
    };
    (
        State::from_genesis(
            &Default::default(),
            &genesis,
            digest(b"test-cluster"),
            &phalanx_core::consensus::Epoch::genesis(Vec::new(), 0),
            (100, 200),
        ),
        alice,
        bob,
        digest(b"test-cluster"),
    )
}

fn transfer(key: &Keypair, nonce: u64, from: &str, to: &str, amount: u64, c: &Digest) -> ClientRequest {
    let op = Operation::Transfer { from: from.into(), to: to.into(), amount };
    ClientRequest::sign(RequestBody { client: key.public(), nonce, op }, key, c)
}

#[test]
fn transfers_apply_and_rejections_have_reasons() {
    let (mut s, alice, bob, c) = setup();
    let total = s.app.total_balance();
    assert_eq!(
        s.execute(1, &transfer(&alice, 1, "alice", "bob", 30, &c)),
        Execution::Executed(Outcome::Applied)
    );
    assert_eq!(s.app.accounts["alice"].balance, 70);
    assert_eq!(s.app.accounts["bob"].balance, 80);
    let over = transfer(&alice, 2, "alice", "bob", 71, &c);
    assert_eq!(s.execute(2, &over), Execution::Executed(Outcome::Rejected(RejectReason::Overdraft)));
    let stolen = transfer(&bob, 1, "alice", "bob", 1, &c);
    assert_eq!(s.execute(3, &stolen), Execution::Executed(Outcome::Rejected(RejectReason::BadSignature)));
    let unknown = transfer(&alice, 3, "alice", "carol", 1, &c);
    assert_eq!(s.execute(4, &unknown), Execution::Executed(Outcome::Rejected(RejectReason::UnknownAccount)));
    let zero = transfer(&alice, 4, "alice", "bob", 0, &c);
    assert_eq!(s.execute(5, &zero), Execution::Executed(Outcome::Rejected(RejectReason::InvalidAmount)));
    assert_eq!(s.app.total_balance(), total);
    assert_eq!(s.counters.applied, 1);
    assert_eq!(s.counters.rejected_total(), 4);
}

#[test]
fn nonce_reuse_duplicate_and_stale() {
    let (mut s, alice, _, c) = setup();
    let t = transfer(&alice, 5, "alice", "bob", 10, &c);
    assert_eq!(s.execute(1, &t), Execution::Executed(Outcome::Applied));
    // The very same operation again is answered from the client table, not re-executed.
    assert_eq!(s.execute(2, &t), Execution::Duplicate(Outcome::Applied));
    assert_eq!(s.app.accounts["alice"].balance, 90);
    // A different operation under the same nonce is a double-spend attempt.
    let double = transfer(&alice, 5, "alice", "bob", 20, &c);
    assert_eq!(s.execute(3, &double), Execution::Executed(Outcome::Rejected(RejectReason::ReusedNonce)));
    assert_eq!(s.app.accounts["alice"].balance, 90);
    let old = transfer(&alice, 4, "alice", "bob", 1, &c);
    assert_eq!(s.execute(4, &old), Execution::Stale);
}

#[test]
fn snapshot_round_trip_and_digest_is_deterministic() {
    let (mut s, alice, _, c) = setup();
    s.execute(1, &transfer(&alice, 1, "alice", "bob", 1, &c));
    let restored = State::restore(&s.snapshot()).unwrap();
    assert_eq!(restored, s);
    assert_eq!(restored.digest(), s.digest());
    assert!(State::restore(&[0xff, 0xff, 0xff]).is_err());
}

#[test]
fn opaque_payloads_are_acknowledged_only_in_a_testing_cluster_and_leave_no_trace() {
    let (mut s, alice, _, c) = setup();
    let before = s.digest();
    let opaque = ClientRequest::opaque(alice.public(), 7, vec![9; 512]);
    assert!(opaque.verify_item(&c).is_none(), "an opaque payload carries no signature to check");
    // A production cluster refuses it as unauthorized, without remembering the client.
    assert_eq!(s.execute(1, &opaque), Execution::Executed(Outcome::Rejected(RejectReason::Unauthorized)));
    assert_eq!(s.last_nonce(&alice.public()), None);

    s.accountability.testing = true;
    assert_eq!(s.execute(2, &opaque), Execution::Executed(Outcome::Applied));
    assert_eq!(s.counters.opaque, 1);
    // Nothing else changed: no client record, no balance, the nonce stays free for a transfer.
    assert_eq!(s.last_nonce(&alice.public()), None);
    assert_eq!(s.app.total_balance(), 150);
    assert_ne!(s.digest(), before, "the opaque counter is part of the state");
    assert_eq!(
        s.execute(3, &transfer(&alice, 7, "alice", "bob", 1, &c)),
        Execution::Executed(Outcome::Applied)
    );
}

#[test]
fn an_opaque_payload_over_64_kib_breaks_the_limits() {
    let key = Keypair::from_seed([3; 32]);
    let ok = ClientRequest::opaque(key.public(), 1, vec![0; wire::limits::MAX_OPAQUE_BYTES]);
    let big = ClientRequest::opaque(key.public(), 2, vec![0; wire::limits::MAX_OPAQUE_BYTES + 1]);
    assert!(wire::check_limits(&wire::Message::Request(ok)).is_ok());
    let err = wire::check_limits(&wire::Message::Request(big)).unwrap_err();
    assert!(err.to_string().contains("opaque payload larger than 64 KiB"), "{err}");
}

fn store(key: &Keypair, nonce: u64, ns: &str, k: &str, value: &str, c: &Digest) -> ClientRequest {
    let op =
        Operation::MemoryStore { namespace: ns.into(), key: k.into(), value: value.into(), ttl_ms: None };
    ClientRequest::sign(RequestBody { client: key.public(), nonce, op }, key, c)
}

fn outcome(e: Execution) -> Outcome {
    match e {
        Execution::Executed(o) | Execution::Duplicate(o) => o,
        Execution::Stale => panic!("stale"),
    }
}

/// Any client could overwrite any key and fill the whole store. A key belongs to its writer
/// unless the operator shared its namespace, each client has a quota, and a snapshot restored
/// elsewhere enforces the same (usage is rebuilt, not trusted).
#[test]
fn memory_keys_have_owners_and_clients_have_quotas() {
    let (mut s, alice, bob, c) = setup();
    let operator = Keypair::from_seed([9; 32]);
    s.accountability.operator = Some(operator.public());
    let applied = Outcome::Applied;
    assert_eq!(outcome(s.execute(1, &store(&alice, 1, "plans", "q3", "alice's plan", &c))), applied);
    // Bob cannot overwrite Alice's key; Alice can.
    let theft = outcome(s.execute(2, &store(&bob, 1, "plans", "q3", "bob's plan", &c)));
    assert_eq!(theft, Outcome::Rejected(RejectReason::NotOwner));
    assert_eq!(s.app.memory_get("plans", "q3").unwrap().value, "alice's plan");
    assert_eq!(outcome(s.execute(3, &store(&alice, 2, "plans", "q3", "revised", &c))), applied);

    // Only the operator shares a namespace; then anyone writes its keys.
    let share = |key: &Keypair, nonce| {
        let op = Operation::Operator(wire::OperatorAction::ShareNamespace { namespace: "board".into() });
        ClientRequest::sign(RequestBody { client: key.public(), nonce, op }, key, &c)
    };
    assert_eq!(outcome(s.execute(4, &store(&alice, 3, "board", "topic", "a", &c))), applied);
    assert_eq!(outcome(s.execute(5, &share(&bob, 2))), Outcome::Rejected(RejectReason::Unauthorized));
    assert_eq!(outcome(s.execute(6, &share(&operator, 1))), applied);
    assert_eq!(outcome(s.execute(7, &store(&bob, 3, "board", "topic", "b", &c))), applied);
    assert_eq!(s.app.memory_get("board", "topic").unwrap().writer, bob.public());

    // Bob fills his share; the store keeps room for everyone else.
    let big = "x".repeat(wire::limits::MAX_MEMORY_VALUE);
    let mut nonce = 4;
    let mut refused = None;
    for i in 0..64 {
        nonce += 1;
        match outcome(s.execute(10 + i, &store(&bob, nonce, "bob", &format!("k{i}"), &big, &c))) {
            Outcome::Applied => {}
            other => {
                refused = Some(other);
                break;
            }
        }
    }
    assert_eq!(refused, Some(Outcome::Rejected(RejectReason::MemoryQuota)));
    assert!(s.app.memory_bytes <= wire::limits::MAX_MEMORY_TOTAL / 8, "{} bytes", s.app.memory_bytes);
    assert_eq!(outcome(s.execute(100, &store(&alice, 4, "plans", "q4", &big, &c))), applied);

    // A restored snapshot charges the same usage.
    let mut restored = State::restore(&s.snapshot()).unwrap();
    assert_eq!(restored.digest(), s.digest());
    nonce += 1;
    let again = outcome(restored.execute(101, &store(&bob, nonce, "bob", "one-more", &big, &c)));
    assert_eq!(again, Outcome::Rejected(RejectReason::MemoryQuota));
}
