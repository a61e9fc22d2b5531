//! Quorum arithmetic, derived in one place.

use serde::{Deserialize, Serialize};

/// Sizes for a configuration of `n` members tolerating `f` Byzantine ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quorum {
    pub n: usize,
    pub f: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuorumError {
    #[error("{n} agents cannot tolerate {f} Byzantine faults: BFT needs n >= 3f+1 = {need}")]
    TooFewMembers { n: usize, f: usize, need: usize },
    #[error("a cluster needs at least one member")]
    Empty,
}

impl Quorum {
    pub fn new(n: usize, f: usize) -> Result<Self, QuorumError> {
        if n == 0 {
            return Err(QuorumError::Empty);
        }
        if n < 3 * f + 1 {
            return Err(QuorumError::TooFewMembers { n, f, need: 3 * f + 1 });
        }
        Ok(Quorum { n, f })
    }

    /// The largest f that n members tolerate.
    pub fn max_faults(n: usize) -> usize {
        n.saturating_sub(1) / 3
    }

    /// ⌈(n+f+1)/2⌉ distinct members: any two quorums intersect in at least f+1 members, so in
    /// at least one honest member. Equals 2f+1 when n = 3f+1.
    pub fn quorum(&self) -> usize {
        (self.n + self.f + 1).div_ceil(2)
    }

    /// Matching PREPAREs from distinct backups needed to be prepared: the primary's pre-prepare
    /// stands for its own vote, so one less than a quorum (2f when n = 3f+1).
    pub fn prepares(&self) -> usize {
        self.quorum() - 1
    }

    /// f+1: at least one honest member among them (reply certificates, joining a higher view).
    pub fn weak(&self) -> usize {
        self.f + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_sizes_for_3f_plus_1_2_3() {
        for f in 0..6 {
            let q1 = Quorum::new(3 * f + 1, f).unwrap();
            assert_eq!(q1.quorum(), 2 * f + 1);
            assert_eq!(q1.prepares(), 2 * f);
            let q2 = Quorum::new(3 * f + 2, f).unwrap();
            assert_eq!(q2.quorum(), 2 * f + 2);
            let q3 = Quorum::new(3 * f + 3, f).unwrap();
            assert_eq!(q3.quorum(), 2 * f + 2);
            for q in [q1, q2, q3] {
                // Two quorums intersect in at least f+1 members, and the honest members alone
                // form a quorum.
                assert!(2 * q.quorum() > q.n + q.f, "{q:?}");
                assert!(q.n - q.f >= q.quorum(), "{q:?}");
                assert_eq!(q.weak(), f + 1);
            }
        }
    }

    #[test]
    fn refuses_n_below_3f_plus_1() {
        assert_eq!(Quorum::new(6, 2), Err(QuorumError::TooFewMembers { n: 6, f: 2, need: 7 }));
        assert!(Quorum::new(0, 0).is_err());
        assert_eq!(Quorum::max_faults(7), 2);
        assert_eq!(Quorum::max_faults(13), 4);
        assert_eq!(Quorum::max_faults(1), 0);
    }
}
