//! Reputation: what one replica observed of each peer, combined with what the replicated state
//! records about it (evidence, accusations, quarantines) into one score.
//!
//! Observations are local (each node sees its own links), so scores may differ slightly between
//! nodes; quarantine never depends on them, only on committed evidence and accusations.

use crate::state::MemberRecord;
use serde::Serialize;
use std::collections::VecDeque;

/// Response-time samples kept per peer.
const SAMPLES: usize = 256;

/// What this replica saw of one peer.
#[derive(Clone, Debug, Default)]
pub struct PeerStats {
    pub messages_verified: u64,
    pub messages_failed: u64,
    /// Votes that matched the digest this replica committed, and votes for another digest.
    pub votes_agreeing: u64,
    pub votes_conflicting: u64,
    /// Pre-prepares accepted from this peer, and those of them executed here.
    pub proposals_made: u64,
    pub proposals_committed: u64,
    /// Milliseconds from the start of a slot here to this peer's vote for it.
    response_ms: VecDeque<u64>,
}

impl PeerStats {
    pub fn response(&mut self, ms: u64) {
        if self.response_ms.len() == SAMPLES {
            self.response_ms.pop_front();
        }
        self.response_ms.push_back(ms);
    }

    /// (p50, p95, p99) of the recent response times.
    pub fn percentiles(&self) -> Option<(u64, u64, u64)> {
        if self.response_ms.is_empty() {
            return None;
        }
        let mut v: Vec<u64> = self.response_ms.iter().copied().collect();
        v.sort_unstable();
        let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        Some((at(0.5), at(0.95), at(0.99)))
    }
}

/// One member's reputation as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Reputation {
    /// 1.0 is spotless, 0.0 is proven faulty.
    pub score: f64,
    pub messages_verified: u64,
    pub messages_failed: u64,
    pub votes_agreeing: u64,
    pub votes_conflicting: u64,
    pub proposals_made: u64,
    pub proposals_committed: u64,
    pub response_ms_p50: Option<u64>,
    pub response_ms_p95: Option<u64>,
    pub response_ms_p99: Option<u64>,
    pub evidence_against: u64,
    pub accusations_against: u64,
    pub reports_made: u64,
    /// Its reports that proved nothing.
    pub reports_rejected: u64,
    pub quarantined: bool,
}

impl Reputation {
    /// The score: proven faults dominate, then failed signatures and conflicting votes, then
    /// accusations (which honest but slow members can attract, so they weigh least).
    pub fn new(seen: &PeerStats, record: &MemberRecord, quarantined: bool) -> Self {
        let accusations: u64 = record.accusations_against.values().sum();
        let ratio =
            |bad: u64, good: u64| if bad + good == 0 { 0.0 } else { bad as f64 / (bad + good) as f64 };
        let mut score = 1.0;
        if record.evidence_against > 0 || quarantined {
            score = 0.0;
        } else {
            score -= 0.4 * ratio(seen.messages_failed, seen.messages_verified);
            score -= 0.3 * ratio(seen.votes_conflicting, seen.votes_agreeing);
            score -= (0.02 * accusations as f64).min(0.3);
            score -= (0.05 * record.reports_rejected as f64).min(0.3);
        }
        let p = seen.percentiles();
        Reputation {
            score: (score * 1000.0).round() / 1000.0,
            messages_verified: seen.messages_verified,
            messages_failed: seen.messages_failed,
            votes_agreeing: seen.votes_agreeing,
            votes_conflicting: seen.votes_conflicting,
            proposals_made: seen.proposals_made,
            proposals_committed: seen.proposals_committed,
            response_ms_p50: p.map(|p| p.0),
            response_ms_p95: p.map(|p| p.1),
            response_ms_p99: p.map(|p| p.2),
            evidence_against: record.evidence_against,
            accusations_against: accusations,
            reports_made: record.reports_made,
            reports_rejected: record.reports_rejected,
            quarantined,
        }
    }
}
