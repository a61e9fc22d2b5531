//! Every rule and pre-aggregator on n = 100 vectors of d = 1,000,000 f64 (800 MB of input),
//! and two bounds: one read of the input, and the all-pairs distance kernel. `PHALANX_BENCH_DIM`
//! shrinks d for a quick run; `benches/numpy_rules.py` times plain numpy expressions beside it.
//!
//! cargo bench -p phalanx-aggregate --bench rules

use criterion::{Criterion, criterion_group, criterion_main};
use phalanx_aggregate::{Params, Pipeline, Pre};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;

const N: usize = 100;

fn dim() -> usize {
    std::env::var("PHALANX_BENCH_DIM").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000)
}

fn vectors() -> Vec<Vec<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let d = dim();
    (0..N).map(|_| (0..d).map(|_| rng.random::<f64>() - 0.5).collect()).collect()
}

fn rules(c: &mut Criterion) {
    let v = vectors();
    let mut g = c.benchmark_group(format!("aggregate n={N} d={}", dim()));
    g.sample_size(10);
    // What bounds the rules: one parallel read of the input (the check every rule starts with),
    // and the all-pairs distance kernel the distance rules share.
    g.bench_function("bound: validate (one read of the input)", |b| {
        b.iter(|| black_box(phalanx_aggregate::validate(&v)))
    });
    g.bench_function("bound: all pairwise distances", |b| {
        b.iter(|| black_box(phalanx_aggregate::linalg::pairwise_dist2(&v)))
    });
    // The plain mean without the check, to set beside numpy's `mean(axis=0)`, which checks nothing.
    g.bench_function("average, rule alone (no input check)", |b| {
        b.iter(|| black_box(phalanx_aggregate::Rule::Average.apply(&v, 0)))
    });
    // (rule, f): the exact subset searches visit C(n, f) subsets, so they run with small f.
    let cases = [
        ("average", 10),
        ("median", 10),
        ("trmean", 10),
        ("meamed", 10),
        ("geomed", 10),
        ("krum", 10),
        ("multikrum", 10),
        ("cc", 10),
        ("monna", 10),
        ("cge", 10),
        ("caf", 10),
        ("mda", 2),
        ("smea", 1),
    ];
    for (rule, f) in cases {
        let p = Pipeline::from_names(rule, &[], &Params::default(), 0).expect("rule");
        g.bench_function(format!("{rule} f={f}"), |b| {
            b.iter(|| black_box(p.aggregate(&v, f).expect("aggregate")))
        });
    }
    for (name, pre) in [
        ("nnm", Pre::Nnm),
        ("bucketing", Pre::Bucketing { size: 2 }),
        ("clip", Pre::Clip { norm: 1.0 }),
        ("arc", Pre::Arc),
    ] {
        g.bench_function(format!("pre {name} f=10"), |b| b.iter(|| black_box(pre.apply(&v, 10, 0))));
    }
    g.finish();
}

criterion_group!(benches, rules);
criterion_main!(benches);
