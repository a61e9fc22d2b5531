//! Multinomial logistic regression: 10 × 64 weights and 10 biases in one flat parameter vector,
//! the vector the agents exchange.

use super::data::{CLASSES, FEATURES, Sample};

pub const PARAMETERS: usize = CLASSES * (FEATURES + 1);

fn probabilities(theta: &[f64], x: &[f64; FEATURES]) -> [f64; CLASSES] {
    let mut z = [0.0; CLASSES];
    for (c, zc) in z.iter_mut().enumerate() {
        let w = &theta[c * FEATURES..(c + 1) * FEATURES];
        *zc = theta[CLASSES * FEATURES + c] + w.iter().zip(x).map(|(a, b)| a * b).sum::<f64>();
    }
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = z.iter().map(|v| (v - max).exp()).sum();
    z.map(|v| (v - max).exp() / total)
}

/// The mean cross-entropy gradient over `batch`, plus L2 regularisation.
pub fn gradient(theta: &[f64], batch: &[&Sample], l2: f64) -> Vec<f64> {
    let mut g: Vec<f64> = theta.iter().map(|t| l2 * t).collect();
    let w = 1.0 / batch.len().max(1) as f64;
    for s in batch {
        let p = probabilities(theta, &s.x);
        for c in 0..CLASSES {
            let err = w * (p[c] - f64::from(u8::from(c == s.y)));
            for (gk, xk) in g[c * FEATURES..(c + 1) * FEATURES].iter_mut().zip(&s.x) {
                *gk += err * xk;
            }
            g[CLASSES * FEATURES + c] += err;
        }
    }
    g
}

/// Share of `samples` classified correctly.
pub fn accuracy(theta: &[f64], samples: &[Sample]) -> f64 {
    let right = samples
        .iter()
        .filter(|s| {
            let p = probabilities(theta, &s.x);
            (0..CLASSES).max_by(|&a, &b| p[a].total_cmp(&p[b])) == Some(s.y)
        })
        .count();
    right as f64 / samples.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_matches_finite_differences() {
        let s = Sample { x: std::array::from_fn(|k| (k % 7) as f64 / 7.0), y: 3 };
        let theta: Vec<f64> = (0..PARAMETERS).map(|k| ((k * 37) % 11) as f64 / 50.0 - 0.1).collect();
        let loss = |t: &[f64]| -probabilities(t, &s.x)[s.y].ln();
        let g = gradient(&theta, &[&s], 0.0);
        for k in [0, 200, 3 * FEATURES + 5, CLASSES * FEATURES + 3, PARAMETERS - 1] {
            let mut up = theta.clone();
            up[k] += 1e-6;
            let mut down = theta.clone();
            down[k] -= 1e-6;
            let numeric = (loss(&up) - loss(&down)) / 2e-6;
            assert!((numeric - g[k]).abs() < 1e-6, "parameter {k}: {numeric} vs {}", g[k]);
        }
    }
}
