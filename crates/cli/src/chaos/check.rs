//! The history checker: judges what the clients were told and what every node ended with.
//! Pure: it reads a [`History`] and returns the violations, so each rule has a test that feeds
//! it a history breaking that rule.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// One transfer a client signed, and what it was told.
#[derive(Clone, Debug)]
pub struct Op {
    pub client: String,
    pub nonce: u64,
    pub from: String,
    pub to: String,
    pub amount: u64,
    /// Accepted on f+1 matching signed replies, or never (the run ended first).
    pub ack: Option<Ack>,
}

#[derive(Clone, Debug)]
pub struct Ack {
    pub outcome: String,
    pub seq: u64,
}

/// One node as the run left it, after the quiet period.
#[derive(Clone, Debug, Default)]
pub struct Final {
    pub name: String,
    pub last_executed: u64,
    pub digest: String,
    pub balances: BTreeMap<String, u64>,
    pub quarantined: Vec<String>,
    /// Detection-log entries other than timeout suspicions, as text.
    pub accusations: Vec<String>,
    /// Timeout suspicions (`censorship`, `silence`): unprovable, they lower reputation and never
    /// quarantine. A partitioned or paused honest primary earns them by design.
    pub suspicions: u64,
    /// Evidence the replicated state accepted (proof of a fault: none exists among honest members).
    pub evidence_accepted: u64,
}

/// How the cluster came back after a heal.
#[derive(Clone, Debug)]
pub struct Recovery {
    pub after: String,
    /// From the heal to the first commit seen after it (None: none within the wait).
    pub took: Option<Duration>,
}

#[derive(Clone, Debug, Default)]
pub struct History {
    pub genesis: BTreeMap<String, u64>,
    pub ops: Vec<Op>,
    /// Nodes that answered at the end. Every member is honest in a chaos run.
    pub finals: Vec<Final>,
    /// Every member's expected name, to notice one that never answered at the end.
    pub members: Vec<String>,
    /// (node, executed seq, state digest at that seq) as polled during the run.
    pub observed: Vec<(String, u64, String)>,
    pub recoveries: Vec<Recovery>,
    /// What went wrong with damaged journals: a start that refused one changed it and kept no
    /// copy, or a copy of one opened with records lost.
    pub journal_faults: Vec<String>,
    /// The bound on recovery after a heal: 2 × the view-change timeout.
    pub recovery_limit: Duration,
}

/// Requests left unacknowledged whose effects the checker tries every combination of.
const MAX_UNACKED: usize = 16;

pub fn check(h: &History) -> Vec<String> {
    let mut v = Vec::new();
    check_digests(h, &mut v);
    check_finals(h, &mut v);
    check_ledger(h, &mut v);
    check_clients(h, &mut v);
    for r in &h.recoveries {
        match r.took {
            Some(t) if t <= h.recovery_limit => {}
            Some(t) => v.push(format!(
                "after {} healed the cluster took {} ms to commit again (limit {} ms)",
                r.after,
                t.as_millis(),
                h.recovery_limit.as_millis()
            )),
            None => v.push(format!("after {} healed the cluster did not commit again", r.after)),
        }
    }
    v.extend(h.journal_faults.iter().cloned());
    v
}

/// Two nodes that executed the same seq hold the same state there.
fn check_digests(h: &History, v: &mut Vec<String>) {
    let mut at: BTreeMap<u64, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for (node, seq, digest) in &h.observed {
        at.entry(*seq).or_default().entry(digest).or_default().insert(node);
    }
    for f in &h.finals {
        at.entry(f.last_executed).or_default().entry(&f.digest).or_default().insert(&f.name);
    }
    for (seq, digests) in at {
        if digests.len() > 1 {
            let who: Vec<String> = digests
                .iter()
                .map(|(d, nodes)| {
                    format!(
                        "{} by {}",
                        &d[..d.len().min(12)],
                        nodes.iter().copied().collect::<Vec<_>>().join(",")
                    )
                })
                .collect();
            v.push(format!("state digests differ at seq {seq}: {}", who.join("; ")));
        }
    }
}

