//! The aggregation rules by name, their parameters and what each needs of n and f.

mod coordinate;
mod distance;
mod geometric;
mod median;
mod spectral;
mod subsets;

pub use distance::{KrumScore, smallest};
pub use subsets::binomial;

use crate::error::{Error, Result};
use crate::linalg::{dist2_to_each, mean, mean_of, pairwise_dist2};
use crate::params::{Params, bad};

pub const RULES: &[&str] = &[
    "average",
    "median",
    "trmean",
    "geomed",
    "krum",
    "multikrum",
    "cc",
    "mda",
    "monna",
    "meamed",
    "caf",
    "smea",
    "cge",
];

/// SMEA's default bound on the subsets it searches. Inside consensus every replica pays for the
/// search within one batch, so the bound stays small; `phalanx aggregate` allows more
/// (`SMEA_MAX_SUBSETS_INTERACTIVE`).
pub const SMEA_MAX_SUBSETS: usize = 20_000;
/// What one person waiting at a command line can afford: C(25, 6) = 177,100 subsets, which the
/// reference implementation computes in seconds, fits.
pub const SMEA_MAX_SUBSETS_INTERACTIVE: u128 = 250_000;

/// The result of a rule that checks finiteness as it goes (None when it met a value that is not
/// finite), as an error that names what is wrong with the input.
fn checked(rule: &'static str, vectors: &[Vec<f64>], out: Option<Vec<f64>>) -> Result<Vec<f64>> {
    out.ok_or_else(|| crate::validate(vectors).err().unwrap_or(Error::Overflow(rule)))
}

/// The coordinate-wise median, or what is wrong with the input: the median rule and the start
/// of geomed and centered clipping.
fn checked_median(vectors: &[Vec<f64>]) -> Result<Vec<f64>> {
    checked("median", vectors, median::median(vectors))
}

/// Where centered clipping starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    Zero,
    Average,
    Median,
    /// A given point, say the previous round's aggregate.
    Point(Vec<f64>),
}

