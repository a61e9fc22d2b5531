//! Rules that select vectors by distances or norms, computed by the caller (which checks them,
//! see `Rule::apply_checking`): Krum, Multi-Krum, MoNNA, CGE.

use crate::linalg::{mean_of, norm, scale};

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

/// Vector indices ordered by Krum score, best first (ties: lower index first), from the matrix
/// of squared distances.
pub fn krum_order(d: &[Vec<f64>], f: usize, score: KrumScore) -> Vec<usize> {
    let n = d.len();
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

/// MoNNA: the mean of the n−f vectors nearest to the pivot (itself included), from the
/// squared distances to it.
pub fn monna(vectors: &[Vec<f64>], f: usize, to_pivot: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let kept = smallest(to_pivot, vectors.len() - f);
    (mean_of(vectors, &kept), kept)
}

pub fn norms(vectors: &[Vec<f64>]) -> Vec<f64> {
    vectors.iter().map(|v| norm(v)).collect()
}

/// Comparative gradient elimination: keep the n−f smallest norms, average (or sum) them.
pub fn cge(vectors: &[Vec<f64>], f: usize, sum: bool, norms: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let order = smallest(norms, vectors.len() - f);
    let mean = mean_of(vectors, &order);
    (if sum { scale(&mean, order.len() as f64) } else { mean }, order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::{dist2_to_each, pairwise_dist2};
    use crate::tests::line;

    #[test]
    fn krum_scores_by_hand() {
        // Points 0, 1, 2, 3, 50 with f=1. Original: n−f−2 = 2 nearest others.
        // scores: 0 → 1+4=5, 1 → 1+1=2, 2 → 1+1=2, 3 → 1+4=5, 50 → 47²+48²; tie 1,2 → index 1.
        let order = krum_order(&pairwise_dist2(&line(&[0.0, 1.0, 2.0, 3.0, 50.0])), 1, KrumScore::Original);
        assert_eq!(order, vec![1, 2, 0, 3, 4]);
        // Mean over n−f−1 = 3 nearest: 0 → (1+4+9)/3, 1 → (1+1+4)/3, 2 → (1+1+4)/3, 3 → (1+4+9)/3.
        let order = krum_order(&pairwise_dist2(&line(&[0.0, 1.0, 2.0, 3.0, 50.0])), 1, KrumScore::Mean);
        assert_eq!(order, vec![1, 2, 0, 3, 4]);
        // Points 0, 0, 3, 4, 5 with f=1.
        // Original (2 nearest): 0 → 0+9, 0 → 0+9, 3 → 1+4, 4 → 1+1=2, 5 → 1+4. Best: index 3.
        let order = krum_order(&pairwise_dist2(&line(&[0.0, 0.0, 3.0, 4.0, 5.0])), 1, KrumScore::Original);
        assert_eq!(order[0], 3);
        // The two definitions disagree on 0, 0, 10, 10.5, 30 (f=1). Mean over 3 nearest:
        let order = krum_order(&pairwise_dist2(&line(&[0.0, 0.0, 10.0, 10.5, 30.0])), 1, KrumScore::Mean);
        // 0 → (0+100+110.25)/3=70.1, 0 → same, 10 → (0.25+100+100)/3=66.75, 10.5 → (0.25+110.25+110.25)/3=73.6
        assert_eq!(order[0], 2);
        let order = krum_order(&pairwise_dist2(&line(&[0.0, 0.0, 10.0, 10.5, 30.0])), 1, KrumScore::Original);
        // 2 nearest: 0 → 0+100, 0 → 0+100, 10 → 0.25+100, 10.5 → 0.25+110.25; best: index 0.
        assert_eq!(order[0], 0);
    }

    #[test]
    fn nearest_includes_the_pivot() {
        let v = line(&[5.0, 0.0, 4.0, 6.0, 100.0]);
        assert_eq!(monna(&v, 2, &dist2_to_each(&v, &[5.0])).1, vec![0, 2, 3]);
    }

    #[test]
    fn cge_drops_largest_norms() {
        let v = vec![vec![3.0, 4.0], vec![1.0, 0.0], vec![0.0, 2.0], vec![30.0, 40.0]];
        let (mean, kept) = cge(&v, 1, false, &norms(&v));
        assert_eq!(kept, vec![0, 1, 2]);
        assert_eq!(mean, vec![4.0 / 3.0, 2.0]);
        let (sum, _) = cge(&v, 2, true, &norms(&v));
        assert_eq!(sum, vec![1.0, 2.0]);
    }
}