/// Every member answered, caught up, agrees, and was neither quarantined nor accused.
fn check_finals(h: &History, v: &mut Vec<String>) {
    for m in &h.members {
        if !h.finals.iter().any(|f| &f.name == m) {
            v.push(format!("{m} did not answer at the end"));
        }
    }
    let top = h.finals.iter().map(|f| f.last_executed).max().unwrap_or(0);
    for f in &h.finals {
        if f.last_executed < top {
            v.push(format!("{} did not catch up: executed {} of {top}", f.name, f.last_executed));
        }
        if !f.quarantined.is_empty() {
            v.push(format!("{} holds honest members quarantined: {}", f.name, f.quarantined.join(", ")));
        }
        for a in &f.accusations {
            v.push(format!("{}'s detection log accuses an honest member: {a}", f.name));
        }
        if f.evidence_accepted > 0 {
            v.push(format!(
                "{} accepted {} pieces of evidence against honest members",
                f.name, f.evidence_accepted
            ));
        }
        if let Some(first) = h.finals.first()
            && f.last_executed == first.last_executed
            && f.balances != first.balances
        {
            v.push(format!(
                "{} and {} hold different balances at seq {}",
                f.name, first.name, f.last_executed
            ));
        }
    }
}

/// Balances are what the acknowledged transfers make them (each applied exactly once), plus
/// at most once each of the unacknowledged ones; and money is conserved.
fn check_ledger(h: &History, v: &mut Vec<String>) {
    let Some(node) = h.finals.iter().max_by_key(|f| f.last_executed) else { return };
    let total = |b: &BTreeMap<String, u64>| b.values().map(|x| *x as u128).sum::<u128>();
    if total(&node.balances) != total(&h.genesis) {
        v.push(format!(
            "money is not conserved: {} at genesis, {} on {}",
            total(&h.genesis),
            total(&node.balances),
            node.name
        ));
    }
    let mut expected: BTreeMap<String, i128> =
        h.genesis.iter().map(|(k, b)| (k.clone(), *b as i128)).collect();
    let mut pending = Vec::new();
    for op in &h.ops {
        match &op.ack {
            Some(a) if a.outcome == "applied" => {
                *expected.entry(op.from.clone()).or_default() -= op.amount as i128;
                *expected.entry(op.to.clone()).or_default() += op.amount as i128;
            }
            Some(_) => {}
            None => pending.push(op),
        }
    }
    if pending.len() > MAX_UNACKED {
        v.push(format!("{} transfers were never acknowledged: too many to check", pending.len()));
        return;
    }
    let actual: BTreeMap<String, i128> =
        node.balances.iter().filter(|(_, b)| **b != 0).map(|(k, b)| (k.clone(), *b as i128)).collect();
    let fits = (0u32..1 << pending.len()).any(|mask| {
        let mut e = expected.clone();
        for (i, op) in pending.iter().enumerate() {
            if mask & (1 << i) != 0 {
                *e.entry(op.from.clone()).or_default() -= op.amount as i128;
                *e.entry(op.to.clone()).or_default() += op.amount as i128;
            }
        }
        // An account at zero may be listed or not: compare what is held.
        e.retain(|_, b| *b != 0);
        e == actual
    });
    if !fits {
        let diff: Vec<String> = expected
            .iter()
            .filter(|(k, b)| actual.get(*k).copied().unwrap_or(0) != **b)
            .take(6)
            .map(|(k, b)| format!("{k}: expected {b}, holds {}", actual.get(k).copied().unwrap_or(0)))
            .collect();
        v.push(format!(
            "balances on {} do not match the acknowledged transfers applied exactly once \
             (with {} unacknowledged, each at most once): {}",
            node.name,
            pending.len(),
            diff.join("; ")
        ));
    }
}

