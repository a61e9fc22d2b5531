//! Every way an aggregation can be refused. Messages name what was wrong, so a caller in another
//! language can act on them.

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("no vectors to aggregate")]
    Empty,
    #[error("vectors have no coordinates")]
    NoCoordinates,
    #[error("vector {index} has {found} coordinates, vector 0 has {expected}")]
    DimensionMismatch { index: usize, expected: usize, found: usize },
    #[error("vector {index}, coordinate {coordinate} is {value}: only finite numbers are accepted")]
    NonFinite { index: usize, coordinate: usize, value: f64 },
    #[error("{rule} needs {needs} with f = {f}, but got n = {n} vectors")]
    TooFew { rule: &'static str, needs: String, n: usize, f: usize },
    #[error(
        "{rule}: exact search would visit {subsets} subsets, above the limit of {limit}; to search them all, \
         raise it with the parameter max_subsets={subsets} (phalanx aggregate --param max_subsets={subsets})"
    )]
    TooManySubsets { rule: &'static str, subsets: u128, limit: u128 },
    #[error("unknown {what} {name:?}; known: {known}")]
    Unknown { what: &'static str, name: String, known: String },
    #[error("parameter {key}: {reason}")]
    BadParam { key: String, reason: String },
    #[error("the {0} overflowed f64: the inputs are too large to combine")]
    Overflow(&'static str),
}

pub type Result<T> = std::result::Result<T, Error>;
