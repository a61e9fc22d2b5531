//! CAF, the covariance-bound agnostic filter (Diakonikolas-style spectral filtering as used for
//! robust aggregation): down-weight vectors along the direction of largest weighted variance
//! until the remaining weight is n−2f.

use crate::linalg::{centered_gram, huge, top_eigen, weighted_sum};

/// Returns the aggregate and the vectors left with non-zero weight.
///
/// Every step works in n-space: the weighted covariance Σ_i w_i z_i z_iᵀ (z_i the vector minus
/// the weighted mean) has the same non-zero eigenvalues as the n×n matrix √W Z Zᵀ √W, where
/// Z Zᵀ follows from one Gram matrix of the inputs. Its top eigenpair is computed exactly
/// (Jacobi), and the projection of each z_i on the top direction follows from it.
pub fn caf(vectors: &[Vec<f64>], f: usize) -> (Vec<f64>, Vec<usize>) {
    let n = vectors.len();
    // Huge vectors shrink the others to noise in the (rescaled) matrix; once their weight is
    // gone, the matrix is recomputed from the rest, zero in the rows of the dropped.
    let (mut k, mut rescaled) = centered_gram(vectors);
    let mut c = vec![1.0f64; n];
    let target = (n - 2 * f) as f64;
    // Each pass zeroes at least one weight or ends at n−2f, so n passes always suffice.
    for _ in 0..n {
        let total: f64 = c.iter().sum();
        if total <= target {
            break;
        }
        let alive: Vec<usize> = (0..n).filter(|&i| c[i] > 0.0).collect();
        if rescaled && alive.iter().all(|&i| !huge(std::slice::from_ref(&vectors[i]))) {
            let small: Vec<Vec<f64>> = alive.iter().map(|&i| vectors[i].clone()).collect();
            let (g, _) = centered_gram(&small);
            k = vec![vec![0.0; n]; n];
            for (a, &i) in alive.iter().enumerate() {
                for (b, &j) in alive.iter().enumerate() {
                    k[i][j] = g[a][b];
                }
            }
            rescaled = false;
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
        if lambda <= 0.0 {
            break;
        }
        // τ_i = (z_i · v)² with v = Zᵀ √W u / √λ.
        let tau: Vec<f64> = (0..n)
            .map(|i| {
                let p: f64 = (0..n).map(|j| z[i][j] * sw[j] * u[j]).sum();
                p * p / lambda
            })
            .collect();
        let tau_max = (0..n).filter(|&i| c[i] > 0.0).map(|i| tau[i]).fold(0.0f64, f64::max);
        if tau_max <= 0.0 {
            break;
        }
        // c_i ← c_i (1 − α τ_i / τ_max). α = 1 zeroes the worst vector; a smaller α stops the
        // total weight exactly at n−2f when ties (say, symmetric honest vectors) would
        // otherwise remove them all at once.
        let drop: f64 = (0..n).map(|i| c[i] * tau[i] / tau_max).sum();
        let alpha = ((total - target) / drop).min(1.0);
        for i in 0..n {
            c[i] = if alpha == 1.0 && tau[i] >= tau_max {
                0.0
            } else {
                (c[i] * (1.0 - alpha * tau[i] / tau_max)).max(0.0)
            };
        }
    }
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
        // farther from the poisoned mean), so the result is near 0, not exactly 0; the plain
        // mean is 20.
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