/// A client's transfers execute in the order it sent them, and none is refused.
fn check_clients(h: &History, v: &mut Vec<String>) {
    let mut last: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for op in &h.ops {
        let Some(a) = &op.ack else { continue };
        if a.outcome != "applied" {
            v.push(format!("{}'s transfer (nonce {}) was refused: {}", op.client, op.nonce, a.outcome));
        }
        if let Some((nonce, seq)) = last.get(op.client.as_str())
            && op.nonce > *nonce
            && a.seq < *seq
        {
            v.push(format!(
                "{}'s transfer (nonce {}) executed at seq {} before its earlier one (nonce {nonce}) at seq {seq}",
                op.client, op.nonce, a.seq
            ));
        }
        last.insert(&op.client, (op.nonce, a.seq));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: &str, nonce: u64, amount: u64, seq: Option<u64>) -> Op {
        Op {
            client: client.into(),
            nonce,
            from: client.into(),
            to: "sink".into(),
            amount,
            ack: seq.map(|seq| Ack { outcome: "applied".into(), seq }),
        }
    }

    /// Two clients, three acknowledged transfers and one left unacknowledged, on two nodes
    /// that agree.
    fn clean() -> History {
        let genesis: BTreeMap<String, u64> =
            [("a".into(), 100), ("b".into(), 100), ("sink".into(), 0)].into_iter().collect();
        let ops = vec![
            op("a", 1, 10, Some(3)),
            op("a", 2, 5, Some(7)),
            op("b", 1, 1, Some(4)),
            op("b", 2, 2, None),
        ];
        let balances: BTreeMap<String, u64> =
            [("a".into(), 85), ("b".into(), 99), ("sink".into(), 16)].into_iter().collect();
        let fin = |name: &str| Final {
            name: name.into(),
            last_executed: 9,
            digest: "d9".into(),
            balances: balances.clone(),
            ..Default::default()
        };
        History {
            genesis,
            ops,
            finals: vec![fin("n1"), fin("n2")],
            members: vec!["n1".into(), "n2".into()],
            observed: vec![("n1".into(), 5, "d5".into()), ("n2".into(), 5, "d5".into())],
            recoveries: vec![Recovery { after: "kill".into(), took: Some(Duration::from_millis(900)) }],
            journal_faults: vec![],
            recovery_limit: Duration::from_secs(2),
        }
    }

    #[test]
    fn a_clean_history_passes_with_or_without_the_unacknowledged_transfer() {
        assert_eq!(check(&clean()), Vec::<String>::new());
        let mut h = clean();
        for f in &mut h.finals {
            *f.balances.get_mut("b").unwrap() -= 2;
            *f.balances.get_mut("sink").unwrap() += 2;
        }
        assert_eq!(check(&h), Vec::<String>::new());
    }

    fn fails_with(h: History, words: &str) {
        let v = check(&h);
        assert!(v.iter().any(|m| m.contains(words)), "expected {words:?} in {v:?}");
    }

    #[test]
    fn an_acknowledged_transfer_applied_twice_or_never_is_caught() {
        let mut h = clean();
        for f in &mut h.finals {
            *f.balances.get_mut("a").unwrap() -= 10;
            *f.balances.get_mut("sink").unwrap() += 10;
        }
        fails_with(h, "exactly once");
        let mut h = clean();
        for f in &mut h.finals {
            *f.balances.get_mut("a").unwrap() += 5;
            *f.balances.get_mut("sink").unwrap() -= 5;
        }
        fails_with(h, "exactly once");
    }

    #[test]
    fn an_unacknowledged_transfer_applied_twice_is_caught() {
        let mut h = clean();
        for f in &mut h.finals {
            *f.balances.get_mut("b").unwrap() -= 4;
            *f.balances.get_mut("sink").unwrap() += 4;
        }
        fails_with(h, "exactly once");
    }

    #[test]
    fn money_made_or_lost_is_caught() {
        let mut h = clean();
        for f in &mut h.finals {
            *f.balances.get_mut("sink").unwrap() += 1;
        }
        fails_with(h, "not conserved");
    }

    #[test]
    fn diverging_digests_lagging_nodes_and_quarantines_are_caught() {
        let mut h = clean();
        h.observed.push(("n2".into(), 5, "other".into()));
        fails_with(h, "state digests differ at seq 5");
        let mut h = clean();
        h.finals[1].last_executed = 8;
        h.finals[1].digest = "d8".into();
        fails_with(h, "n2 did not catch up");
        let mut h = clean();
        h.finals[0].quarantined = vec!["n2".into()];
        fails_with(h, "quarantined: n2");
        let mut h = clean();
        h.finals[0].accusations = vec!["bft-agent-2 signature-corruption".into()];
        fails_with(h, "accuses an honest member: bft-agent-2");
        let mut h = clean();
        h.finals[0].evidence_accepted = 1;
        fails_with(h, "evidence against honest");
        let mut h = clean();
        h.finals[0].suspicions = 3;
        assert_eq!(check(&h), Vec::<String>::new(), "timeout suspicions are not accusations");
        let mut h = clean();
        h.finals.pop();
        fails_with(h, "n2 did not answer");
        let mut h = clean();
        h.finals[1].balances.insert("a".into(), 84);
        fails_with(h, "different balances");
    }

    #[test]
    fn reordered_refused_and_slow_recoveries_are_caught() {
        let mut h = clean();
        h.ops[1].ack = Some(Ack { outcome: "applied".into(), seq: 2 });
        fails_with(h, "before its earlier one");
        let mut h = clean();
        h.ops[0].ack = Some(Ack { outcome: "rejected:insufficient-funds".into(), seq: 3 });
        fails_with(h, "was refused");
        let mut h = clean();
        h.recoveries[0].took = Some(Duration::from_millis(2500));
        fails_with(h, "took 2500 ms");
        let mut h = clean();
        h.recoveries[0].took = None;
        fails_with(h, "did not commit again");
        let mut h = clean();
        h.journal_faults.push("n1's damaged journal opens with 3 records".into());
        fails_with(h, "n1's damaged journal");
    }
}
