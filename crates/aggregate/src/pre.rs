//! Pre-aggregators: transform the n vectors before a rule sees them. None modifies its input.

use crate::error::{Error, Result};
use crate::linalg::{means_of, norm, pairwise_dist2, scale};
use crate::params::Params;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

pub const PRE_AGGREGATORS: &[&str] = &["nnm", "bucketing", "clip", "arc"];

#[derive(Debug, Clone, PartialEq)]
pub enum Pre {
    /// Nearest-neighbour mixing (Allouah et al. 2023): each vector becomes the mean of its n−f
    /// nearest vectors, itself included.
    Nnm,
    /// Bucketing (Karimireddy et al. 2022): a seeded shuffle, then the mean of each run of
    /// `size` vectors (the last bucket may be smaller): ⌈n / size⌉ vectors.
    Bucketing { size: usize },
    /// Static clipping: vectors longer than `norm` are scaled down to it.
    Clip { norm: f64 },
    /// Adaptive robust clipping (Allouah et al. 2024): the k = ⌊2 f (n−f) / n⌋ longest vectors
    /// are scaled down to the (k+1)-th largest norm.
    Arc,
}

impl Pre {
    pub fn from_params(name: &str, p: &Params) -> Result<Pre> {
        Ok(match name {
            "nnm" => Pre::Nnm,
            "bucketing" => {
                let size = p.usize("bucket_size", 2)?;
                if size == 0 {
                    return Err(crate::params::bad("bucket_size", "must be at least 1".into()));
                }
                Pre::Bucketing { size }
            }
            "clip" => Pre::Clip { norm: p.positive("clip_norm", 2.0)? },
            "arc" => Pre::Arc,
            other => {
                return Err(Error::Unknown {
                    what: "pre-aggregator",
                    name: other.into(),
                    known: PRE_AGGREGATORS.join(", "),
                });
            }
        })
    }

    pub fn apply(&self, vectors: &[Vec<f64>], f: usize, seed: u64) -> Vec<Vec<f64>> {
        let n = vectors.len();
        match self {
            Pre::Nnm => {
                // Every mean at once, from one pass over the input.
                let d = pairwise_dist2(vectors);
                let groups: Vec<Vec<usize>> =
                    d.iter().map(|row| crate::smallest(row, n.saturating_sub(f))).collect();
                means_of(vectors, &groups)
            }
            Pre::Bucketing { size } => {
                let mut order: Vec<usize> = (0..n).collect();
                order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
                means_of(vectors, &order.chunks(*size).collect::<Vec<_>>())
            }
            Pre::Clip { norm: c } => vectors.iter().map(|v| clip(v, *c)).collect(),
            Pre::Arc => {
                let norms: Vec<f64> = vectors.iter().map(|v| norm(v)).collect();
                let k = (2 * f * (n - f.min(n))) / n.max(1);
                if k == 0 || k >= n {
                    return vectors.to_vec();
                }
                let mut sorted = norms.clone();
                sorted.sort_unstable_by(|a, b| b.total_cmp(a));
                let threshold = sorted[k];
                vectors.iter().map(|v| clip(v, threshold)).collect()
            }
        }
    }
}

/// `v` scaled down to norm `c` if it is longer.
fn clip(v: &[f64], c: f64) -> Vec<f64> {
    let n = norm(v);
    if n > c && n > 0.0 { scale(v, c / n) } else { v.to_vec() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::line;

    #[test]
    fn nnm_by_hand() {
        // 0, 1, 2, 9 with f=1: each becomes the mean of its 3 nearest (itself included).
        // 0 → {0,1,2} = 1; 1 → {0,1,2} = 1; 2 → {0,1,2} = 1; 9 → {1,2,9} = 4.
        assert_eq!(Pre::Nnm.apply(&line(&[0.0, 1.0, 2.0, 9.0]), 1, 0), line(&[1.0, 1.0, 1.0, 4.0]));
    }

    #[test]
    fn bucketing_is_seeded_and_averages_buckets() {
        let v = line(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        let a = Pre::Bucketing { size: 2 }.apply(&v, 1, 7);
        assert_eq!(a, Pre::Bucketing { size: 2 }.apply(&v, 1, 7), "same seed, same buckets");
        assert_eq!(a.len(), 3);
        // The buckets partition the inputs: their sizes are 2, 2, 1, so 2a + 2b + c = 15.
        assert!((2.0 * a[0][0] + 2.0 * a[1][0] + a[2][0] - 15.0).abs() < 1e-12);
        // Size 1 only shuffles.
        let mut b: Vec<f64> = Pre::Bucketing { size: 1 }.apply(&v, 1, 3).into_iter().map(|x| x[0]).collect();
        b.sort_by(f64::total_cmp);
        assert_eq!(b, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn static_clipping_by_hand() {
        let v = vec![vec![3.0, 4.0], vec![0.3, 0.4]];
        let out = Pre::Clip { norm: 1.0 }.apply(&v, 0, 0);
        assert!((out[0][0] - 0.6).abs() < 1e-15 && (out[0][1] - 0.8).abs() < 1e-15, "{out:?}");
        assert_eq!(out[1], v[1], "short vectors are untouched");
    }

    #[test]
    fn arc_clips_the_k_longest_to_the_next_norm() {
        // n=5, f=1: k = ⌊2·1·4/5⌋ = 1; the longest (norm 100) is clipped to the 2nd norm, 4.
        let v = line(&[1.0, -2.0, 3.0, -4.0, 100.0]);
        assert_eq!(Pre::Arc.apply(&v, 1, 0), line(&[1.0, -2.0, 3.0, -4.0, 4.0]));
        // f=0 clips nothing.
        assert_eq!(Pre::Arc.apply(&v, 0, 0), v);
    }
}