impl Start {
    /// The starting point for these vectors.
    fn point(&self, vectors: &[Vec<f64>]) -> Result<Vec<f64>> {
        let d = vectors[0].len();
        Ok(match self {
            Start::Zero => vec![0.0; d],
            Start::Average => mean(vectors),
            Start::Median => checked_median(vectors)?,
            Start::Point(p) if p.len() == d => p.clone(),
            Start::Point(p) => {
                return Err(bad("start", format!("has {} coordinates, the vectors {d}", p.len())));
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    Average,
    Median,
    TrimmedMean,
    GeometricMedian { iterations: usize, tolerance: f64, nu: f64 },
    Krum { score: KrumScore },
    MultiKrum { score: KrumScore, m: Option<usize> },
    CenteredClipping { radius: f64, iterations: usize, start: Start },
    Mda { max_subsets: u128 },
    Monna { pivot: usize },
    Meamed,
    Caf,
    Smea { max_subsets: u128 },
    Cge { sum: bool },
}

/// What a rule returns: the aggregate and, for rules that select vectors, which ones they used.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub vector: Vec<f64>,
    pub kept: Option<Vec<usize>>,
}

fn score(p: &Params) -> Result<KrumScore> {
    match p.str("score").unwrap_or("original") {
        "original" => Ok(KrumScore::Original),
        "mean" => Ok(KrumScore::Mean),
        other => Err(bad(
            "score",
            format!("{other:?}: use original (sum over n−f−2 nearest) or mean (mean over n−f−1)"),
        )),
    }
}

impl Rule {
    /// The rule called `name`, its parameters read from `p` (defaults documented in docs/aggregation.md).
    pub fn from_params(name: &str, p: &Params) -> Result<Rule> {
        Ok(match name {
            "average" => Rule::Average,
            "median" => Rule::Median,
            "trmean" => Rule::TrimmedMean,
            "geomed" => Rule::GeometricMedian {
                iterations: p.usize("iterations", 100)?,
                tolerance: p.f64("tolerance", 1e-8)?,
                nu: p.positive("nu", 1e-6)?,
            },
            "krum" => Rule::Krum { score: score(p)? },
            "multikrum" => Rule::MultiKrum { score: score(p)?, m: p.opt_usize("m")? },
            "cc" => Rule::CenteredClipping {
                radius: p.positive("radius", 1.0)?,
                iterations: p.usize("iterations", 3)?,
                start: match p.str("start").unwrap_or("median") {
                    "zero" => Start::Zero,
                    "average" => Start::Average,
                    "median" => Start::Median,
                    other => return Err(bad("start", format!("{other:?}: use zero, average or median"))),
                },
            },
            "mda" => Rule::Mda { max_subsets: p.usize("max_subsets", 1_000_000)? as u128 },
            "monna" => Rule::Monna { pivot: p.usize("pivot", 0)? },
            "meamed" => Rule::Meamed,
            "caf" => Rule::Caf,
            "smea" => Rule::Smea { max_subsets: p.usize("max_subsets", SMEA_MAX_SUBSETS)? as u128 },
            "cge" => Rule::Cge { sum: p.bool("sum", false)? },
            other => {
                return Err(Error::Unknown { what: "rule", name: other.into(), known: RULES.join(", ") });
            }
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Rule::Average => "average",
            Rule::Median => "median",
            Rule::TrimmedMean => "trmean",
            Rule::GeometricMedian { .. } => "geomed",
            Rule::Krum { .. } => "krum",
            Rule::MultiKrum { .. } => "multikrum",
            Rule::CenteredClipping { .. } => "cc",
            Rule::Mda { .. } => "mda",
            Rule::Monna { .. } => "monna",
            Rule::Meamed => "meamed",
            Rule::Caf => "caf",
            Rule::Smea { .. } => "smea",
            Rule::Cge { .. } => "cge",
        }
    }

    /// Refuses an (n, f) the rule cannot work with, saying what it needs.
    pub fn check(&self, n: usize, f: usize) -> Result<()> {
        let too_few = |needs: String| Err(Error::TooFew { rule: self.name(), needs, n, f });
        if n <= 2 * f {
            return too_few("n > 2f".into());
        }
        match self {
            Rule::Krum { score } | Rule::MultiKrum { score, .. } if score.neighbours(n, f) == 0 => {
                let least = if *score == KrumScore::Original {
                    "n ≥ f + 3 (score=original)"
                } else {
                    "n ≥ f + 2"
                };
                too_few(least.into())
            }
            Rule::MultiKrum { m: Some(m), .. } if *m == 0 || *m > n => {
                Err(bad("m", format!("must be between 1 and n = {n}, got {m}")))
            }
            Rule::Monna { pivot } if *pivot >= n => {
                Err(bad("pivot", format!("must be below n = {n}, got {pivot}")))
            }
            Rule::Mda { max_subsets } | Rule::Smea { max_subsets } if binomial(n, f) > *max_subsets => {
                Err(Error::TooManySubsets { rule: self.name(), subsets: binomial(n, f), limit: *max_subsets })
            }
            _ => Ok(()),
        }
    }

    /// For the rules whose first pass meets every input value (the average, the median, the
    /// trimmed mean, those that start from distances or norms, and those that move a point from
    /// a start, which measure every vector against it first), the aggregate of vectors of one dimension
    /// not yet checked for finiteness: None if the rule is another, or that pass met a value
    /// that is not finite (or overflowed on finite ones: the caller then checks the input and
    /// applies the rule as ever).
    pub fn apply_checking(&self, vectors: &[Vec<f64>], f: usize) -> Option<Aggregate> {
        self.check(vectors.len(), f).ok()?;
        // The median and the trimmed mean check each value as they copy it. Each of the other
        // sums runs over every coordinate of its vectors, with terms w·x (w > 0), (x − y)² or
        // x²; with every vector in some sum, all are finite only if the input is.
        let finite = |sums: &[f64]| sums.iter().all(|x| x.is_finite()).then_some(());
        let out = match self {
            Rule::Average => Aggregate { vector: mean(vectors), kept: None },
            Rule::Median => Aggregate { vector: median::median(vectors)?, kept: None },
            Rule::TrimmedMean => Aggregate { vector: coordinate::trimmed_mean(vectors, f)?, kept: None },
            Rule::Krum { .. } | Rule::MultiKrum { .. } | Rule::Mda { .. } => {
                let d = pairwise_dist2(vectors);
                d.iter().try_for_each(|row| finite(row))?;
                self.finish_by_distances(vectors, f, &d)
            }
            Rule::GeometricMedian { .. } | Rule::CenteredClipping { .. } => {
                // Finite distances to a start mean finite vectors, whatever the start.
                let start = self.start(vectors).ok()?;
                let distances = dist2_to_each(vectors, &start);
                finite(&distances)?;
                Aggregate { vector: self.finish_from_start(vectors, start, distances), kept: None }
            }
            Rule::Monna { pivot } => {
                let distances = dist2_to_each(vectors, &vectors[*pivot]);
                finite(&distances)?;
                self.finish_by_distances(vectors, f, &[distances])
            }
            Rule::Cge { .. } => {
                let norms = distance::norms(vectors);
                finite(&norms)?;
                self.finish_by_distances(vectors, f, &[norms])
            }
            _ => return None,
        };
        finite(&out.vector)?;
        Some(out)
    }

    /// Where the rules that move a point start: the geometric median from the coordinate-wise
    /// median, centered clipping from its `start`.
    fn start(&self, vectors: &[Vec<f64>]) -> Result<Vec<f64>> {
        match self {
            Rule::GeometricMedian { .. } => checked_median(vectors),
            Rule::CenteredClipping { start, .. } => start.point(vectors),
            _ => unreachable!("{} does not move a point", self.name()),
        }
    }

    /// Finishes the rules that move a point, from their start and the squared distances of
    /// the vectors to it.
    fn finish_from_start(&self, vectors: &[Vec<f64>], start: Vec<f64>, distances: Vec<f64>) -> Vec<f64> {
        match self {
            Rule::GeometricMedian { iterations, tolerance, nu } => {
                geometric::geometric_median(vectors, start, distances, *iterations, *tolerance, *nu)
            }
            Rule::CenteredClipping { radius, iterations, .. } => {
                geometric::centered_clipping(vectors, start, distances, *radius, *iterations)
            }
            _ => unreachable!("{} does not move a point", self.name()),
        }
    }

    /// Finishes the rules that start from distances: all pairs' (Krum, Multi-Krum, MDA), or
    /// one row of them, to MoNNA's pivot or CGE's norms.
    fn finish_by_distances(&self, vectors: &[Vec<f64>], f: usize, d: &[Vec<f64>]) -> Aggregate {
        let keep = vectors.len() - f;
        let (vector, kept) = match self {
            Rule::Krum { score } => {
                let best = distance::krum_order(d, f, *score)[0];
                (vectors[best].clone(), vec![best])
            }
            Rule::MultiKrum { score, m } => {
                let mut kept = distance::krum_order(d, f, *score);
                kept.truncate(m.unwrap_or(keep));
                (mean_of(vectors, &kept), kept)
            }
            Rule::Mda { .. } => subsets::mda(vectors, f, d),
            Rule::Monna { .. } => distance::monna(vectors, f, &d[0]),
            Rule::Cge { sum } => distance::cge(vectors, f, *sum, &d[0]),
            _ => unreachable!("{} does not start from distances", self.name()),
        };
        Aggregate { vector, kept: Some(kept) }
    }

    /// Applies the rule to vectors already validated (same dimension, finite, n > 2f).
    pub fn apply(&self, vectors: &[Vec<f64>], f: usize) -> Result<Aggregate> {
        self.check(vectors.len(), f)?;
        let plain = |vector| Ok(Aggregate { vector, kept: None });
        let chosen = |(vector, kept)| Ok(Aggregate { vector, kept: Some(kept) });
        match self {
            Rule::Average => plain(mean(vectors)),
            Rule::Median => plain(checked_median(vectors)?),
            Rule::TrimmedMean => {
                plain(checked("trimmed mean", vectors, coordinate::trimmed_mean(vectors, f))?)
            }
            Rule::Meamed => plain(coordinate::meamed(vectors, f)),
            Rule::GeometricMedian { .. } | Rule::CenteredClipping { .. } => {
                let start = self.start(vectors)?;
                let distances = dist2_to_each(vectors, &start);
                plain(self.finish_from_start(vectors, start, distances))
            }
            Rule::Krum { .. } | Rule::MultiKrum { .. } | Rule::Mda { .. } => {
                Ok(self.finish_by_distances(vectors, f, &pairwise_dist2(vectors)))
            }
            Rule::Monna { pivot } => {
                Ok(self.finish_by_distances(vectors, f, &[dist2_to_each(vectors, &vectors[*pivot])]))
            }
            Rule::Cge { .. } => Ok(self.finish_by_distances(vectors, f, &[distance::norms(vectors)])),
            Rule::Smea { .. } => chosen(subsets::smea(vectors, f)),
            // Every weight gone would mean the arithmetic broke down: refuse, never return 0.
            Rule::Caf => match spectral::caf(vectors, f) {
                (_, kept) if kept.is_empty() => Err(Error::Overflow("caf weights")),
                result => chosen(result),
            },
        }
    }
}
