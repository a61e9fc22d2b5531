//! Criterion benchmarks of the hot paths: wire encoding, signatures, digests, ledger apply, and
//! a backup replica handling the full message storm of consensus instances.
//! Run: `cargo bench -p phalanx-core --bench hot_paths`.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Fixture, feed};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use phalanx_core::wire::{self, Batch, Message, Phase};
use phalanx_crypto::{BatchVerifier, Keypair, SeededRng, VerifyItem, verify_one};
use std::hint::black_box;

/// Requests per batch in these benchmarks (the default batch size).
const BATCH: usize = 64;

fn batch(fx: &Fixture, first_nonce: u64) -> Batch {
    fx.batch((0..BATCH as u64).map(|i| fx.request(first_nonce + i, 1)).collect())
}

fn wire_codec(c: &mut Criterion) {
    let fx = Fixture::new(4);
    let msg = fx.pre_prepare(0, 1, &batch(&fx, 1));
    let bytes = wire::encode(&msg);
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode pre-prepare (64 requests)", |b| b.iter(|| wire::encode(black_box(&msg))));
    g.bench_function("decode pre-prepare (64 requests)", |b| {
        b.iter(|| wire::decode(black_box(&bytes)).unwrap())
    });
    g.finish();
}

fn signatures(c: &mut Criterion) {
    // 64 distinct signers, as in a batch from 64 clients (batches of one key verify faster).
    let keys: Vec<Keypair> = (0..BATCH).map(|i| Keypair::from_seed([i as u8 + 1; 32])).collect();
    let items: Vec<VerifyItem> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let message = format!("transfer {i}: 1 from bench-{i} to bench-{}", i + 1).into_bytes();
            VerifyItem { key: k.public(), signature: k.sign(&message), message }
        })
        .collect();
    let mut g = c.benchmark_group("ed25519");
    g.bench_function("sign", |b| b.iter(|| keys[0].sign(black_box(&items[0].message))));
    g.bench_function("verify one", |b| {
        b.iter(|| assert!(verify_one(&items[0].key, black_box(&items[0].message), &items[0].signature)))
    });
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut rng = SeededRng::new([1; 32]);
    g.bench_function("batch verify 64 signers", |b| {
        b.iter(|| assert!(BatchVerifier::verify(&mut rng, black_box(&items)).iter().all(|ok| *ok)))
    });
    // ed25519-zebra's verifier, which decompresses each signer's key again: the `--limit` cost.
    g.bench_function("batch verify 64 signers (reference)", |b| {
        b.iter(|| assert!(BatchVerifier::verify_reference(&mut rng, black_box(&items)).iter().all(|ok| *ok)))
    });
    g.finish();
}

fn digests(c: &mut Criterion) {
    let fx = Fixture::new(4);
    let b64 = batch(&fx, 1);
    let mut g = c.benchmark_group("digest");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("batch digest (64 requests)", |b| b.iter(|| black_box(&b64).digest()));
    g.finish();
}

fn ledger(c: &mut Criterion) {
    let fx = Fixture::new(4);
    let b64 = batch(&fx, 1);
    let mut g = c.benchmark_group("ledger");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("apply 64 transfers", |b| {
        b.iter_batched(
            || fx.config.genesis_state(),
            |mut s| {
                s.begin_batch(1, 1);
                for r in b64.requests.iter() {
                    black_box(s.execute(1, r));
                }
                s
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// A backup (n=4) receives, for each of 10 slots, the pre-prepare of a 64-request batch whose
/// client signatures it has not seen, 2 PREPAREs and 3 COMMITs, and executes the batch.
fn replica_storm(c: &mut Criterion) {
    let fx = Fixture::new(4);
    let slots = 10u64;
    let mut messages = Vec::new();
    for seq in 1..=slots {
        let b = batch(&fx, seq * 1000);
        let d = b.digest();
        messages.push(fx.pre_prepare(0, seq, &b));
        for i in [1, 3] {
            messages.push(fx.vote(i, Phase::Prepare, 0, seq, d));
        }
        for i in [0, 1, 3] {
            messages.push(fx.vote(i, Phase::Commit, 0, seq, d));
        }
    }
    let mut g = c.benchmark_group("replica");
    g.throughput(Throughput::Elements(slots * BATCH as u64));
    g.sample_size(20);
    g.bench_function("backup handles 10 instances of 64 transfers", |b| {
        b.iter_batched(
            || (fx.replica(2), messages.clone()),
            |(mut r, msgs): (_, Vec<Message>)| {
                for m in msgs {
                    black_box(feed(&mut r, m));
                }
                assert_eq!(r.last_executed(), slots);
                r
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, wire_codec, signatures, digests, ledger, replica_storm);
criterion_main!(benches);
