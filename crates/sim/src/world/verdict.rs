//! What a finished run concludes: progress, detection of every faulty member, convergence,
//! and the federated rounds' results.

use super::*;

impl World {
    /// Honest replicas that are up hold the same result for every federated round they closed,
    /// and the most advanced one's results pass the workload's checks. Returns the last round
    /// that one closed.
    pub(super) fn check_federated(&mut self, finished: bool) -> u64 {
        let Some(trainer) = &self.trainer else { return 0 };
        let honest: Vec<(usize, &Replica)> = (self.honest_progress().iter())
            .filter_map(|(i, _)| self.nodes[*i].replica.as_ref().map(|r| (*i, r)))
            .collect();
        let results = |r: &Replica| {
            r.state()
                .app
                .federated
                .models
                .values()
                .flat_map(|m| m.results.iter().cloned())
                .collect::<Vec<_>>()
        };
        let mut failures = Vec::new();
        let Some((_, top)) = honest.iter().max_by_key(|(_, r)| r.last_executed()) else { return 0 };
        let reference = results(top);
        for (i, r) in &honest {
            // Round by round: a lagging replica may still keep older results.
            let differs = results(r).iter().any(|a| reference.iter().any(|b| b.round == a.round && b != a));
            if differs {
                failures.push(format!("federated results differ between honest replicas: replica {i}"));
            }
        }
        failures.extend(trainer.check(&reference, finished));
        for f in failures {
            self.checker.violation(self.now, f);
        }
        reference.last().map_or(0, |r| r.round)
    }

    /// (replica, last executed seq) of every honest replica that is up.
    pub(super) fn honest_progress(&self) -> Vec<(usize, u64)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.faulty.contains(&(*i as ReplicaId)))
            .filter_map(|(i, n)| n.replica.as_ref().map(|r| (i, r.last_executed())))
            .collect()
    }

    /// Which faulty agents every honest replica that is up holds quarantined, the detection log
    /// of the most advanced one by fault type, and (if required) who escaped quarantine.
    pub(super) fn detection(&self) -> (Vec<u32>, std::collections::BTreeMap<String, u64>, Option<String>) {
        let honest: Vec<&Replica> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.faulty.contains(&(*i as ReplicaId)))
            .filter_map(|(_, n)| n.replica.as_ref())
            .collect();
        let quarantined: Vec<u32> = self
            .faulty
            .iter()
            .copied()
            .filter(|id| {
                let key = self.nodes[*id as usize].key.public();
                !honest.is_empty() && honest.iter().all(|r| r.state().accountability.is_quarantined(&key))
            })
            .collect();
        let mut detections = std::collections::BTreeMap::new();
        if let Some(r) = honest.iter().max_by_key(|r| r.last_executed()) {
            for e in &r.state().accountability.log {
                *detections.entry(e.fault_type.clone()).or_insert(0) += 1;
            }
        }
        // An agent whose probabilistic fault never got its chance in the run has nothing to
        // be caught for.
        let acted = |id: &u32| self.nodes[*id as usize].strategy.as_ref().is_some_and(|s| s.acted);
        let missed: Vec<u32> =
            self.faulty.iter().copied().filter(|id| acted(id) && !quarantined.contains(id)).collect();
        let failure = (self.cfg.require_quarantine && !missed.is_empty())
            .then(|| format!("faulty agents {missed:?} were not quarantined on every honest replica"));
        (quarantined, detections, failure)
    }

    /// After the settle time every honest replica has caught up to `target`.
    pub(super) fn convergence(&self, target: u64) -> Option<String> {
        self.honest_progress()
            .iter()
            .find(|h| h.1 < target)
            .map(|(i, s)| format!("honest replica {i} stuck at seq {s}; the cluster had reached {target}"))
    }
}
