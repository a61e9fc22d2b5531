//! Virtual time: events in a queue ordered by (time, insertion), so equal times replay in the
//! same order from the same seed.

use super::*;

pub(super) enum Event {
    /// `from`: the member whose link carried it (None for clients).
    Deliver {
        from: Option<ReplicaId>,
        to: ReplicaId,
        msg: Message,
    },
    Reply {
        from: ReplicaId,
        reply: Signed<Reply>,
    },
    Timer {
        node: ReplicaId,
        timer: Timer,
        generation: u64,
        /// For a faulty member's twin.
        twin: bool,
    },
    ClientSubmit {
        client: usize,
    },
    ClientRetry {
        client: usize,
        nonce: u64,
    },
    ByzTick {
        node: ReplicaId,
    },
    Crash {
        node: ReplicaId,
    },
    Restart {
        node: ReplicaId,
    },
    Partition {
        side: Vec<bool>,
    },
    Heal,
}

pub(super) struct Scheduled {
    pub(super) at: u64,
    pub(super) order: u64,
    pub(super) event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.order) == (o.at, o.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    /// Earliest first out of a max-heap.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.order).cmp(&(self.at, self.order))
    }
}

impl World {
    pub(super) fn push(&mut self, after: u64, event: Event) {
        self.order += 1;
        self.queue.push(Scheduled { at: self.now + after, order: self.order, event });
    }

    pub(super) fn log(&mut self, line: String) {
        if self.verbose {
            self.trace.push(format!("[{:>7}ms] {line}", self.now));
        }
    }
}
