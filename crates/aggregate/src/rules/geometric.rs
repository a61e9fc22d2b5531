//! Rules that move a point towards the inputs: the geometric median (smoothed Weiszfeld) and
//! centered clipping.

use crate::linalg::{dist2, step_towards, step_towards_and_dist2, weighted_sum, weighted_sum_and_dist2};

/// Smoothed Weiszfeld (Pillutla et al., RFA): z ← Σ β_i x_i / Σ β_i with β_i = 1 / max(ν, ‖x_i − z‖),
/// from `start` (`distances`: the vectors' squared distances to it), until a step moves z by at
/// most `tolerance` × max(1, ‖z‖) or after `iterations`. Each step but a last one makes the next
/// point and measures the vectors against it in one pass over the input.
pub fn geometric_median(
    vectors: &[Vec<f64>],
    start: Vec<f64>,
    distances: Vec<f64>,
    iterations: usize,
    tolerance: f64,
    nu: f64,
) -> Vec<f64> {
    let (mut z, mut distances) = (start, distances);
    for step in 0..iterations {
        let betas: Vec<f64> = distances.iter().map(|d| 1.0 / d.sqrt().max(nu)).collect();
        let total: f64 = betas.iter().sum();
        if total == 0.0 || !total.is_finite() {
            break;
        }
        let items: Vec<(usize, f64)> = betas.iter().enumerate().map(|(i, b)| (i, b / total)).collect();
        let next = if step + 1 == iterations {
            weighted_sum(vectors, &items)
        } else {
            let (next, to_next) = weighted_sum_and_dist2(vectors, &items);
            distances = to_next;
            next
        };
        let moved = dist2(&next, &z).sqrt();
        let size = next.iter().map(|x| x * x).sum::<f64>().sqrt().max(1.0);
        z = next;
        if moved <= tolerance * size {
            break;
        }
    }
    z
}

