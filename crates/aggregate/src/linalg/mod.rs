//! Vector arithmetic with a fixed summation order, so that neither the thread count nor the CPU
//! changes a bit of any result: every replica of a federated round must agree on the aggregate.
//! Sums over coordinates follow the order `kernel` documents; sums over vectors run in index
//! order, coordinate by coordinate.

mod eigen;
pub mod kernel;

pub use eigen::top_eigen;
use kernel::{Dist2, Dot, Pack, Path};
use rayon::prelude::*;

/// Coordinates per block of a parallel map or weighted sum.
const BLOCK: usize = 4096;
/// Below this many coordinates, threads cost more than they save.
const PARALLEL_FROM: usize = 1 << 15;

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    kernel::sum::<Dot>(Path::detect(), a, b)
}

pub fn dist2(a: &[f64], b: &[f64]) -> f64 {
    kernel::sum::<Dist2>(Path::detect(), a, b)
}

pub fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// Applies `g` to every coordinate index, in parallel for long vectors.
pub fn per_coordinate(d: usize, g: impl Fn(usize) -> f64 + Sync + Send) -> Vec<f64> {
    if d < PARALLEL_FROM {
        (0..d).map(g).collect()
    } else {
        (0..d).into_par_iter().with_min_len(BLOCK).map(g).collect()
    }
}

/// For every coordinate, `g` of that coordinate's column (one value per vector, in vector
/// order), in a scratch buffer `g` may reorder.
pub fn per_column(vectors: &[Vec<f64>], g: impl Fn(&mut [f64]) -> f64 + Sync + Send) -> Vec<f64> {
    let d = vectors.first().map_or(0, Vec::len);
    let column = |buf: &mut Vec<f64>, k: usize| {
        buf.clear();
        buf.extend(vectors.iter().map(|v| v[k]));
        g(buf)
    };
    if d < PARALLEL_FROM {
        let mut buf = Vec::with_capacity(vectors.len());
        (0..d).map(|k| column(&mut buf, k)).collect()
    } else {
        (0..d)
            .into_par_iter()
            .with_min_len(BLOCK)
            .map_init(|| Vec::with_capacity(vectors.len()), column)
            .collect()
    }
}

/// Σ w_i x_i over the listed vectors, in list order for every coordinate. Blocks of
/// coordinates run in parallel; within a block each vector is streamed whole (cache-friendly),
/// which keeps the per-coordinate order of the additions.
pub fn weighted_sum(vectors: &[Vec<f64>], items: &[(usize, f64)]) -> Vec<f64> {
    let d = vectors.first().map_or(0, Vec::len);
    let mut out = vec![0.0; d];
    let block = |(b, acc): (usize, &mut [f64])| {
        let (start, len) = (b * BLOCK, acc.len());
        for &(i, w) in items {
            for (a, x) in acc.iter_mut().zip(&vectors[i][start..start + len]) {
                *a += w * x;
            }
        }
    };
    if d < PARALLEL_FROM {
        out.chunks_mut(BLOCK).enumerate().for_each(block);
    } else {
        out.par_chunks_mut(BLOCK).enumerate().for_each(block);
    }
    out
}

/// The mean of the listed vectors. Each term is divided before it is added, so vectors near
/// f64::MAX do not overflow the sum.
pub fn mean_of(vectors: &[Vec<f64>], indices: &[usize]) -> Vec<f64> {
    let w = 1.0 / indices.len() as f64;
    weighted_sum(vectors, &indices.iter().map(|&i| (i, w)).collect::<Vec<_>>())
}

pub fn mean(vectors: &[Vec<f64>]) -> Vec<f64> {
    mean_of(vectors, &(0..vectors.len()).collect::<Vec<_>>())
}

/// a + s·b.
pub fn add_scaled(a: &[f64], s: f64, b: &[f64]) -> Vec<f64> {
    per_coordinate(a.len(), |k| a[k] + s * b[k])
}

pub fn scale(a: &[f64], s: f64) -> Vec<f64> {
    per_coordinate(a.len(), |k| a[k] * s)
}

/// All pairwise squared distances (symmetric, zero diagonal), each entry with the bits of
/// [`dist2`], from one pass over the input.
pub fn pairwise_dist2(vectors: &[Vec<f64>]) -> Vec<Vec<f64>> {
    kernel::pairwise::<Dist2>(Path::detect(), vectors, Pack::RAW, false)
}

/// Beyond this magnitude the Gram matrix, or the squares its eigen-solver forms, may overflow.
const GRAM_SAFE: f64 = 1e60;

/// The largest magnitude of any coordinate (max is exact, so any order gives the same).
fn largest(vectors: &[Vec<f64>]) -> f64 {
    let of = |v: &Vec<f64>| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    vectors.par_iter().map(of).reduce(|| 0.0, f64::max)
}

/// Whether some coordinate is so large that squares and sums of it may overflow.
pub fn huge(vectors: &[Vec<f64>]) -> bool {
    largest(vectors) > GRAM_SAFE
}

/// The Gram matrix of the vectors minus their mean, and the power of two `e` it was scaled by
/// (the vectors were multiplied by 2^-e; 0: not scaled). Inputs as large as f64::MAX would
/// overflow it, so when one is [`huge`] every vector is first scaled by the power of two that
/// brings the largest coordinate into [1, 4): the rules that use the matrix (CAF, SMEA) depend
/// only on its shape, and CAF compares eigenvalues across scales exactly with `e`. Other inputs
/// are not touched. (Scaled, small vectors lose their detail next to huge ones; CAF recomputes
/// the matrix once it has dropped the huge ones.)
pub fn centered_gram(vectors: &[Vec<f64>]) -> (Vec<Vec<f64>>, i64) {
    let largest = largest(vectors);
    // 2^-e, e the binary exponent of the largest coordinate (at most 1022, so that 2^-e is a
    // normal number), read from its bits: no libm, so every platform agrees. Powers of two scale
    // exactly, tiny values aside.
    let e =
        if largest > GRAM_SAFE { ((((largest.to_bits() >> 52) & 0x7ff) - 1023) as i64).min(1022) } else { 0 };
    let s = if e > 0 { f64::from_bits(((1023 - e) as u64) << 52) } else { 1.0 };
    // The mean of the scaled vectors (each term scaled exactly by the power of two), subtracted
    // as the kernel packs each panel: no scaled or centred copy of the input is made.
    let n = vectors.len();
    let center = weighted_sum(vectors, &(0..n).map(|i| (i, s / n as f64)).collect::<Vec<_>>());
    let gram =
        kernel::pairwise::<Dot>(Path::detect(), vectors, Pack { scale: s, center: Some(&center) }, true);
    (gram, e)
}

/// x·2^e (x ≥ 0) as (binary exponent, mantissa bits), ordered as the values are: compares
/// quantities kept at different scales exactly, without forming them (they may overflow).
pub fn magnitude(x: f64, e: i64) -> (i64, u64) {
    const MANTISSA: u64 = (1 << 52) - 1;
    if x.is_nan() || x <= 0.0 {
        return (i64::MIN, 0);
    }
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64;
    if exponent == 0 {
        // Subnormal: the leading one at bit p stands for 2^(p − 1074).
        let p = 63 - (bits & MANTISSA).leading_zeros() as i64;
        return (p - 1074 + e, ((bits & MANTISSA) << (52 - p)) & MANTISSA);
    }
    (exponent - 1023 + e, bits & MANTISSA)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_of_huge_values_does_not_overflow() {
        let m = mean(&[vec![f64::MAX], vec![f64::MAX]]);
        assert_eq!(m, vec![f64::MAX]);
    }
}
