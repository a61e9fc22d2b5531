//! What each member's messages may cost this node, in bytes read and in signatures checked.
//!
//! The per-member queues (`fair`) share out the replica loop, but the work before the queue
//! (opening, decoding and verifying what a link delivers) costs in proportion to what the
//! member sends. A flooding member would buy that CPU from every node it reaches. So each
//! member's link reads against a budget: the member may cost this node what the others do, a
//! few times over, plus a floor. "What the others do" is the (f+1)-th smallest of the recent
//! rates of the other voters (neither this node nor the member): of those n-2 rates at most f
//! are faulty, so f silent members cannot pull it below an honest rate, and f-1 colluders of a
//! flooding member cannot push it above one.
//!
//! The proposals and the NEW-VIEW of a view's primary are not charged: carrying the batches
//! and the certificates of a view change is its job, and what it may propose is bounded by the
//! window and the batch limits instead.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A member may cost this many times the others' median rate, plus the floor.
const FACTOR: f64 = 3.0;
/// Bytes per second any member may send, however quiet the others are.
const FLOOR_BYTES: f64 = (1 << 20) as f64;
/// Signature checks per second any member may cause, however quiet the others are.
const FLOOR_SIGNATURES: f64 = 1000.0;
/// Burst room: a largest message (a state snapshot) leaves its sender out of debt.
const BURST_BYTES: f64 = phalanx_core::wire::limits::MAX_MESSAGE_BYTES as f64;
/// Burst room for signatures: a view change's certificates, a run of fetched commits.
const BURST_SIGNATURES: f64 = 4096.0;
/// How fast a member's recent rate forgets (seconds).
const MEMORY_S: f64 = 1.0;

/// What one message costs to take in.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    pub bytes: usize,
    pub signatures: usize,
}

/// One resource of one member: what is left of its budget, and its recent rate.
#[derive(Clone, Copy, Debug)]
struct Budget {
    tokens: f64,
    /// Spent per second lately (an exponentially decaying sum).
    rate: f64,
}

impl Budget {
    fn full(burst: f64) -> Budget {
        Budget { tokens: burst, rate: 0.0 }
    }

    fn decay(&mut self, dt: f64) {
        self.rate *= (-dt / MEMORY_S).exp();
    }

    /// Refills at `allowed` per second for `dt`, spends `amount`, and says how long the member
    /// must wait until it is out of debt.
    fn spend(&mut self, dt: f64, allowed: f64, burst: f64, amount: f64) -> f64 {
        self.tokens = (self.tokens + dt * allowed).min(burst) - amount;
        self.rate += amount / MEMORY_S;
        if self.tokens < 0.0 { -self.tokens / allowed } else { 0.0 }
    }
}

#[derive(Clone, Copy, Debug)]
struct Account {
    bytes: Budget,
    signatures: Budget,
    /// When its tokens were last refilled.
    refilled: Instant,
}

/// Every member's budget; shared by the links of one node.
#[derive(Default)]
pub struct Meter {
    inner: Mutex<Accounts>,
}

#[derive(Default)]
struct Accounts {
    by_member: Vec<Option<Account>>,
    /// When every rate was last decayed.
    decayed: Option<Instant>,
}

impl Meter {
    /// Charges member `peer` for a message it sent at `now`, given the voters other than this
    /// node and how many of them may be faulty; returns how long its link should wait before
    /// reading more (zero while it stays within its budget).
    pub fn charge(&self, peer: usize, cost: Cost, now: Instant, voters: &[usize], f: usize) -> Duration {
        let Ok(mut inner) = self.inner.lock() else { return Duration::ZERO };
        let Accounts { by_member: accounts, decayed } = &mut *inner;
        if accounts.len() <= peer {
            // Peers are directory members: this grows only with committed reconfigurations.
            accounts.resize(peer + 1, None);
        }
        let dt = decayed.map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        *decayed = Some(decayed.map_or(now, |t| t.max(now)));
        for a in accounts.iter_mut().flatten() {
            a.bytes.decay(dt);
            a.signatures.decay(dt);
        }
        let others = |pick: fn(&Account) -> f64| -> f64 {
            let mut rates: Vec<f64> = voters
                .iter()
                .filter(|v| **v != peer)
                .map(|v| accounts.get(*v).copied().flatten().as_ref().map_or(0.0, pick))
                .collect();
            smallest(&mut rates, f)
        };
        let allowed_bytes = FLOOR_BYTES + FACTOR * others(|a| a.bytes.rate);
        let allowed_signatures = FLOOR_SIGNATURES + FACTOR * others(|a| a.signatures.rate);
        let a = accounts[peer].get_or_insert(Account {
            bytes: Budget::full(BURST_BYTES),
            signatures: Budget::full(BURST_SIGNATURES),
            refilled: now,
        });
        let dt = now.saturating_duration_since(a.refilled).as_secs_f64();
        a.refilled = a.refilled.max(now);
        let wait_bytes = a.bytes.spend(dt, allowed_bytes, BURST_BYTES, cost.bytes as f64);
        let wait_signatures =
            a.signatures.spend(dt, allowed_signatures, BURST_SIGNATURES, cost.signatures as f64);
        Duration::from_secs_f64(wait_bytes.max(wait_signatures).min(1.0))
    }
}

