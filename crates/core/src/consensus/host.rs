//! Carrying out a replica's effects. The node and the simulator both call [`perform`], so they
//! cannot disagree on the rules that keep a member honest across crashes and epochs: records
//! are persisted before any message of the same round leaves, a new epoch is entered before the
//! round's messages go out (to its voters), and a replaced or cancelled timer never fires.

use super::{Effect, Record, Timer};
use crate::wire::{Message, ReplicaId, Reply, Signed};
use phalanx_crypto::PublicKey;

/// What a host can do; [`perform`] decides when.
pub trait Host {
    /// Writes `records` durably with one write, returning once they are on disk. Called at most
    /// once per round, before anything of the round is sent.
    fn persist(&mut self, records: Vec<Record>);
    /// Sends `msg` to these members.
    fn send(&mut self, to: Vec<ReplicaId>, msg: Message);
    /// Delivers a signed batch reply to its clients.
    fn reply(&mut self, clients: Vec<PublicKey>, reply: Signed<Reply>);
    /// The host's timer generations.
    fn timers(&mut self) -> &mut Timers;
    /// Feeds `Input::Timeout(timer)` back after `after_ms`, if `generation` is still current then.
    fn schedule(&mut self, timer: Timer, generation: u64, after_ms: u64);
    /// Everything the replica reports rather than asks for: executions, checkpoints, state
    /// transfers, views, epochs, evidence and injected faults, in the order they happened (an
    /// epoch first: the host links to its voters before the round's messages leave).
    fn observe(&mut self, event: Effect);
}

/// Carries out one round of effects (what one or more `Replica::handle` calls returned).
/// `broadcast_to` is the replica's `broadcast_targets()` after those calls: the voters of the
/// epoch it is in now.
pub fn perform<H: Host>(host: &mut H, broadcast_to: &[ReplicaId], effects: Vec<Effect>) {
    let mut records = Vec::new();
    let mut rest = Vec::with_capacity(effects.len());
    for e in effects {
        match e {
            Effect::Persist(r) => records.push(r),
            Effect::EpochEntered { .. } => host.observe(e),
            e => rest.push(e),
        }
    }
    if !records.is_empty() {
        host.persist(records);
    }
    for e in rest {
        match e {
            Effect::Send { to, msg } => host.send(vec![to], msg),
            Effect::Broadcast(msg) => host.send(broadcast_to.to_vec(), msg),
            Effect::Reply { clients, reply } => host.reply(clients, reply),
            Effect::SetTimer { timer, after_ms } => {
                let generation = host.timers().arm(timer);
                host.schedule(timer, generation, after_ms);
            }
            Effect::CancelTimer(timer) => host.timers().cancel(timer),
            e => host.observe(e),
        }
    }
}

/// A host's bookkeeping for the replica's timers: setting a timer replaces the pending one of
/// its kind, and cancelling voids it. Every host keeps one (the node, the simulator, a twin), so
/// none can fire a replaced timer another would have voided.
#[derive(Clone, Debug, Default)]
pub struct Timers {
    generations: [u64; Timer::COUNT],
}

impl Timers {
    /// Arms `timer`, voiding the pending one of its kind; the host fires it with this generation.
    pub fn arm(&mut self, timer: Timer) -> u64 {
        let g = &mut self.generations[timer.index()];
        *g += 1;
        *g
    }

    /// Voids the pending `timer`.
    pub fn cancel(&mut self, timer: Timer) {
        self.generations[timer.index()] += 1;
    }

    /// Voids every pending timer (the replica crashed).
    pub fn cancel_all(&mut self) {
        for g in &mut self.generations {
            *g += 1;
        }
    }

    /// Whether a timer armed as `generation` is still the pending one (not replaced or cancelled).
    pub fn is_current(&self, timer: Timer, generation: u64) -> bool {
        self.generations[timer.index()] == generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::{Epoch, Member};
    use crate::wire::Batch;
    use phalanx_crypto::Keypair;

    /// A host that writes down what it was asked to do, in order.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
        timers: Timers,
    }

    impl Host for Recorder {
        fn persist(&mut self, records: Vec<Record>) {
            self.calls.push(format!("persist {}", records.len()));
        }
        fn send(&mut self, to: Vec<ReplicaId>, _msg: Message) {
            self.calls.push(format!("send {to:?}"));
        }
        fn reply(&mut self, _clients: Vec<PublicKey>, _reply: Signed<Reply>) {
            self.calls.push("reply".into());
        }
        fn timers(&mut self) -> &mut Timers {
            &mut self.timers
        }
        fn schedule(&mut self, timer: Timer, generation: u64, after_ms: u64) {
            self.calls.push(format!("schedule {timer:?} #{generation} in {after_ms}"));
        }
        fn observe(&mut self, event: Effect) {
            let what = match event {
                Effect::EpochEntered { epoch } => format!("epoch {}", epoch.number),
                Effect::Stable { seq, .. } => format!("stable {seq}"),
                other => format!("{other:?}"),
            };
            self.calls.push(what);
        }
    }

    fn message() -> Message {
        Message::Batch(7, Batch::default())
    }

    #[test]
    fn records_are_persisted_and_a_new_epoch_entered_before_anything_leaves() {
        let member = Member { name: "a".into(), key: Keypair::from_seed([1; 32]).public() };
        let mut epoch = Epoch::genesis(vec![member], 0);
        epoch.number = 3;
        let effects = vec![
            Effect::Send { to: 2, msg: message() },
            Effect::Persist(Record::ViewChange(1)),
            Effect::Stable { seq: 10, state: phalanx_crypto::digest(b"s") },
            Effect::Broadcast(message()),
            Effect::EpochEntered { epoch },
            Effect::Persist(Record::View(1)),
        ];
        let mut host = Recorder::default();
        perform(&mut host, &[1, 2, 3], effects);
        assert_eq!(host.calls, ["epoch 3", "persist 2", "send [2]", "stable 10", "send [1, 2, 3]"]);
    }

    #[test]
    fn a_replaced_or_cancelled_timer_is_no_longer_current() {
        let mut host = Recorder::default();
        let arm = |after_ms| Effect::SetTimer { timer: Timer::Batch, after_ms };
        perform(&mut host, &[], vec![arm(5), arm(9)]);
        assert_eq!(host.calls, ["schedule Batch #1 in 5", "schedule Batch #2 in 9"]);
        assert!(!host.timers.is_current(Timer::Batch, 1), "the replaced timer would fire");
        assert!(host.timers.is_current(Timer::Batch, 2));
        perform(&mut host, &[], vec![Effect::CancelTimer(Timer::Batch)]);
        assert!(!host.timers.is_current(Timer::Batch, 2), "the cancelled timer would fire");
        assert!(!host.timers.is_current(Timer::Resend, 1), "a timer never armed is not current");
    }

    #[test]
    fn nothing_is_persisted_in_a_round_without_records() {
        let mut host = Recorder::default();
        perform(&mut host, &[4], vec![Effect::Broadcast(message())]);
        assert_eq!(host.calls, ["send [4]"]);
    }
}
