//! Vector arithmetic with a fixed summation order. Every sum over coordinates runs in blocks of
//! `BLOCK` coordinates, each block summed left to right and the block sums added in block order;
//! every sum over vectors runs in index order. The thread count therefore never changes a bit of
//! any result, which is what lets every replica of a federated round agree on the aggregate.

use rayon::prelude::*;

/// Coordinates per block of a parallel sum.
const BLOCK: usize = 4096;
/// Below this many coordinates, threads cost more than they save.
const PARALLEL_FROM: usize = 1 << 15;

/// Σ g(a[k], b[k]) over k, in the fixed block order.
fn blocked_sum(a: &[f64], b: &[f64], g: impl Fn(f64, f64) -> f64 + Sync) -> f64 {
    let block = |(x, y): (&[f64], &[f64])| x.iter().zip(y).fold(0.0, |s, (p, q)| s + g(*p, *q));
    if a.len() < PARALLEL_FROM {
        a.chunks(BLOCK).zip(b.chunks(BLOCK)).map(block).fold(0.0, |s, v| s + v)
    } else {
        let sums: Vec<f64> = a.par_chunks(BLOCK).zip(b.par_chunks(BLOCK)).map(block).collect();
        sums.into_iter().fold(0.0, |s, v| s + v)
    }
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    blocked_sum(a, b, |p, q| p * q)
}

pub fn dist2(a: &[f64], b: &[f64]) -> f64 {
    blocked_sum(a, b, |p, q| (p - q) * (p - q))
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

/// All pairwise squared distances (symmetric, zero diagonal). Each entry is one sequential
/// blocked sum; pairs run in parallel.
pub fn pairwise_dist2(vectors: &[Vec<f64>]) -> Vec<Vec<f64>> {
    pairwise(vectors, dist2)
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
    let scaled: Option<Vec<Vec<f64>>> = (e > 0).then(|| {
        let s = f64::from_bits(((1023 - e) as u64) << 52);
        vectors.iter().map(|v| scale(v, s)).collect()
    });
    let vectors = scaled.as_deref().unwrap_or(vectors);
    let center = mean(vectors);
    let centered: Vec<Vec<f64>> = vectors.iter().map(|v| add_scaled(v, -1.0, &center)).collect();
    let mut g = pairwise(&centered, dot);
    for (i, v) in centered.iter().enumerate() {
        g[i][i] = dot(v, v);
    }
    (g, e)
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

fn pairwise(vectors: &[Vec<f64>], g: fn(&[f64], &[f64]) -> f64) -> Vec<Vec<f64>> {
    let n = vectors.len();
    let pairs: Vec<(usize, usize)> = (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))).collect();
    let values: Vec<f64> = pairs.par_iter().map(|&(i, j)| g(&vectors[i], &vectors[j])).collect();
    let mut m = vec![vec![0.0; n]; n];
    for (&(i, j), v) in pairs.iter().zip(values) {
        m[i][j] = v;
        m[j][i] = v;
    }
    m
}

/// Eigen-decomposition of a small symmetric matrix by cyclic Jacobi rotations, run until the
/// off-diagonal mass is negligible: exact up to rounding, and deterministic. Returns the largest
/// eigenvalue and a unit eigenvector for it.
pub fn top_eigen(matrix: &[Vec<f64>]) -> (f64, Vec<f64>) {
    let n = matrix.len();
    let mut a: Vec<Vec<f64>> = matrix.to_vec();
    let mut v: Vec<Vec<f64>> =
        (0..n).map(|i| (0..n).map(|j| f64::from(u8::from(i == j))).collect()).collect();
    let total: f64 = a.iter().flatten().map(|x| x * x).sum();
    for _sweep in 0..64 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off <= total * 1e-30 || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[p][q] == 0.0 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for row in a.iter_mut() {
                    let (akp, akq) = (row[p], row[q]);
                    row[p] = c * akp - s * akq;
                    row[q] = s * akp + c * akq;
                }
                let (row_p, row_q) = (a[p].clone(), a[q].clone());
                for (k, (apk, aqk)) in row_p.into_iter().zip(row_q).enumerate() {
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for row in v.iter_mut() {
                    let (vkp, vkq) = (row[p], row[q]);
                    row[p] = c * vkp - s * vkq;
                    row[q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let best = (0..n).max_by(|&i, &j| a[i][i].total_cmp(&a[j][j])).unwrap_or(0);
    (a[best][best], v.iter().map(|row| row[best]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_do_not_depend_on_length_split() {
        let a: Vec<f64> = (0..100_000).map(|i| (i as f64).sin()).collect();
        let b: Vec<f64> = (0..100_000).map(|i| (i as f64).cos()).collect();
        let serial = a
            .chunks(BLOCK)
            .zip(b.chunks(BLOCK))
            .map(|(x, y)| x.iter().zip(y).fold(0.0, |s, (p, q)| s + p * q))
            .fold(0.0, |s, v| s + v);
        assert_eq!(dot(&a, &b).to_bits(), serial.to_bits());
    }

    #[test]
    fn jacobi_finds_the_top_eigenpair() {
        // [[2,1],[1,2]] has eigenvalues 3 (vector (1,1)/√2) and 1.
        let (l, v) = top_eigen(&[vec![2.0, 1.0], vec![1.0, 2.0]]);
        assert!((l - 3.0).abs() < 1e-12);
        assert!((v[0].abs() - 0.5f64.sqrt()).abs() < 1e-12 && (v[0] - v[1]).abs() < 1e-12);
        // A diagonal matrix: the largest diagonal entry.
        let (l, v) = top_eigen(&[vec![1.0, 0.0, 0.0], vec![0.0, 5.0, 0.0], vec![0.0, 0.0, 2.0]]);
        assert_eq!(l, 5.0);
        assert_eq!(v, vec![0.0, 1.0, 0.0]);
    }

    #[test]
    fn mean_of_huge_values_does_not_overflow() {
        let m = mean(&[vec![f64::MAX], vec![f64::MAX]]);
        assert_eq!(m, vec![f64::MAX]);
    }
}