/// The (k+1)-th smallest value (the largest if there are fewer; 0 for none).
fn smallest(v: &mut [f64], k: usize) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(k).or(v.last()).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote() -> Cost {
        Cost { bytes: 200, signatures: 1 }
    }

    /// Simulates `seconds` of traffic: each member sends `per_second[i]` votes a second, in
    /// 1 ms steps; returns how many each got through (a waiting member sends nothing).
    fn run(per_second: &[u32], seconds: u32) -> Vec<u32> {
        let meter = Meter::default();
        let voters: Vec<usize> = (0..per_second.len()).collect();
        // This node is one more voter.
        let f = per_second.len() / 3;
        let start = Instant::now();
        let mut ready_at = vec![start; per_second.len()];
        let mut sent = vec![0u32; per_second.len()];
        for ms in 0..seconds * 1000 {
            let now = start + Duration::from_millis(ms as u64);
            for (i, rate) in per_second.iter().enumerate() {
                // This member's messages due this millisecond, if its link reads.
                let due = (rate * (ms + 1) / 1000).saturating_sub(rate * ms / 1000);
                for _ in 0..due {
                    if now < ready_at[i] {
                        break;
                    }
                    sent[i] += 1;
                    ready_at[i] = now + meter.charge(i, vote(), now, &voters, f);
                }
            }
        }
        sent
    }

    #[test]
    fn honest_members_sending_alike_are_never_held_back() {
        let sent = run(&[2000, 2000, 1500, 2500, 2000, 2000], 5);
        assert_eq!(sent, vec![10_000, 10_000, 7_500, 12_500, 10_000, 10_000]);
    }

    #[test]
    fn a_flooding_member_gets_a_few_times_the_median_and_the_rest_are_untouched() {
        let sent = run(&[500, 500, 500, 500, 500, 1_000_000], 10);
        assert_eq!(&sent[..5], &[5000; 5]);
        // The burst, then the floor plus three times the others' 500 a second.
        let allowed = BURST_SIGNATURES + 10.0 * (FLOOR_SIGNATURES + FACTOR * 500.0);
        assert!((sent[5] as f64) < allowed * 1.05, "the flooder got {} of {allowed}", sent[5]);
        assert!((sent[5] as f64) > allowed * 0.8, "the flooder got {} of {allowed}", sent[5]);
    }

    #[test]
    fn quiet_members_do_not_starve_a_busy_honest_one_below_the_floor() {
        let sent = run(&[0, 0, 0, 900], 5);
        assert_eq!(sent[3], 4500);
    }

    #[test]
    fn f_silent_members_do_not_make_busy_honest_ones_wait() {
        // n = 7 (this node and six others), f = 2: two crashed, four voting hard.
        let sent = run(&[0, 0, 3000, 3000, 3000, 3000], 5);
        assert_eq!(&sent[2..], &[15_000; 4]);
        // n = 4, f = 1: one crashed, two voting hard.
        let sent = run(&[0, 3000, 3000], 5);
        assert_eq!(&sent[1..], &[15_000; 2]);
    }

    #[test]
    fn a_flooders_colluders_cannot_raise_its_allowance() {
        // n = 7, f = 2: one colluder floods too; the third smallest rate is still honest.
        let sent = run(&[500, 500, 500, 500, 1_000_000, 1_000_000], 10);
        let allowed = BURST_SIGNATURES + 10.0 * (FLOOR_SIGNATURES + FACTOR * 500.0);
        assert!((sent[5] as f64) < allowed * 1.05, "the flooder got {} of {allowed}", sent[5]);
        assert_eq!(&sent[..4], &[5000; 4]);
    }

    #[test]
    fn a_state_snapshot_passes_at_once() {
        let meter = Meter::default();
        let now = Instant::now();
        let snapshot = Cost { bytes: phalanx_core::wire::limits::MAX_MESSAGE_BYTES, signatures: 5 };
        assert_eq!(meter.charge(0, snapshot, now, &[0, 1, 2], 1), Duration::ZERO);
    }
}
