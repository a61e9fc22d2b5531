//! A primary may move the replicated clock only within the skew bound: it never runs ahead of
//! real (virtual) time by more than `max_clock_skew_ms`.

use super::Violations;

pub struct Clock {
    pub max_skew_ms: u64,
}

impl Clock {
    pub fn executed(&self, v: &mut Violations, at: u64, replica: usize, clock_ms: u64) {
        let ahead = clock_ms.saturating_sub(at);
        if ahead > self.max_skew_ms {
            v.push(at, format!("clock jump: replica {replica}'s replicated clock runs {ahead} ms ahead"));
        }
    }
}
