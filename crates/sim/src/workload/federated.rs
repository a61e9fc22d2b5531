//! A federated-learning workload: the operator opens rounds one after another, seven simulated
//! clients upload their updates in chunks, and the replicas aggregate. Two participants are
//! Byzantine: one sends a poisoned update (±10⁶ against honest values near 1), the other a chunk with a NaN (which must
//! be refused, leaving its update incomplete). Each round uses another rule. At the end every
//! honest replica must hold the same results, every round must have closed with an aggregate,
//! and no selecting rule may have kept the poisoned update.

use super::clients::Clients;
use phalanx_app::federated::{CloseCause, HISTORY, RoundOutcome, RoundResult};
use phalanx_core::wire::federated::encode_values;
use phalanx_core::wire::{FederatedOp, Operation, RoundSpec};
use phalanx_crypto::PublicKey;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const MODEL: &str = "sim";
const DIM: usize = 20;
/// Coordinates per chunk: three chunks per update.
const CHUNK: usize = 8;
const PARTICIPANTS: usize = 7;
const POISONER: usize = 5;
const NAN_SENDER: usize = 6;
const RULES: [&str; 6] = ["median", "multikrum", "trmean", "geomed", "cge", "mda"];

pub struct Trainer {
    rounds: u64,
    /// The round opened last (0: none yet).
    round: u64,
    operator: usize,
    participants: Vec<usize>,
    keys: Vec<PublicKey>,
    /// Scripted uploads of the current round not yet answered.
    uploads_left: usize,
    rng: ChaCha8Rng,
}

impl Trainer {
    /// `operator` is a client index; the first seven clients (with accounts, so below the
    /// operator's index) are the participants.
    pub fn new(rounds: u64, operator: usize, clients: &Clients, seed: u64) -> Option<Trainer> {
        if operator < PARTICIPANTS {
            return None;
        }
        let participants: Vec<usize> = (0..PARTICIPANTS).collect();
        let keys = participants.iter().map(|&i| clients.keys[i].public()).collect();
        let rng = ChaCha8Rng::seed_from_u64(seed ^ 0xfed);
        Some(Trainer { rounds, round: 0, operator, participants, keys, uploads_left: 0, rng })
    }

    fn spec(&self, round: u64) -> RoundSpec {
        RoundSpec {
            model: MODEL.into(),
            round,
            rule: RULES[(round as usize - 1) % RULES.len()].into(),
            pre: Vec::new(),
            params: Vec::new(),
            f: 2,
            dim: DIM as u32,
            participants: self.keys.clone(),
            // Everyone but the NaN sender: the round closes as the last good upload commits.
            quorum: PARTICIPANTS as u32 - 1,
            // Far longer than any partition: rounds close at quorum unless uploads are lost.
            timeout_ms: 60_000,
            seed: round,
        }
    }

    /// Scripts the next round's opening; returns the clients to wake.
    pub fn open_next(&mut self, clients: &mut Clients) -> Vec<usize> {
        if self.round == self.rounds {
            return Vec::new();
        }
        self.round += 1;
        clients
            .script(self.operator, Operation::Federated(FederatedOp::Open(Box::new(self.spec(self.round)))));
        vec![self.operator]
    }

    /// A scripted operation of `client` got its f+1 replies; returns the clients to wake.
    pub fn on_answer(&mut self, client: usize, clients: &mut Clients) -> Vec<usize> {
        if client == self.operator {
            return self.upload(clients);
        }
        self.uploads_left = self.uploads_left.saturating_sub(1);
        if self.uploads_left == 0 { self.open_next(clients) } else { Vec::new() }
    }

    /// Scripts every participant's chunks for the round just opened.
    fn upload(&mut self, clients: &mut Clients) -> Vec<usize> {
        for (p, &client) in self.participants.iter().enumerate() {
            let mut update: Vec<f64> = (0..DIM).map(|_| 1.0 + self.rng.random_range(-0.1..0.1)).collect();
            if p == POISONER {
                update.iter_mut().for_each(|x| *x = if self.rng.random_bool(0.5) { 1e6 } else { -1e6 });
            }
            if p == NAN_SENDER {
                update[3] = f64::NAN;
            }
            for (i, values) in update.chunks(CHUNK).enumerate() {
                let op = FederatedOp::Submit {
                    model: MODEL.into(),
                    round: self.round,
                    offset: (i * CHUNK) as u32,
                    values: encode_values(values),
                };
                clients.script(client, Operation::Federated(op));
                self.uploads_left += 1;
            }
        }
        self.participants.clone()
    }

    /// Checks the most advanced honest replica's results (`complete`: the run finished, so
    /// every round must be there, as far as the state keeps results).
    pub fn check(&self, results: &[RoundResult], complete: bool) -> Option<String> {
        let kept = self.rounds.min(HISTORY as u64);
        let last = results.last().map_or(0, |r| r.round);
        if complete && (results.len() as u64 != kept || last != self.rounds) {
            return Some(format!(
                "federated rounds closed up to {last} of {}, {} kept",
                self.rounds,
                results.len()
            ));
        }
        let poisoner = self.keys[POISONER];
        for r in results {
            if !r.missing.contains(&self.keys[NAN_SENDER]) {
                return Some(format!("federated round {}: an update with a NaN was accepted", r.round));
            }
            // (A round the deadline closed may legitimately miss honest updates, and be refused.)
            let refused = !matches!(r.outcome, RoundOutcome::Aggregated { .. });
            if r.cause == CloseCause::Quorum && (refused || r.missing.len() != 1) {
                return Some(format!("federated round {} closed at quorum with {:?}", r.round, r.outcome));
            }
            if r.kept.as_ref().is_some_and(|k| k.contains(&poisoner)) {
                return Some(format!("federated round {} ({}) kept the poisoned update", r.round, r.rule));
            }
        }
        None
    }
}
