//! Rules that search every subset of n−f vectors exactly: minimum-diameter averaging and
//! smallest-maximum-eigenvalue averaging. The search visits C(n, f) subsets, so callers bound it.

use crate::linalg::{centered_gram, mean_of, top_eigen};
use rayon::prelude::*;

/// C(n, k), saturating.
pub fn binomial(n: usize, k: usize) -> u128 {
    // C(n, k) = C(n, n−k): iterate over the smaller one.
    let k = k.min(n.saturating_sub(k));
    (0..k).fold(1u128, |acc, i| acc.saturating_mul((n - i) as u128) / (i as u128 + 1))
}

/// Calls `visit` with every subset of `keep` indices out of 0..n, in lexicographic order.
fn for_each_subset(n: usize, keep: usize, mut visit: impl FnMut(&[usize])) {
    let mut idx: Vec<usize> = (0..keep).collect();
    loop {
        visit(&idx);
        // Advance the rightmost index that can still move.
        let Some(i) = (0..keep).rev().find(|&i| idx[i] < n - keep + i) else { return };
        idx[i] += 1;
        for j in i + 1..keep {
            idx[j] = idx[j - 1] + 1;
        }
    }
}

/// Subsets generated, then costed in parallel, at a time.
const BATCH: usize = 1024;

/// The first subset (lexicographically) minimising `cost`. Batches of subsets are costed in
/// parallel and scanned in order, so the choice does not depend on the thread count.
fn best_subset(n: usize, keep: usize, cost: impl Fn(&[usize]) -> f64 + Sync) -> Vec<usize> {
    let mut best: Option<(f64, Vec<usize>)> = None;
    let mut batch: Vec<Vec<usize>> = Vec::with_capacity(BATCH);
    let mut scan = |batch: &mut Vec<Vec<usize>>| {
        let costs: Vec<f64> = batch.par_iter().map(|s| cost(s)).collect();
        for (c, s) in costs.into_iter().zip(batch.drain(..)) {
            if best.as_ref().is_none_or(|(b, _)| c < *b) {
                best = Some((c, s));
            }
        }
    };
    for_each_subset(n, keep, |s| {
        batch.push(s.to_vec());
        if batch.len() == BATCH {
            scan(&mut batch);
        }
    });
    scan(&mut batch);
    best.map(|(_, s)| s).unwrap_or_default()
}

/// Minimum-diameter averaging: the mean of the n−f vectors with the smallest diameter (largest
/// pairwise distance).
pub fn mda(vectors: &[Vec<f64>], f: usize, dist2: &[Vec<f64>]) -> (Vec<f64>, Vec<usize>) {
    let keep = vectors.len() - f;
    let chosen = best_subset(vectors.len(), keep, |s| {
        let mut diameter = 0.0f64;
        for (a, &i) in s.iter().enumerate() {
            for &j in &s[a + 1..] {
                diameter = diameter.max(dist2[i][j]);
            }
        }
        diameter
    });
    (mean_of(vectors, &chosen), chosen)
}

/// Smallest maximum eigenvalue averaging: the mean of the n−f vectors whose empirical
/// covariance has the smallest top eigenvalue. The covariance of a subset S is d×d, but its
/// non-zero eigenvalues are those of S's centered Gram matrix divided by |S|, which is small;
/// that matrix is decomposed exactly (Jacobi).
pub fn smea(vectors: &[Vec<f64>], f: usize) -> (Vec<f64>, Vec<usize>) {
    // Centred at the overall mean: small Gram entries, less cancellation.
    let (k, _) = centered_gram(vectors);
    let keep = vectors.len() - f;
    let chosen = best_subset(vectors.len(), keep, |s| {
        let m = s.len() as f64;
        let r: Vec<f64> = s.iter().map(|&i| s.iter().map(|&l| k[i][l]).sum::<f64>() / m).collect();
        let c = r.iter().sum::<f64>() / m;
        let g: Vec<Vec<f64>> = s
            .iter()
            .enumerate()
            .map(|(a, &i)| s.iter().enumerate().map(|(b, &j)| k[i][j] - r[a] - r[b] + c).collect())
            .collect();
        top_eigen(&g).0 / m
    });
    (mean_of(vectors, &chosen), chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::pairwise_dist2;

    #[test]
    fn binomials() {
        assert_eq!(binomial(5, 2), 10);
        assert_eq!(binomial(100, 3), 161_700);
        assert_eq!(binomial(4, 0), 1);
        assert_eq!(binomial(4, 4), 1);
    }

    #[test]
    fn subsets_in_order() {
        let mut seen = Vec::new();
        for_each_subset(4, 2, |s| seen.push(s.to_vec()));
        assert_eq!(seen, vec![vec![0, 1], vec![0, 2], vec![0, 3], vec![1, 2], vec![1, 3], vec![2, 3]]);
    }

    #[test]
    fn mda_by_hand() {
        // 0, 1, 2, 10 with f=1: {0,1,2} has diameter 2 (squared 4); any set with 10 is wider.
        let v = crate::tests::line(&[0.0, 1.0, 2.0, 10.0]);
        let (m, kept) = mda(&v, 1, &pairwise_dist2(&v));
        assert_eq!(kept, vec![0, 1, 2]);
        assert_eq!(m, vec![1.0]);
    }

    #[test]
    fn smea_by_hand() {
        // In 2-d: three points spread along x by 1 and one 5 away along y. Leaving out the far
        // one leaves covariance diag(2/3, 0) → top eigenvalue 2/3, the smallest available.
        let v = vec![vec![-1.0, 0.0], vec![0.0, 0.0], vec![1.0, 0.0], vec![0.0, 5.0]];
        let (m, kept) = smea(&v, 1);
        assert_eq!(kept, vec![0, 1, 2]);
        assert_eq!(m, vec![0.0, 0.0]);
    }
}
