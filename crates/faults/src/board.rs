//! The blackboard colluding faulty agents share: they see every message any of them sees and
//! coordinate on it, as real attackers would.

use phalanx_core::wire::{Message, ReplicaId};
use phalanx_crypto::Digest;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Messages the colluders remember between them, at most.
pub(crate) const SHARED_MEMORY: usize = 512;

/// What colluding faulty agents know: for each (view, seq) the two digests their primary
/// proposed to the two halves of the honest agents, who they are, and which proposals of theirs
/// they withhold.
#[derive(Default)]
pub struct Blackboard {
    pub split: BTreeMap<(u64, u64), (Digest, Digest)>,
    /// The faulty agents (they see each other's messages and coordinate).
    pub colluders: BTreeSet<ReplicaId>,
    /// (view, seq) of proposals a colluding primary showed too few honest backups to prepare.
    pub withheld: BTreeSet<(u64, u64)>,
    /// The latest messages any colluder received or sent (for `chaos`, which replays and mutates
    /// them).
    pub seen: VecDeque<Message>,
}

impl Blackboard {
    /// Remembers a message a colluder saw, forgetting the oldest beyond the shared memory.
    pub fn share(&mut self, m: &Message) {
        if self.seen.len() >= SHARED_MEMORY {
            self.seen.pop_front();
        }
        self.seen.push_back(m.clone());
    }
}