/// Centered clipping (Karimireddy et al. 2021): v ← v + (1/n) Σ (x_i − v) · min(1, τ / ‖x_i − v‖),
/// `iterations` times from `start` (`distances`: the vectors' squared distances to it). Each
/// step but the last also measures the vectors against where it lands, in the same pass.
pub fn centered_clipping(
    vectors: &[Vec<f64>],
    start: Vec<f64>,
    distances: Vec<f64>,
    radius: f64,
    iterations: usize,
) -> Vec<f64> {
    let n = vectors.len() as f64;
    let (mut v, mut distances) = (start, distances);
    for step in 0..iterations {
        let c: Vec<(usize, f64)> = distances
            .iter()
            .map(|d| {
                let d = d.sqrt();
                (if d > radius { radius / d } else { 1.0 }) / n
            })
            .enumerate()
            .collect();
        if step + 1 == iterations {
            return step_towards(vectors, &c, &v);
        }
        (v, distances) = step_towards_and_dist2(vectors, &c, &v);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::dist2_to_each;

    /// The rules from a start, the distances to it measured here.
    fn gm(v: &[Vec<f64>], start: Vec<f64>, iterations: usize, tolerance: f64, nu: f64) -> Vec<f64> {
        let distances = dist2_to_each(v, &start);
        geometric_median(v, start, distances, iterations, tolerance, nu)
    }

    fn cc(v: &[Vec<f64>], start: Vec<f64>, radius: f64, iterations: usize) -> Vec<f64> {
        let distances = dist2_to_each(v, &start);
        centered_clipping(v, start, distances, radius, iterations)
    }

    fn same(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits())
    }

    #[test]
    fn geometric_median_of_a_triangle_vertex_case() {
        // For (0,0), (1,0), (0,1) and a far outlier (100,100) the geometric median stays near
        // the cluster: it is not pulled a quarter of the way to the outlier like the mean is.
        let v = vec![vec![0.0, 0.0], vec![1.0, 0.0], vec![0.0, 1.0], vec![100.0, 100.0]];
        let z = gm(&v, vec![0.0, 0.0], 1000, 1e-12, 1e-9);
        assert!(z[0] < 0.6 && z[1] < 0.6, "{z:?}");
        // Collinear points 0, 1, 10: the geometric median is the median, 1.
        let z = gm(&[vec![0.0], vec![1.0], vec![10.0]], vec![5.0], 1000, 1e-14, 1e-12);
        assert!((z[0] - 1.0).abs() < 1e-6, "{z:?}");
    }

    #[test]
    fn each_step_has_the_bits_of_two_passes() {
        // The loop as first written: distances to z, then the weighted sum, each its own pass.
        fn two_passes(vectors: &[Vec<f64>], mut z: Vec<f64>, iterations: usize) -> Vec<f64> {
            for _ in 0..iterations {
                let betas: Vec<f64> =
                    dist2_to_each(vectors, &z).into_iter().map(|d| 1.0 / d.sqrt().max(1e-6)).collect();
                let total: f64 = betas.iter().sum();
                let items: Vec<(usize, f64)> =
                    betas.iter().enumerate().map(|(i, b)| (i, b / total)).collect();
                z = weighted_sum(vectors, &items);
            }
            z
        }
        let d = 40_000;
        let v: Vec<Vec<f64>> =
            (0..9).map(|i| (0..d).map(|k| ((i * d + k) as f64 * 0.61).sin()).collect()).collect();
        for iterations in [0, 1, 2, 5] {
            let fused = gm(&v, vec![0.25; d], iterations, 0.0, 1e-6);
            let reference = two_passes(&v, vec![0.25; d], iterations);
            assert!(same(&fused, &reference), "{iterations}");
        }
    }

    #[test]
    fn one_weiszfeld_step_by_hand() {
        // From z = 0 with points 1 and 3 (in 1-d): β = 1/1 and 1/3 → z = (1·1 + 3·1/3)/(4/3) = 1.5.
        let z = gm(&[vec![1.0], vec![3.0]], vec![0.0], 1, 0.0, 1e-9);
        assert!((z[0] - 1.5).abs() < 1e-12);
    }

    #[test]
    fn each_clipping_step_has_the_bits_of_two_passes() {
        // The loop as first written: distances to v, then the step, each its own pass.
        fn two_passes(vectors: &[Vec<f64>], mut v: Vec<f64>, radius: f64, iterations: usize) -> Vec<f64> {
            let n = vectors.len() as f64;
            for _ in 0..iterations {
                let c: Vec<(usize, f64)> = dist2_to_each(vectors, &v)
                    .into_iter()
                    .map(|d| (if d.sqrt() > radius { radius / d.sqrt() } else { 1.0 }) / n)
                    .enumerate()
                    .collect();
                v = step_towards(vectors, &c, &v);
            }
            v
        }
        let d = 40_000;
        let v: Vec<Vec<f64>> =
            (0..9).map(|i| (0..d).map(|k| ((i * d + k) as f64 * 0.61).sin()).collect()).collect();
        for iterations in [0, 1, 2, 5] {
            for radius in [1.0, 1e9] {
                let fused = cc(&v, vec![0.25; d], radius, iterations);
                let reference = two_passes(&v, vec![0.25; d], radius, iterations);
                assert!(same(&fused, &reference), "{iterations} {radius}");
            }
        }
    }

    #[test]
    fn centered_clipping_by_hand() {
        // From 0 with radius 1: x = 0.5 moves fully (0.5), x = 4 is clipped to 1; v = (0.5 + 1)/2.
        let v = cc(&[vec![0.5], vec![4.0]], vec![0.0], 1.0, 1);
        assert_eq!(v, vec![0.75]);
        // A huge radius makes one step the mean.
        let v = cc(&[vec![1.0], vec![5.0]], vec![0.0], 1e9, 1);
        assert_eq!(v, vec![3.0]);
    }
}
