//! CAF, the covariance-bound agnostic filter of Allouah, Guerraoui and Stephan (ICML 2025):
//! down-weight vectors along the top eigenvector of the weighted covariance until the weight
//! left is at most n−2f, and return the weighted mean of the iterate whose covariance had the
//! smallest top eigenvalue.

use crate::linalg::{centered_gram, huge, magnitude, top_eigen, weighted_sum};

/// Returns the aggregate and the vectors with non-zero weight in the iterate it comes from.
///
/// From c = 1ⁿ, while Σc > n−2f: take the c-weighted mean μ_c and the top eigenpair (λ, v) of
/// the c-weighted covariance Σ_c = Σ c_i (x_i−μ_c)(x_i−μ_c)ᵀ / Σc; remember μ_c if λ is the
/// smallest so far; set τ_i = ((x_i−μ_c)·v)² and c_i ← c_i (1 − τ_i / max τ). The result is the
/// remembered μ_c.
///
/// The eigenpair is exact, not one step of power iteration from a random start (as ByzFL
/// computes it): every replica must get the same bits, and one step can miss the direction an
/// attacker hides in. `max τ` is taken over the vectors that still have weight. Over all of
/// them (as ByzFL does), a vector already at weight zero can keep the maximum, and the others
/// then lose weight by a sliver each pass: a far enough Byzantine vector makes the loop run as
/// long as it likes, and identical honest vectors make it run forever. Over the live ones, the
/// vector with the largest τ reaches zero every pass, so n passes suffice; the first pass is the
/// same either way.
///
/// Every step works in n-space: Σ_c has the same non-zero eigenvalues as the n×n matrix
/// √W Z Zᵀ √W (W = c/Σc, Z the vectors minus μ_c), where Z Zᵀ follows from one Gram matrix of
/// the inputs; v's projections follow from the eigenvector.
pub fn caf(vectors: &[Vec<f64>], f: usize) -> (Vec<f64>, Vec<usize>) {
    let n = vectors.len();
    // Huge vectors shrink the others to noise in the (rescaled) matrix; once their weight is
    // gone, the matrix is recomputed from the rest, zero in the rows of the dropped. `scale`
    // is the power of two the matrix was scaled down by, so eigenvalues from before and after
    // compare exactly.
    let (mut k, mut scale) = centered_gram(vectors);
    let mut c = vec![1.0f64; n];
    let target = (n - 2 * f) as f64;
    // The iterate with the smallest top eigenvalue so far: its eigenvalue and weights.
    let mut best: Option<((i64, u64), Vec<f64>)> = None;
    for _ in 0..n {
        let total: f64 = c.iter().sum();
        if total <= target {
            break;
        }
        let alive: Vec<usize> = (0..n).filter(|&i| c[i] > 0.0).collect();
        if scale != 0 && alive.iter().all(|&i| !huge(std::slice::from_ref(&vectors[i]))) {
            let small: Vec<Vec<f64>> = alive.iter().map(|&i| vectors[i].clone()).collect();
            let (g, _) = centered_gram(&small);
            k = vec![vec![0.0; n]; n];
            for (a, &i) in alive.iter().enumerate() {
                for (b, &j) in alive.iter().enumerate() {
                    k[i][j] = g[a][b];
                }
            }
            scale = 0;
        }
        let w: Vec<f64> = c.iter().map(|x| x / total).collect();
        // Z Zᵀ with z_i = y_i − Σ_j w_j y_j, from K = Y Yᵀ.
        let kw: Vec<f64> = (0..n).map(|i| (0..n).map(|j| k[i][j] * w[j]).sum()).collect();
        let wkw: f64 = (0..n).map(|i| w[i] * kw[i]).sum();
        let z: Vec<Vec<f64>> =
            (0..n).map(|i| (0..n).map(|j| k[i][j] - kw[i] - kw[j] + wkw).collect()).collect();
        let sw: Vec<f64> = w.iter().map(|x| x.sqrt()).collect();
        let m: Vec<Vec<f64>> = (0..n).map(|i| (0..n).map(|j| sw[i] * z[i][j] * sw[j]).collect()).collect();
        let (lambda, u) = top_eigen(&m);
        // The covariance is positive semi-definite: a negative top eigenvalue is rounding.
        let lambda = lambda.max(0.0);
        // λ of the unscaled vectors is λ·2^(2·scale).
        let size = magnitude(lambda, 2 * scale);
        if best.as_ref().is_none_or(|(b, _)| size < *b) {
            best = Some((size, c.clone()));
        }
        if lambda == 0.0 {
            // The live vectors coincide: no weight can move, and this iterate is the best.
            break;
        }
        // τ_i = (z_i · v)² with v = Zᵀ √W u / √λ.
        let tau: Vec<f64> = (0..n)
            .map(|i| {
                let p: f64 = (0..n).map(|j| z[i][j] * sw[j] * u[j]).sum();
                p * p / lambda
            })
            .collect();
        let tau_max = alive.iter().map(|&i| tau[i]).fold(0.0f64, f64::max);
        if tau_max <= 0.0 {
            break;
        }
        for &i in &alive {
            c[i] = if tau[i] >= tau_max { 0.0 } else { (c[i] * (1.0 - tau[i] / tau_max)).max(0.0) };
        }
    }
    // No pass (f = 0): every weight is still 1, the plain mean.
    let c = best.map_or(c, |(_, c)| c);
    let total: f64 = c.iter().sum();
    let items: Vec<(usize, f64)> = (0..n).filter(|&i| c[i] > 0.0).map(|i| (i, c[i] / total)).collect();
    (weighted_sum(vectors, &items), items.iter().map(|(i, _)| *i).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caf_removes_the_outlier_first() {
        // Four points at ±1 around 0 on x, one at 100 on x. The top direction is x; the outlier
        // has the largest projection, so its weight goes to zero in the first pass.
        let v = vec![vec![-1.0, 0.0], vec![1.0, 0.0], vec![-1.0, 0.0], vec![1.0, 0.0], vec![100.0, 0.0]];
        let (m, kept) = caf(&v, 1);
        assert_eq!(kept, vec![0, 1, 2, 3], "the outlier's weight is zero");
        // The first pass also trims the honest points a little, unevenly (the −1 points sat
        // farther from the poisoned mean), so the second iterate, whose eigenvalue is the
        // smallest, is near 0, not exactly 0; the plain mean is 20. (The exact value is checked
        // against an independent computation in tests/caf_reference.rs.)
        assert!(m[0].abs() < 0.05 && m[1] == 0.0, "{m:?}");
    }

    #[test]
    fn caf_and_smea_survive_the_largest_finite_values() {
        // f64::MAX coordinates would overflow the Gram matrix; it is rescaled first, so the
        // poisoned vectors get no weight and the honest mean comes out (exactly: ±1 cancel).
        let mut v = vec![vec![-1.0, 0.0], vec![1.0, 0.0], vec![-1.0, 0.0], vec![1.0, 0.0], vec![1.0, 0.0]];
        v.extend([vec![f64::MAX, f64::MAX], vec![f64::MAX, -f64::MAX]]);
        let (m, kept) = caf(&v, 2);
        assert!(!kept.contains(&5) && !kept.contains(&6), "{kept:?}");
        assert!(m.iter().all(|x| x.is_finite() && x.abs() < 1.0), "{m:?}");
        let (m, kept) = crate::rules::subsets::smea(&v, 2);
        assert_eq!(kept, vec![0, 1, 2, 3, 4]);
        assert_eq!(m, vec![0.2, 0.0]);
    }

    #[test]
    fn caf_of_identical_vectors_is_that_vector() {
        let v = vec![vec![2.0, 3.0]; 5];
        let (m, kept) = caf(&v, 2);
        assert_eq!(kept, vec![0, 1, 2, 3, 4]);
        assert!((m[0] - 2.0).abs() < 1e-12 && (m[1] - 3.0).abs() < 1e-12, "{m:?}");
    }
}
