//! Reconfiguration end to end on an in-memory network: an operator-signed `UpdateQuorum` is
//! committed, the new epoch starts at the next checkpoint boundary, the joiner installs the
//! boundary state before it votes, the removed member stops voting, and every voter of the new
//! epoch keeps committing to the same state.

mod common;

use common::Fixture;
use phalanx_app::Replica;
use phalanx_core::consensus::{DirectVerifier, Effect, Input, Timer};
use phalanx_core::wire::{
    ClientRequest, Joiner, Message, Operation, OperatorAction, Outcome, RejectReason, ReplicaId, RequestBody,
};
use phalanx_crypto::Keypair;
use std::collections::{BTreeMap, VecDeque};

/// Replicas by id, a FIFO of messages and a clock; timers fire when the network is quiet.
struct Net {
    replicas: BTreeMap<ReplicaId, Replica>,
    /// Where each replica's node id lives while it is a standby joiner.
    queue: VecDeque<(ReplicaId, ReplicaId, Message)>,
    timers: BTreeMap<(ReplicaId, Timer), u64>,
    now: u64,
    replies: Vec<(u64, Outcome)>,
}

impl Net {
    fn apply(&mut self, node: ReplicaId, effects: Vec<Effect>) {
        let voters = self.replicas[&node].epoch().voters.clone();
        for e in effects {
            match e {
                Effect::Broadcast(m) => {
                    for v in &voters {
                        if *v != node {
                            self.queue.push_back((node, *v, m.clone()));
                        }
                    }
                }
                Effect::Send { to, msg } => self.queue.push_back((node, to, msg)),
                Effect::SetTimer { timer, after_ms } => {
                    self.timers.insert((node, timer), self.now + after_ms);
                }
                Effect::CancelTimer(t) => {
                    self.timers.remove(&(node, t));
                }
                Effect::Reply { reply, .. } => {
                    for e in &reply.body.entries {
                        self.replies.push((e.nonce, e.outcome));
                    }
                }
                _ => {}
            }
        }
    }

    /// Delivers everything, then fires due timers, for `ms` of simulated time.
    fn run(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            while let Some((from, to, m)) = self.queue.pop_front() {
                if let Some(r) = self.replicas.get_mut(&to) {
                    let out = r.handle(self.now, Input::FromPeer(from, m));
                    self.apply(to, out);
                }
            }
            self.now += 5;
            let due: Vec<(ReplicaId, Timer)> =
                self.timers.iter().filter(|(_, at)| **at <= self.now).map(|(k, _)| *k).collect();
            for (node, t) in due {
                self.timers.remove(&(node, t));
                if let Some(r) = self.replicas.get_mut(&node) {
                    let out = r.handle(self.now, Input::Timeout(t));
                    self.apply(node, out);
                }
            }
        }
    }

    fn submit(&mut self, req: ClientRequest) {
        let ids: Vec<ReplicaId> = self.replicas.keys().copied().collect();
        for id in ids {
            let out = self
                .replicas
                .get_mut(&id)
                .unwrap()
                .handle(self.now, Input::Message(Message::Request(req.clone())));
            self.apply(id, out);
        }
    }
}

fn operator_request(fx: &Fixture, nonce: u64, action: OperatorAction) -> ClientRequest {
    let body = RequestBody { client: fx.operator.public(), nonce, op: Operation::Operator(action) };
    ClientRequest::sign(body, &fx.operator, fx.cluster())
}

#[test]
fn a_member_is_replaced_at_the_next_checkpoint_boundary() {
    let fx = Fixture::new(4);
    let joiner_key = Keypair::from_seed([77; 32]);
    let mut net = Net {
        replicas: BTreeMap::new(),
        queue: VecDeque::new(),
        timers: BTreeMap::new(),
        now: 1,
        replies: Vec::new(),
    };
    for id in 0..4 {
        net.replicas.insert(id, fx.replica(id));
    }
    // The joiner runs from the start as a standby: it knows only genesis. It will be id 4.
    let mut joiner = Replica::new(
        Replica::STANDBY,
        joiner_key.clone(),
        fx.config.clone(),
        Box::new(DirectVerifier::new([9; 32])),
    );
    let out = joiner.start(1);
    assert!(!joiner.is_voter());
    net.replicas.insert(4, joiner);
    net.apply(4, out);

    for nonce in 1..=5 {
        net.submit(fx.request(nonce, 1));
        net.run(20);
    }
    // Refused: the churn bound (f = 1) allows one member out per epoch.
    let too_many = OperatorAction::UpdateQuorum {
        remove: vec!["bft-agent-3".into(), "bft-agent-4".into()],
        add: vec![],
        f: None,
    };
    net.submit(operator_request(&fx, 1, too_many));
    net.run(50);
    assert!(net.replies.contains(&(1, Outcome::Rejected(RejectReason::InvalidReconfiguration))));
    // Refused: n = 3 cannot tolerate f = 1.
    let too_small = OperatorAction::UpdateQuorum { remove: vec!["bft-agent-4".into()], add: vec![], f: None };
    net.submit(operator_request(&fx, 2, too_small));
    net.run(50);
    assert!(net.replies.contains(&(2, Outcome::Rejected(RejectReason::InvalidReconfiguration))));

    let update = OperatorAction::UpdateQuorum {
        remove: vec!["bft-agent-4".into()],
        add: vec![Joiner {
            name: "bft-agent-5".into(),
            key: joiner_key.public(),
            replica_addr: "127.0.0.1:1".into(),
            http_addr: "127.0.0.1:2".into(),
        }],
        f: None,
    };
    net.submit(operator_request(&fx, 3, update));
    net.run(50);
    assert!(net.replies.contains(&(3, Outcome::Applied)), "{:?}", net.replies);
    let scheduled = net.replicas[&0].state().accountability.current().clone();
    assert_eq!(scheduled.number, 1);
    assert_eq!(scheduled.voters, vec![0, 1, 2, 4]);
    let boundary = scheduled.start;
    assert!(boundary.is_multiple_of(fx.config.params.checkpoint_interval));

    // Enough transfers to cross the boundary and the next checkpoint.
    for nonce in 6..=40 {
        net.submit(fx.request(nonce, 1));
        net.run(20);
    }
    net.run(3000);

    for id in [0, 1, 2, 4] {
        let r = &net.replicas[&id];
        assert_eq!(r.epoch().number, 1, "replica {id} is in epoch 1");
        assert!(r.last_executed() > boundary, "replica {id} executed past the boundary");
        assert!(r.is_voter(), "replica {id} votes");
    }
    let joiner = &net.replicas[&4];
    assert_eq!(joiner.id(), 4, "the joiner learned its id from the installed state");
    let reference = net.replicas[&0].state().digest();
    let executed = net.replicas[&0].last_executed();
    for id in [1, 2, 4] {
        assert_eq!(net.replicas[&id].last_executed(), executed, "replica {id}");
        assert_eq!(net.replicas[&id].state().digest(), reference, "replica {id} state");
    }
    // Every transfer was applied exactly once, across the switch.
    assert_eq!(net.replicas[&4].state().app.accounts["bob"].balance, 40);
    // The removed member stopped at the boundary and no longer votes.
    let removed = &net.replicas[&3];
    assert!(!removed.is_voter());
    assert_eq!(removed.last_executed(), boundary);
}
