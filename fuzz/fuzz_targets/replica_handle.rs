//! One replica (a backup of a four-member cluster) fed a sequence of inputs chosen by the fuzzer:
//! votes, proposals, checkpoints and view changes signed by any member's real key, client
//! requests, timeouts, raw bytes off the wire, and time passing. After every input the replica's
//! memory stays bounded, execution only moves forward, and no money appears or vanishes.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use phalanx_core::consensus::{Effect, Input, Timer};
use phalanx_core::wire::{
    self, Batch, Checkpoint, CheckpointCert, ClientRequest, Message, Operation, Phase, PrePrepare,
    RequestBody, Signed, ViewChange, Vote,
};
use phalanx_crypto::{Digest, digest};
use std::collections::BTreeMap;

const N: usize = 4;
const ME: u32 = 1;

#[derive(Arbitrary, Debug)]
enum Action {
    Vote { from: u8, commit: bool, view: u8, seq: u8, digest: u8 },
    Propose { view: u8, seq: u8, requests: Vec<(u8, u8)>, stamp: i16 },
    Checkpoint { from: u8, seq: u8, state: u8 },
    ViewChange { from: u8, new_view: u8 },
    Request { nonce: u8, amount: u8 },
    Timeout(u8),
    Raw { from: u8, bytes: Vec<u8> },
    Wait(u16),
}

// The cluster the core's unit tests drive by hand: every key is known, so any member can be played.
#[path = "../../crates/core/tests/common/mod.rs"]
mod common;

fuzz_target!(|actions: Vec<Action>| {
    let mut c = common::Fixture::new(N);
    // Batches of several requests, so that proposals reach the ledger's interesting cases.
    c.config.params.batch_size = 4;
    let id = c.config.cluster_id;
    let mut r = c.replica(ME);
    let mut now = 1_000_000u64;
    // The digests proposed so far per seq, so that votes can agree with a proposal.
    let mut proposed: BTreeMap<u64, Digest> = BTreeMap::new();
    let mut executed = 0u64;
    let total = r.state().app.total_balance();
    for a in actions.into_iter().take(256) {
        let input = match a {
            Action::Vote { from, commit, view, seq, digest: d } => {
                let from = from as u32 % N as u32;
                let seq = seq as u64;
                let digest = match proposed.get(&seq) {
                    Some(p) if d % 4 != 0 => *p,
                    _ => phalanx_crypto::digest(&[d]),
                };
                let phase = if commit { Phase::Commit } else { Phase::Prepare };
                let v = Vote { phase, epoch: 0, view: view as u64 % 8, seq, digest };
                Input::FromPeer(from, Message::Vote(Signed::sign(v, from, &c.keys[from as usize], &id)))
            }
            Action::Propose { view, seq, requests, stamp } => {
                let view = view as u64 % 8;
                let primary = c.config.epoch.primary(view);
                let requests: Vec<ClientRequest> = requests
                    .into_iter()
                    .take(8)
                    .map(|(nonce, amount)| {
                        let op = Operation::Transfer {
                            from: "alice".into(),
                            to: "bob".into(),
                            amount: amount as u64,
                        };
                        ClientRequest::sign(
                            RequestBody { client: c.client.public(), nonce: nonce as u64 + 1, op },
                            &c.client,
                            &id,
                        )
                    })
                    .collect();
                let batch = Batch {
                    timestamp_ms: now.saturating_add_signed(stamp as i64),
                    requests: requests.into(),
                };
                let seq = seq as u64;
                proposed.insert(seq, batch.digest());
                let pp = PrePrepare { epoch: 0, view, seq, digest: batch.digest() };
                let pp = Signed::sign(pp, primary, &c.keys[primary as usize], &id);
                Input::FromPeer(primary, Message::PrePrepare(pp, batch))
            }
            Action::Checkpoint { from, seq, state } => {
                let from = from as u32 % N as u32;
                let cp = Checkpoint { epoch: 0, seq: seq as u64, state: digest(&[state]) };
                Input::FromPeer(
                    from,
                    Message::Checkpoint(Signed::sign(cp, from, &c.keys[from as usize], &id)),
                )
            }
            Action::ViewChange { from, new_view } => {
                let from = from as u32 % N as u32;
                let stable = CheckpointCert { seq: 0, state: r.stable_cert().state, proofs: Vec::new() };
                let vc =
                    ViewChange { epoch: 0, new_view: new_view as u64 % 16, stable, prepared: Vec::new() };
                Input::FromPeer(
                    from,
                    Message::ViewChange(Signed::sign(vc, from, &c.keys[from as usize], &id)),
                )
            }
            Action::Request { nonce, amount } => {
                let op =
                    Operation::Transfer { from: "alice".into(), to: "bob".into(), amount: amount as u64 };
                let req = ClientRequest::sign(
                    RequestBody { client: c.client.public(), nonce: nonce as u64 + 1, op },
                    &c.client,
                    &id,
                );
                Input::Message(Message::Request(req))
            }
            Action::Timeout(t) => Input::Timeout(
                [Timer::Batch, Timer::Request, Timer::ViewChange, Timer::Resend, Timer::StateTransfer]
                    [t as usize % 5],
            ),
            Action::Raw { from, bytes } => match wire::decode(&bytes) {
                Ok(m) => Input::FromPeer(from as u32 % N as u32, m),
                Err(_) => continue,
            },
            Action::Wait(ms) => {
                now += ms as u64;
                continue;
            }
        };
        let effects = r.handle(now, input);
        for e in &effects {
            if let Effect::Executed { seq, .. } = e {
                assert!(*seq > executed, "executed seq {seq} after {executed}");
                executed = *seq;
            }
        }
        let p = &c.config.params;
        assert!(r.log_len() <= 2 * p.log_window as usize + 64, "log grew to {}", r.log_len());
        assert!(r.buffered() <= N * p.max_buffered_per_sender, "buffer grew to {}", r.buffered());
        assert_eq!(r.state().app.total_balance(), total, "money appeared or vanished");
    }
});
