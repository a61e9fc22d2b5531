//! The seeded fault plan: a sequence of episodes, each a fault held for a while and then healed,
//! with calm between them. The same seed, n and f give the same plan; the processes' timing
//! is the operating system's, so a run is reproducible in its faults, not in its interleaving.

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` these members, restart them when the episode ends.
    Kill(Vec<usize>),
    /// SIGSTOP these members (a long pause: GC, a frozen VM), SIGCONT at the end.
    Pause(Vec<usize>),
    /// `kill -9` one member, damage its journal, restart it: it must refuse the damaged file
    /// with an error and leave it as it was; then the journal as the crash left it is put back.
    CorruptJournal { member: usize, damage: Damage },
    /// These members cannot reach the rest (at most f of them), nor be reached.
    Isolate { members: Vec<usize>, stall: bool },
    /// Two halves that cannot reach each other: neither holds a quorum.
    Halves { side: Vec<usize>, stall: bool },
    /// Two halves that cannot reach each other, and one member that reaches both.
    Bridge { side: Vec<usize>, bridge: usize },
    /// Every link held up by its own delay, up to this many milliseconds.
    Latency { max_ms: u64 },
    /// Every link into and out of one member slowed by this much.
    SlowMember { member: usize, delay_ms: u64 },
    /// Some links flip a bit in one chunk of this many.
    CorruptLinks { links: Vec<(usize, usize)>, one_in: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// Cut to this fraction (per mille) of its length.
    Truncate(u32),
    /// Flip this many random bytes.
    Flip(u32),
}

impl Fault {
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill(_) => "kill",
            Fault::Pause(_) => "pause",
            Fault::CorruptJournal { .. } => "corrupt-journal",
            Fault::Isolate { .. } => "isolate",
            Fault::Halves { .. } => "halves",
            Fault::Bridge { .. } => "bridge",
            Fault::Latency { .. } => "latency",
            Fault::SlowMember { .. } => "slow-member",
            Fault::CorruptLinks { .. } => "corrupt-links",
        }
    }

    #[cfg(test)]
    pub const KINDS: [&'static str; 9] = [
        "kill",
        "pause",
        "corrupt-journal",
        "isolate",
        "halves",
        "bridge",
        "latency",
        "slow-member",
        "corrupt-links",
    ];
}

#[derive(Clone, Debug)]
pub struct Episode {
    pub fault: Fault,
    /// How long the fault is held.
    pub hold: Duration,
    /// Calm after it heals, before the next one.
    pub calm: Duration,
}

/// A generator of episodes: call `next` for as long as the run lasts.
pub struct Plan {
    rng: ChaCha8Rng,
    n: usize,
    f: usize,
}

impl Plan {
    pub fn new(seed: u64, n: usize, f: usize) -> Self {
        Plan { rng: ChaCha8Rng::seed_from_u64(seed), n, f }
    }

    fn some(&mut self, max: usize) -> Vec<usize> {
        let k = self.rng.random_range(1..=max.max(1));
        let mut all: Vec<usize> = (0..self.n).collect();
        all.shuffle(&mut self.rng);
        all.truncate(k);
        all.sort();
        all
    }

    fn half(&mut self) -> Vec<usize> {
        let mut all: Vec<usize> = (0..self.n).collect();
        all.shuffle(&mut self.rng);
        all.truncate(self.n / 2);
        all.sort();
        all
    }

    pub fn next_episode(&mut self) -> Episode {
        let fault = match self.rng.random_range(0..9) {
            0 => Fault::Kill(self.some(self.f)),
            1 => Fault::Pause(self.some(self.f)),
            2 => {
                let member = self.rng.random_range(0..self.n);
                let damage = if self.rng.random_bool(0.5) {
                    Damage::Truncate(self.rng.random_range(0..1000))
                } else {
                    Damage::Flip(self.rng.random_range(1..=16))
                };
                Fault::CorruptJournal { member, damage }
            }
            3 => {
                let stall = self.rng.random_bool(0.5);
                Fault::Isolate { members: self.some(self.f), stall }
            }
            4 => {
                let stall = self.rng.random_bool(0.5);
                Fault::Halves { side: self.half(), stall }
            }
            5 => {
                let mut all: Vec<usize> = (0..self.n).collect();
                all.shuffle(&mut self.rng);
                let bridge = all.pop().unwrap_or(0);
                all.truncate((self.n - 1) / 2);
                all.sort();
                Fault::Bridge { side: all, bridge }
            }
            6 => Fault::Latency { max_ms: self.rng.random_range(20..=300) },
            7 => Fault::SlowMember {
                member: self.rng.random_range(0..self.n),
                delay_ms: self.rng.random_range(100..=1000),
            },
            _ => {
                let mut links = Vec::new();
                for _ in 0..self.rng.random_range(1..=self.n) {
                    let a = self.rng.random_range(0..self.n);
                    let b = (a + self.rng.random_range(1..self.n)) % self.n;
                    links.push((a, b));
                }
                Fault::CorruptLinks { links, one_in: self.rng.random_range(2..=50) }
            }
        };
        let hold = Duration::from_millis(self.rng.random_range(1_000..=5_000));
        let calm = Duration::from_millis(self.rng.random_range(1_500..=4_000));
        Episode { fault, hold, calm }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_plan_and_no_fault_takes_more_than_f_members() {
        let (n, f) = (7, 2);
        let mut a = Plan::new(3, n, f);
        let mut b = Plan::new(3, n, f);
        let mut kinds = std::collections::BTreeSet::new();
        for _ in 0..500 {
            let (x, y) = (a.next_episode(), b.next_episode());
            assert_eq!(x.fault, y.fault);
            kinds.insert(x.fault.kind());
            match &x.fault {
                Fault::Kill(m) | Fault::Pause(m) | Fault::Isolate { members: m, .. } => {
                    assert!(!m.is_empty() && m.len() <= f)
                }
                Fault::Halves { side, .. } => assert!(side.len() <= n / 2 && n - side.len() < 2 * f + 1),
                Fault::Bridge { side, bridge } => assert!(!side.contains(bridge)),
                Fault::CorruptLinks { links, .. } => assert!(links.iter().all(|(a, b)| a != b)),
                _ => {}
            }
        }
        assert_eq!(kinds.len(), Fault::KINDS.len(), "every kind of fault is drawn: {kinds:?}");
    }
}
