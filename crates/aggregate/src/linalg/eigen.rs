//! The top eigenpair of a small symmetric matrix (n×n, n the number of vectors).

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
                // Rows p and q at once, in place (p < q).
                let (above, from_q) = a.split_at_mut(q);
                for (apk, aqk) in above[p].iter_mut().zip(from_q[0].iter_mut()) {
                    (*apk, *aqk) = (c * *apk - s * *aqk, s * *apk + c * *aqk);
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
}
