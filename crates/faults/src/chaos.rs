//! `chaos`: a Byzantine member nobody scripted. It runs an honest replica and, seeded, mutates
//! what that replica sends: any field of any message (views, seqs, epochs, digests, the
//! contents of certificates, batches and batch requests), re-signed with its own key so the
//! mutation is its own signed word, or left with the old signature. Each recipient may get a
//! different version, or none, or one late. It also replays and mutates what any of the
//! colluding members has seen, relaying honest members' signed messages out of context.
//!
//! Nothing here knows what an attack should look like: the invariants judge what the mutations
//! break.

use crate::board::Blackboard;
use phalanx_core::wire::{Batch, ClientRequest, Message, Phase, PreparedCert, ReplicaId, Signed};
use phalanx_crypto::{Digest, Keypair, digest};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// Who signs the mutations: the chaos member itself.
pub struct Signer<'a> {
    pub id: ReplicaId,
    pub key: &'a Keypair,
    pub cluster: &'a Digest,
}

/// A hostile version of `x`: next to it, zero, the largest, a little above, or anything.
fn number(x: u64, rng: &mut ChaCha8Rng) -> u64 {
    match rng.random_range(0..7u8) {
        0 => x.wrapping_add(1),
        1 => x.saturating_sub(1),
        2 => 0,
        3 => u64::MAX,
        4 => x.saturating_add(rng.random_range(2..64)),
        5 => x.saturating_add(1 << rng.random_range(8..40)),
        _ => rng.random(),
    }
}

/// A digest that names nothing, or one that names something else the colluders have seen.
fn other_digest(board: &Blackboard, rng: &mut ChaCha8Rng) -> Digest {
    if !board.seen.is_empty() && rng.random_bool(0.5) {
        let m = &board.seen[rng.random_range(0..board.seen.len())];
        if let Some(d) = named_digest(m) {
            return d;
        }
    }
    digest(&rng.random::<u64>().to_le_bytes())
}

fn named_digest(m: &Message) -> Option<Digest> {
    match m {
        Message::PrePrepare(pp, _) => Some(pp.body.digest),
        Message::Vote(v) => Some(v.body.digest),
        Message::Checkpoint(c) => Some(c.body.state),
        _ => None,
    }
}

/// Drops, duplicates or reorders the entries of a list.
fn shuffle_list<T: Clone>(v: &mut Vec<T>, rng: &mut ChaCha8Rng) {
    if v.is_empty() {
        return;
    }
    match rng.random_range(0..4u8) {
        0 => {
            v.remove(rng.random_range(0..v.len()));
        }
        1 => {
            let x = v[rng.random_range(0..v.len())].clone();
            v.push(x);
        }
        2 => v.reverse(),
        _ => v.truncate(rng.random_range(0..v.len())),
    }
}

fn mutate_batch(b: &mut Batch, rng: &mut ChaCha8Rng) {
    if rng.random_bool(0.5) {
        b.timestamp_ms = number(b.timestamp_ms, rng);
    } else {
        let mut requests: Vec<ClientRequest> = b.requests.to_vec();
        shuffle_list(&mut requests, rng);
        if let Some(r) = requests.first_mut().filter(|_| rng.random_bool(0.3)) {
            r.body.nonce = number(r.body.nonce, rng);
        }
        b.requests = requests.into();
    }
}

fn mutate_prepared(p: &mut PreparedCert, me: &Signer, rng: &mut ChaCha8Rng, board: &Blackboard) {
    match rng.random_range(0..3u8) {
        0 => shuffle_list(&mut p.prepares, rng),
        1 => {
            let mut body = p.pre_prepare.body.clone();
            body.digest = other_digest(board, rng);
            p.pre_prepare = Signed::sign(body, p.pre_prepare.from, me.key, me.cluster);
        }
        _ => {
            if let Some(v) = p.prepares.first_mut() {
                v.body.seq = number(v.body.seq, rng);
            }
        }
    }
}

/// Signs `body` as the chaos member if the message was its own, most of the time: a mutation
/// under its own valid signature is its own provable word; with the old signature, it is a
/// corrupted one.
fn resign<T: phalanx_core::wire::Body + Clone>(s: &mut Signed<T>, me: &Signer, rng: &mut ChaCha8Rng) {
    if s.from == me.id && rng.random_bool(0.8) {
        *s = Signed::sign(s.body.clone(), me.id, me.key, me.cluster);
    }
}

