//! Byzantine-robust aggregation of n vectors of which up to f may be arbitrary (poisoned
//! gradients, say), plus the attacks used to test the rules. Pure: no I/O, no clocks, no
//! unseeded randomness; every result is bit-identical across runs and thread counts.
//!
//! ```text
//! validate → pre-aggregators (nnm, bucketing, clip, arc), in order → rule → finite check
//! ```
//!
//! The rules whose first pass meets every input value (the average, the trimmed mean, and those
//! that start from distances or norms), alone, skip `validate` and check finiteness on that
//! pass; a bad value gets the same error either way.

pub mod attacks;
mod error;
pub mod linalg;
mod params;
mod pre;
mod rules;

pub use attacks::{ATTACKS, Attack};
pub use error::{Error, Result};
pub use params::Params;
pub use pre::{PRE_AGGREGATORS, Pre};
use rayon::prelude::*;
use rules::smallest;
pub use rules::{
    Aggregate, KrumScore, RULES, Rule, SMEA_MAX_SUBSETS, SMEA_MAX_SUBSETS_INTERACTIVE, Start, binomial,
};

/// Refuses empty input, vectors of different or zero dimension, and non-finite values. The
/// vectors are checked in parallel; the error names the first bad vector, as a scan in order
/// would.
pub fn validate(vectors: &[Vec<f64>]) -> Result<()> {
    let first = vectors.first().ok_or(Error::Empty)?;
    if first.is_empty() {
        return Err(Error::NoCoordinates);
    }
    let check = |(index, v): (usize, &Vec<f64>)| {
        if v.len() != first.len() {
            return Some(Error::DimensionMismatch { index, expected: first.len(), found: v.len() });
        }
        // Blocks are checked without branching (fast), and a bad block is then searched.
        let block = v.chunks(1024).position(|b| !b.iter().fold(true, |ok, x| ok & x.is_finite()))?;
        let (coordinate, &value) = v.iter().enumerate().skip(block * 1024).find(|(_, x)| !x.is_finite())?;
        Some(Error::NonFinite { index, coordinate, value })
    };
    match vectors.par_iter().enumerate().find_map_first(check) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// A rule with its pre-aggregators, ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub pre: Vec<Pre>,
    pub rule: Rule,
    /// Seeds bucketing.
    pub seed: u64,
}

impl Pipeline {
    /// Builds from names and `key=value` parameters; a parameter nobody reads is an error.
    pub fn from_names(rule: &str, pre: &[&str], params: &Params, seed: u64) -> Result<Pipeline> {
        let pre = pre.iter().map(|p| Pre::from_params(p, params)).collect::<Result<Vec<_>>>()?;
        let rule = Rule::from_params(rule, params)?;
        Ok(Pipeline { pre, rule, seed })
    }

    /// How many vectors the rule sees when `n` enter the pre-aggregators.
    pub fn vectors_after_pre(&self, n: usize) -> usize {
        self.pre.iter().fold(n, |n, p| match p {
            Pre::Bucketing { size } => n.div_ceil((*size).max(1)),
            _ => n,
        })
    }

    pub fn new(rule: Rule) -> Pipeline {
        Pipeline { pre: Vec::new(), rule, seed: 0 }
    }

    /// Aggregates `vectors` of which up to `f` may be Byzantine. `kept` indexes the vectors the
    /// rule saw: the inputs, unless bucketing grouped them.
    pub fn aggregate(&self, vectors: &[Vec<f64>], f: usize) -> Result<Aggregate> {
        if let Some(out) = self.aggregate_checking(vectors, f) {
            return Ok(out);
        }
        validate(vectors)?;
        self.rule.check(vectors.len(), f)?;
        let mut current: Option<Vec<Vec<f64>>> = None;
        for p in &self.pre {
            let input = current.as_deref().unwrap_or(vectors);
            // Bucketing leaves fewer vectors: what follows must still have n > 2f.
            self.rule.check(input.len(), f)?;
            current = Some(p.apply(input, f, self.seed));
        }
        let out = self.rule.apply(current.as_deref().unwrap_or(vectors), f)?; // (apply checks n again)
        if out.vector.iter().any(|x| !x.is_finite()) {
            return Err(Error::Overflow("aggregate"));
        }
        Ok(out)
    }

    /// The rules whose first pass meets every input value (`Rule::apply_checking`), with
    /// nothing before them, check finiteness on that pass, which spares the one of `validate`
    /// (the average's whole cost once again). None when that does not apply or anything was wrong;
    /// the full path then says what, with the same error as ever.
    fn aggregate_checking(&self, vectors: &[Vec<f64>], f: usize) -> Option<Aggregate> {
        let d = vectors.first()?.len();
        if !self.pre.is_empty() || d == 0 || vectors.iter().any(|v| v.len() != d) {
            return None;
        }
        self.rule.apply_checking(vectors, f)
    }
}

/// One-call form: `aggregate(&Rule::Median, vectors, f)`.
pub fn aggregate(rule: &Rule, vectors: &[Vec<f64>], f: usize) -> Result<Aggregate> {
    Pipeline::new(rule.clone()).aggregate(vectors, f)
}

#[cfg(test)]
mod tests;
