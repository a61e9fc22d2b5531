//! A set that remembers its last `N` insertions: deduplication with bounded memory (evidence
//! reported, reports rejected). Oldest forgotten first; deterministic, so it can live in the
//! replicated state.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, VecDeque};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentSet<T: Ord, const N: usize> {
    set: BTreeSet<T>,
    order: VecDeque<T>,
}

impl<T: Ord, const N: usize> Default for RecentSet<T, N> {
    fn default() -> Self {
        RecentSet { set: BTreeSet::new(), order: VecDeque::new() }
    }
}

impl<T: Ord + Clone, const N: usize> RecentSet<T, N> {
    pub fn contains(&self, x: &T) -> bool {
        self.set.contains(x)
    }

    /// Adds `x`; false if it was already there. Past `N` entries the oldest is forgotten.
    pub fn insert(&mut self, x: T) -> bool {
        if !self.set.insert(x.clone()) {
            return false;
        }
        self.order.push_back(x);
        if self.order.len() > N
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_forgets_the_oldest_past_its_bound() {
        let mut s: RecentSet<u32, 2> = RecentSet::default();
        assert!(s.insert(1) && s.insert(2) && !s.insert(2));
        assert!(s.insert(3));
        assert!(!s.contains(&1) && s.contains(&2) && s.contains(&3));
    }
}
