use super::*;
use crate::wire::{ClientRequest, Operation, RequestBody};
use phalanx_crypto::Keypair;

fn setup() -> (AppState, Keypair, Keypair, Digest) {
    let alice = Keypair::from_seed([1; 32]);
    let bob = Keypair::from_seed([2; 32]);
    let genesis = Genesis {
        accounts: vec![
            GenesisAccount { name: "alice".into(), owner: alice.public(), balance: 100 },
            GenesisAccount { name: "bob".into(), owner: bob.public(), balance: 50 },
        ],
        ..Default::default()
    };
    (
        AppState::from_genesis(
            &genesis,
            digest(b"test-cluster"),
            &crate::consensus::Epoch::genesis(Vec::new(), 0),
            100,
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
    let total = s.total_balance();
    assert_eq!(
        s.execute(1, &transfer(&alice, 1, "alice", "bob", 30, &c)),
        Execution::Executed(Outcome::Applied)
    );
    assert_eq!(s.accounts["alice"].balance, 70);
    assert_eq!(s.accounts["bob"].balance, 80);
    let over = transfer(&alice, 2, "alice", "bob", 71, &c);
    assert_eq!(s.execute(2, &over), Execution::Executed(Outcome::Rejected(RejectReason::Overdraft)));
    let stolen = transfer(&bob, 1, "alice", "bob", 1, &c);
    assert_eq!(s.execute(3, &stolen), Execution::Executed(Outcome::Rejected(RejectReason::BadSignature)));
    let unknown = transfer(&alice, 3, "alice", "carol", 1, &c);
    assert_eq!(s.execute(4, &unknown), Execution::Executed(Outcome::Rejected(RejectReason::UnknownAccount)));
    let zero = transfer(&alice, 4, "alice", "bob", 0, &c);
    assert_eq!(s.execute(5, &zero), Execution::Executed(Outcome::Rejected(RejectReason::InvalidAmount)));
    assert_eq!(s.total_balance(), total);
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
    assert_eq!(s.accounts["alice"].balance, 90);
    // A different operation under the same nonce is a double-spend attempt.
    let double = transfer(&alice, 5, "alice", "bob", 20, &c);
    assert_eq!(s.execute(3, &double), Execution::Executed(Outcome::Rejected(RejectReason::ReusedNonce)));
    assert_eq!(s.accounts["alice"].balance, 90);
    let old = transfer(&alice, 4, "alice", "bob", 1, &c);
    assert_eq!(s.execute(4, &old), Execution::Stale);
}

#[test]
fn snapshot_round_trip_and_digest_is_deterministic() {
    let (mut s, alice, _, c) = setup();
    s.execute(1, &transfer(&alice, 1, "alice", "bob", 1, &c));
    let restored = AppState::restore(&s.snapshot()).unwrap();
    assert_eq!(restored, s);
    assert_eq!(restored.digest(), s.digest());
    assert!(AppState::restore(&[0xff, 0xff, 0xff]).is_err());
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
    assert_eq!(s.total_balance(), 150);
    assert_ne!(s.digest(), before, "the opaque counter is part of the state");
    assert_eq!(
        s.execute(3, &transfer(&alice, 7, "alice", "bob", 1, &c)),
        Execution::Executed(Outcome::Applied)
    );
}

#[test]
fn an_opaque_payload_over_64_kib_breaks_the_limits() {
    let key = Keypair::from_seed([3; 32]);
    let ok = ClientRequest::opaque(key.public(), 1, vec![0; crate::wire::limits::MAX_OPAQUE_BYTES]);
    let big = ClientRequest::opaque(key.public(), 2, vec![0; crate::wire::limits::MAX_OPAQUE_BYTES + 1]);
    assert!(crate::wire::check_limits(&crate::wire::Message::Request(ok)).is_ok());
    let err = crate::wire::check_limits(&crate::wire::Message::Request(big)).unwrap_err();
    assert!(err.to_string().contains("opaque payload larger than 64 KiB"), "{err}");
}
