//! Why a replica dropped a message without acting on it.
//!
//! Every message handler that drops its input says why, and the replica counts each reason
//! ([`super::Replica::ignored`], shown by `phalanx status`). An honest cluster ignores some
//! messages all the time (votes for a view it left, a request already pending, the same
//! catch-up answer from two peers); a rising count of bad signatures, invalid certificates or
//! digest mismatches points at a faulty member or a hostile link.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ignored {
    /// From a quarantined member or over its link, or a quarantined member's request.
    Quarantined,
    /// This replica does not vote in its epoch (a standby joiner, a removed member).
    NotVoting,
    /// Signed for an epoch this replica is not in.
    OtherEpoch,
    /// From a member that may not send it: a PRE-PREPARE not from the view's primary, a PREPARE
    /// from the primary, a NEW-VIEW not from the new primary, our own message echoed back.
    WrongSender,
    /// For a view this replica left, below its low water mark, or already executed.
    Stale,
    /// Too far ahead to keep: a view past the view gap, a seq past the checkpoint horizon.
    TooFarAhead,
    /// A request that breaks the wire's limits.
    Malformed,
    /// A request from a key the state does not admit, or an opaque payload where a production
    /// cluster refuses them.
    NotAdmitted,
    /// Already held: a pending request, a view change or certificate already counted.
    Duplicate,
    /// The signature does not verify.
    BadSignature,
    /// The content does not hash to the digest it is sent under (a batch, a snapshot).
    DigestMismatch,
    /// A certificate inside does not verify, or a NEW-VIEW does not follow from its own
    /// VIEW-CHANGEs.
    InvalidCertificate,
    /// A proposal's timestamp outside the clock skew bound.
    ClockSkew,
    /// The sender asked again too soon for something heavy (a snapshot, batches, certificates).
    RateLimited,
    /// An answer nothing here waits for.
    Unsolicited,
    /// The pool of waiting requests is full (overall or for this client).
    PoolFull,
}

impl Ignored {
    pub const ALL: [Ignored; 16] = [
        Ignored::Quarantined,
        Ignored::NotVoting,
        Ignored::OtherEpoch,
        Ignored::WrongSender,
        Ignored::Stale,
        Ignored::TooFarAhead,
        Ignored::Malformed,
        Ignored::NotAdmitted,
        Ignored::Duplicate,
        Ignored::BadSignature,
        Ignored::DigestMismatch,
        Ignored::InvalidCertificate,
        Ignored::ClockSkew,
        Ignored::RateLimited,
        Ignored::Unsolicited,
        Ignored::PoolFull,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Ignored::Quarantined => "quarantined",
            Ignored::NotVoting => "not-voting",
            Ignored::OtherEpoch => "other-epoch",
            Ignored::WrongSender => "wrong-sender",
            Ignored::Stale => "stale",
            Ignored::TooFarAhead => "too-far-ahead",
            Ignored::Malformed => "malformed",
            Ignored::NotAdmitted => "not-admitted",
            Ignored::Duplicate => "duplicate",
            Ignored::BadSignature => "bad-signature",
            Ignored::DigestMismatch => "digest-mismatch",
            Ignored::InvalidCertificate => "invalid-certificate",
            Ignored::ClockSkew => "clock-skew",
            Ignored::RateLimited => "rate-limited",
            Ignored::Unsolicited => "unsolicited",
            Ignored::PoolFull => "pool-full",
        }
    }
}

impl std::fmt::Display for Ignored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
