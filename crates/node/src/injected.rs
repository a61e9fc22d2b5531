//! A fault the operator injected into this agent (testing clusters only): the simulator's
//! Byzantine strategies, driven by a real node, so detection is measured against misbehaviour
//! on real links.
//!
//! Built only with the `testing` feature (on by default in the `phalanx` binary, which the demo,
//! the benchmarks and chaos runs need). A production build can leave the strategies out
//! (`--no-default-features`): its node logs a committed injection and keeps behaving.

use phalanx_core::wire::{Message, ReplicaId};

/// A message the fault sends instead of (or beside) what the replica sent.
pub struct Outgoing {
    pub to: ReplicaId,
    pub msg: Message,
    pub extra_delay_ms: u64,
}

/// What the fault needs to know of its host when it starts.
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub struct Host<'a> {
    pub key: &'a phalanx_crypto::Keypair,
    pub cluster: phalanx_crypto::Digest,
    pub id: ReplicaId,
    pub members: usize,
    /// This agent's account, which a double-spending fault spends from.
    pub account: String,
    pub seed: [u8; 32],
}

#[cfg(feature = "testing")]
pub use with_strategies::Fault;
#[cfg(not(feature = "testing"))]
pub use without_strategies::Fault;

#[cfg(feature = "testing")]
mod with_strategies {
    use super::{Host, Outgoing};
    use phalanx_core::wire::{CheckpointCert, Message, ReplicaId};
    use phalanx_faults::{Behaviour, Blackboard, Strategy};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn outgoing(out: Vec<phalanx_faults::Outgoing>) -> Vec<Outgoing> {
        out.into_iter().map(|o| Outgoing { to: o.to, msg: o.msg, extra_delay_ms: o.extra_delay_ms }).collect()
    }

    pub struct Fault {
        pub name: String,
        strategy: Strategy,
        rng: ChaCha8Rng,
        board: Blackboard,
    }

    impl Fault {
        pub fn new(name: String, probability_permille: u32, host: Host<'_>) -> Result<Self, String> {
            let behaviour: Behaviour = name.parse()?;
            let mut rng = ChaCha8Rng::from_seed(host.seed);
            let mut strategy = Strategy::new(
                host.id,
                [behaviour].into(),
                host.key.clone(),
                host.cluster,
                host.members,
                &mut rng,
            );
            strategy.account = host.account;
            strategy.spend_to = ["alice".into(), "bob".into()];
            strategy.probability = Some(probability_permille.min(1000) as f64 / 1000.0);
            Ok(Fault { name, strategy, rng, board: Blackboard::default() })
        }

        /// Rewrites what the replica sends to `to`.
        pub fn rewrite(&mut self, msg: Message, to: &[ReplicaId]) -> Vec<Outgoing> {
            outgoing(self.strategy.rewrite(msg, to, &mut self.rng, &mut self.board))
        }

        /// The fault's own periodic actions (double spends, replays). `min_nonce` keeps its
        /// requests above the nonces the replica gives its own reports.
        pub fn tick(&mut self, view: u64, stable: CheckpointCert, min_nonce: u64) -> Vec<Outgoing> {
            self.strategy.nonce = self.strategy.nonce.max(min_nonce);
            outgoing(self.strategy.tick(view, stable, &mut self.rng, &self.board))
        }

        /// A silent fault sends clients no replies either.
        pub fn silent(&self) -> bool {
            self.strategy.behaviours.contains(&Behaviour::Silent)
        }
    }
}

#[cfg(not(feature = "testing"))]
mod without_strategies {
    use super::{Host, Outgoing};
    use phalanx_core::wire::{CheckpointCert, Message, ReplicaId};

    /// No fault can exist in this build: the type has no values.
    pub enum Fault {}

    impl Fault {
        pub fn new(name: String, _probability_permille: u32, _host: Host<'_>) -> Result<Self, String> {
            Err(format!(
                "cannot misbehave as {name:?}: this phalanx was built without the `testing` feature, \
                 so it has no fault injection"
            ))
        }

        pub fn rewrite(&mut self, _msg: Message, _to: &[ReplicaId]) -> Vec<Outgoing> {
            match *self {}
        }

        pub fn tick(&mut self, _view: u64, _stable: CheckpointCert, _min_nonce: u64) -> Vec<Outgoing> {
            match *self {}
        }

        pub fn silent(&self) -> bool {
            match *self {}
        }

        pub fn name(&self) -> &str {
            match *self {}
        }
    }
}

#[cfg(feature = "testing")]
impl Fault {
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(key: &phalanx_crypto::Keypair) -> Host<'_> {
        Host {
            key,
            cluster: phalanx_crypto::digest(b"c"),
            id: 1,
            members: 4,
            account: "a".into(),
            seed: [3; 32],
        }
    }

    #[cfg(feature = "testing")]
    #[test]
    fn a_testing_build_runs_named_strategies_and_refuses_unknown_names() {
        let key = phalanx_crypto::Keypair::from_seed([1; 32]);
        let fault = Fault::new("silent".into(), 1000, host(&key)).expect("a known behaviour");
        assert!(fault.silent());
        assert_eq!(fault.name(), "silent");
        let err = Fault::new("teleport".into(), 1000, host(&key)).err().expect("an unknown behaviour");
        assert!(err.contains("teleport"), "{err}");
    }

    #[cfg(not(feature = "testing"))]
    #[test]
    fn a_production_build_has_no_fault_injection() {
        let key = phalanx_crypto::Keypair::from_seed([1; 32]);
        let err = Fault::new("silent".into(), 1000, host(&key)).err().expect("no strategies in this build");
        assert!(err.contains("without the `testing` feature"), "{err}");
    }
}
