//! Rules that select vectors by distances or norms: Krum, Multi-Krum, MoNNA, CGE.

use crate::linalg::{dist2_to_each, mean_of, norm, pairwise_dist2, scale};

/// How Krum scores a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KrumScore {
    /// Blanchard et al. 2017: the sum of squared distances to its n−f−2 nearest other vectors.
    Original,
    /// The mean of squared distances to its n−f−1 nearest other vectors (as in later
    /// robustness analyses, e.g. Allouah et al. 2023).
    Mean,
}

impl KrumScore {
    pub fn neighbours(self, n: usize, f: usize) -> usize {
        match self {
            KrumScore::Original => n.saturating_sub(f + 2),
            KrumScore::Mean => n.saturating_sub(f + 1),
        }
    }
}

/// Vector indices ordered by Krum score, best first (ties: lower index first).
pub fn krum_order(vectors: &[Vec<f64>], f: usize, score: KrumScore) -> Vec<usize> {
    let n = vectors.len();
    let d = pairwise_dist2(vectors);
    let k = score.neighbours(n, f);
    let scores: Vec<f64> = (0..n)
        .map(|i| {
            let mut others: Vec<f64> = (0..n).filter(|&j| j != i).map(|j| d[i][j]).collect();
            others.sort_unstable_by(f64::total_cmp);
            let sum = others[..k].iter().fold(0.0, |s, x| s + x);
            match score {
                KrumScore::Original => sum,
                KrumScore::Mean => sum / k as f64,
            }
        })
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    order
}

/// The indices of the `keep` smallest values (ties: lower index first), in index order.
pub fn smallest(values: &[f64], keep: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]).then(a.cmp(&b)));
    order.truncate(keep);
    order.sort_unstable();
    order
}

/// The `keep` vectors nearest to `pivot` (itself included when it is one of them).
pub fn nearest(vectors: &[Vec<f64>], pivot: &[f64], keep: usize) -> Vec<usize> {
    smallest(&dist2_to_each(vectors, pivot), keep)
}

/// Comparative gradient elimination: keep the n−f smallest norms, average (or sum) them.
pub fn cge(vectors: &[Vec<f64>], f: usize, sum: bool) -> (Vec<f64>, Vec<usize>) {
    cge_by_norms(vectors, f, sum, &norms(vectors))
}

pub fn norms(vectors: &[Vec<f64>]) -> Vec<f64> {
    vectors.iter().map(|v| norm(v)).collect()
}

/// [`cge`] with the norms already computed.
pub fn cge_by_norms(vectors: &[Vec<f64>], f: usize, sum: bool, norms: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let order = smallest(norms, vectors.len() - f);
    let mean = mean_of(vectors, &order);
    (if sum { scale(&mean, order.len() as f64) } else { mean }, order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::line;

    #[test]
    fn krum_scores_by_hand() {
        // Points 0, 1, 2, 3, 50 with f=1. Original: n−f−2 = 2 nearest others.
        // scores: 0 → 1+4=5, 1 → 1+1=2, 2 → 1+1=2, 3 → 1+4=5, 50 → 47²+48²; tie 1,2 → index 1.
        let order = krum_order(&line(&[0.0, 1.0, 2.0, 3.0, 50.0]), 1, KrumScore::Original);
        assert_eq!(order, vec![1, 2, 0, 3, 4]);
        // Mean over n−f−1 = 3 nearest: 0 → (1+4+9)/3, 1 → (1+1+4)/3, 2 → (1+1+4)/3, 3 → (1+4+9)/3.
        let order = krum_order(&line(&[0.0, 1.0, 2.0, 3.0, 50.0]), 1, KrumScore::Mean);
        assert_eq!(order, vec![1, 2, 0, 3, 4]);
        // Points 0, 0, 3, 4, 5 with f=1.
        // Original (2 nearest): 0 → 0+9, 0 → 0+9, 3 → 1+4, 4 → 1+1=2, 5 → 1+4. Best: index 3.
        let order = krum_order(&line(&[0.0, 0.0, 3.0, 4.0, 5.0]), 1, KrumScore::Original);
        assert_eq!(order[0], 3);
        // The two definitions disagree on 0, 0, 10, 10.5, 30 (f=1). Mean over 3 nearest:
        let order = krum_order(&line(&[0.0, 0.0, 10.0, 10.5, 30.0]), 1, KrumScore::Mean);
        // 0 → (0+100+110.25)/3=70.1, 0 → same, 10 → (0.25+100+100)/3=66.75, 10.5 → (0.25+110.25+110.25)/3=73.6
        assert_eq!(order[0], 2);
        let order = krum_order(&line(&[0.0, 0.0, 10.0, 10.5, 30.0]), 1, KrumScore::Original);
        // 2 nearest: 0 → 0+100, 0 → 0+100, 10 → 0.25+100, 10.5 → 0.25+110.25; best: index 0.
        assert_eq!(order[0], 0);
    }

    #[test]
    fn nearest_includes_the_pivot() {
        assert_eq!(nearest(&line(&[5.0, 0.0, 4.0, 6.0, 100.0]), &[5.0], 3), vec![0, 2, 3]);
    }

    #[test]
    fn cge_drops_largest_norms() {
        let v = vec![vec![3.0, 4.0], vec![1.0, 0.0], vec![0.0, 2.0], vec![30.0, 40.0]];
        let (mean, kept) = cge(&v, 1, false);
        assert_eq!(kept, vec![0, 1, 2]);
        assert_eq!(mean, vec![4.0 / 3.0, 2.0]);
        let (sum, _) = cge(&v, 2, true);
        assert_eq!(sum, vec![1.0, 2.0]);
    }
}
