//! The 8×8 handwritten digits (1,797 samples, 64 pixels in 0..16, 10 classes), shipped inside
//! smartcore, split into a test set and one training shard per agent.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

pub const FEATURES: usize = 64;
pub const CLASSES: usize = 10;

#[derive(Clone)]
pub struct Sample {
    /// Pixels scaled to [0, 1].
    pub x: [f64; FEATURES],
    pub y: usize,
}

pub struct Split {
    pub shards: Vec<Vec<Sample>>,
    pub test: Vec<Sample>,
}

pub fn digits() -> Vec<Sample> {
    let d = smartcore::dataset::digits::load_dataset();
    (0..d.num_samples)
        .map(|i| {
            let mut x = [0.0; FEATURES];
            for (k, v) in x.iter_mut().enumerate() {
                *v = f64::from(d.data[i * d.num_features + k]) / 16.0;
            }
            Sample { x, y: d.target[i] as usize }
        })
        .collect()
}

/// A fifth of the samples (seeded shuffle) is held out for testing. The rest goes to the
/// agents: IID, in equal random shards; non-IID, sorted by label and cut into contiguous shards,
/// so each agent sees mostly one or two digits.
pub fn split(samples: Vec<Sample>, agents: usize, non_iid: bool, seed: u64) -> Split {
    let mut samples = samples;
    samples.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let test = samples.split_off(samples.len() * 4 / 5);
    if non_iid {
        samples.sort_by_key(|s| s.y);
    }
    let per = samples.len() / agents;
    let shards = (0..agents).map(|a| samples[a * per..(a + 1) * per].to_vec()).collect();
    Split { shards, test }
}