/// One seeded mutation of `m`.
pub fn mutate(m: Message, me: &Signer, rng: &mut ChaCha8Rng, board: &Blackboard) -> Message {
    match m {
        Message::Vote(mut v) => {
            match rng.random_range(0..5u8) {
                0 => v.body.view = number(v.body.view, rng),
                1 => v.body.seq = number(v.body.seq, rng),
                2 => v.body.digest = other_digest(board, rng),
                3 => v.body.epoch = number(v.body.epoch, rng),
                _ => {
                    v.body.phase = match v.body.phase {
                        Phase::Prepare => Phase::Commit,
                        Phase::Commit => Phase::Prepare,
                    }
                }
            }
            resign(&mut v, me, rng);
            Message::Vote(v)
        }
        Message::PrePrepare(mut pp, mut batch) => {
            match rng.random_range(0..5u8) {
                0 => pp.body.view = number(pp.body.view, rng),
                1 => pp.body.seq = number(pp.body.seq, rng),
                2 => pp.body.digest = other_digest(board, rng),
                3 => {
                    // A different batch under a digest that matches it.
                    mutate_batch(&mut batch, rng);
                    pp.body.digest = batch.digest();
                }
                // A different batch under the old digest.
                _ => mutate_batch(&mut batch, rng),
            }
            resign(&mut pp, me, rng);
            Message::PrePrepare(pp, batch)
        }
        Message::Checkpoint(mut c) => {
            if rng.random_bool(0.5) {
                c.body.seq = number(c.body.seq, rng);
            } else {
                c.body.state = other_digest(board, rng);
            }
            resign(&mut c, me, rng);
            Message::Checkpoint(c)
        }
        Message::ViewChange(mut vc) => {
            match rng.random_range(0..5u8) {
                0 => vc.body.new_view = number(vc.body.new_view, rng),
                1 => shuffle_list(&mut vc.body.prepared, rng),
                2 => shuffle_list(&mut vc.body.stable.proofs, rng),
                3 => vc.body.stable.seq = number(vc.body.stable.seq, rng),
                _ => {
                    if let Some(p) = vc.body.prepared.first_mut() {
                        mutate_prepared(p, me, rng, board);
                    }
                }
            }
            resign(&mut vc, me, rng);
            Message::ViewChange(vc)
        }
        Message::NewView(mut nv) => {
            match rng.random_range(0..4u8) {
                0 => nv.body.view = number(nv.body.view, rng),
                1 => shuffle_list(&mut nv.body.view_changes, rng),
                2 => shuffle_list(&mut nv.body.pre_prepares, rng),
                _ => {
                    if let Some(pp) = nv.body.pre_prepares.first_mut() {
                        pp.body.digest = other_digest(board, rng);
                        resign(pp, me, rng);
                    }
                }
            }
            resign(&mut nv, me, rng);
            Message::NewView(nv)
        }
        Message::StateRequest(mut r) => {
            r.body.seq = number(r.body.seq, rng);
            resign(&mut r, me, rng);
            Message::StateRequest(r)
        }
        Message::StateResponse(mut r) => {
            match rng.random_range(0..3u8) {
                0 => r.body.cert.seq = number(r.body.cert.seq, rng),
                1 => shuffle_list(&mut r.body.cert.proofs, rng),
                _ => {
                    if !r.body.snapshot.is_empty() {
                        let i = rng.random_range(0..r.body.snapshot.len());
                        r.body.snapshot[i] ^= 1 << rng.random_range(0..8);
                    }
                }
            }
            resign(&mut r, me, rng);
            Message::StateResponse(r)
        }
        Message::Fetch(mut f) => {
            if rng.random_bool(0.5) {
                f.body.after = number(f.body.after, rng);
            } else {
                f.body.view = number(f.body.view, rng);
            }
            resign(&mut f, me, rng);
            Message::Fetch(f)
        }
        Message::BatchRequest(mut r) => {
            match rng.random_range(0..3u8) {
                0 => shuffle_list(&mut r.body.wanted, rng),
                1 => r.body.wanted.push((rng.random(), other_digest(board, rng))),
                _ => {
                    if let Some(w) = r.body.wanted.first_mut() {
                        w.0 = number(w.0, rng);
                    }
                }
            }
            resign(&mut r, me, rng);
            Message::BatchRequest(r)
        }
        Message::Committed(mut c) => {
            if rng.random_bool(0.5) {
                shuffle_list(&mut c.commits, rng);
            } else {
                mutate_batch(&mut c.batch, rng);
            }
            Message::Committed(c)
        }
        Message::Batch(seq, mut b) => {
            if rng.random_bool(0.5) {
                Message::Batch(number(seq, rng), b)
            } else {
                mutate_batch(&mut b, rng);
                Message::Batch(seq, b)
            }
        }
        Message::Request(mut r) => {
            // Not its key: the client's signature no longer matches.
            r.body.nonce = number(r.body.nonce, rng);
            Message::Request(r)
        }
    }
}
