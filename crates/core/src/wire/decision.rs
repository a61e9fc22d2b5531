//! Operations of decisions: agents open a question, the eligible voters cast signed ballots,
//! and the replicated state commits the outcome by the decision's rule (see `phalanx-app`).

use super::{WireError, limits};
use phalanx_crypto::{Digest, PublicKey};
use serde::{Deserialize, Serialize};

/// How a decision is won.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DecisionRule {
    /// One option holds more than half of the voters' weight.
    Majority,
    /// One option holds at least two thirds of the voters' weight.
    TwoThirds,
    /// Every voter chose the same option.
    Unanimous,
    /// Free-form results computed redundantly: `f + 1` voters report the same result digest,
    /// so at least one of them is honest when at most `f` lie.
    MatchingResults { f: u32 },
}

impl DecisionRule {
    /// The rule's name on the command line and in JSON (`f` apart).
    pub fn name(&self) -> &'static str {
        match self {
            DecisionRule::Majority => "majority",
            DecisionRule::TwoThirds => "two-thirds",
            DecisionRule::Unanimous => "unanimous",
            DecisionRule::MatchingResults { .. } => "f+1-matching",
        }
    }

    /// The `f` of `f+1-matching`.
    pub fn f(&self) -> Option<u32> {
        match self {
            DecisionRule::MatchingResults { f } => Some(*f),
            _ => None,
        }
    }

    /// A rule by name; `f+1-matching` needs `f`, the others take none.
    pub fn parse(name: &str, f: Option<u32>) -> Result<Self, String> {
        let rule = match name {
            "majority" => DecisionRule::Majority,
            "two-thirds" => DecisionRule::TwoThirds,
            "unanimous" => DecisionRule::Unanimous,
            "f+1-matching" => {
                let f = f.ok_or("rule f+1-matching needs f (the voters that may lie)")?;
                return Ok(DecisionRule::MatchingResults { f });
            }
            other => {
                return Err(format!(
                    "unknown rule {other:?}: expected majority, two-thirds, unanimous or f+1-matching"
                ));
            }
        };
        match f {
            Some(_) => Err(format!("rule {name} takes no f (only f+1-matching does)")),
            None => Ok(rule),
        }
    }
}

/// What a decision asks, of whom, and until when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionSpec {
    /// Unique among the decisions the state holds: letters, digits, `.`, `_`, `-`.
    pub id: String,
    pub question: String,
    /// The choices; empty for free-form results compared by digest.
    pub options: Vec<String>,
    /// The eligible voters, by key.
    pub voters: Vec<PublicKey>,
    pub rule: DecisionRule,
    /// Weigh each vote by its voter's committed record (see `phalanx-app`'s decisions).
    pub weighted: bool,
    /// The decision closes once the replicated clock passes opening + this.
    pub deadline_ms: u64,
}

/// One voter's choice.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Ballot {
    /// One of the decision's options, by name.
    Option(String),
    /// The digest of a result computed by the voter, and where the full result is stored
    /// (a shared-memory `namespace/key`, say).
    Result { digest: Digest, location: String },
    /// Counted as voting, for no option.
    Abstain,
}

impl Ballot {
    /// The choice as a tally shows it: the option, `result:<digest hex>` or `abstain`.
    pub fn label(&self) -> String {
        match self {
            Ballot::Option(o) => o.clone(),
            Ballot::Result { digest, .. } => format!("result:{}", digest.to_hex()),
            Ballot::Abstain => "abstain".into(),
        }
    }

    /// What the ballot chooses, with the location of a result left out: two voters who
    /// computed the same result agree wherever they stored it.
    pub fn choice(&self) -> Option<String> {
        match self {
            Ballot::Abstain => None,
            b => Some(b.label()),
        }
    }
}

/// A decision operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DecisionOp {
    /// Opens a decision (the operator, or any admitted client or member).
    Open(Box<DecisionSpec>),
    /// The signer's ballot (boxed: an operation stays small in every batch's memory).
    Vote(Box<CastBallot>),
}

/// A voter's ballot on one decision, with the reason it gives (kept with the dissent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CastBallot {
    pub id: String,
    pub ballot: Ballot,
    pub reason: String,
}

impl DecisionOp {
    /// A ballot on decision `id`.
    pub fn vote(id: impl Into<String>, ballot: Ballot, reason: impl Into<String>) -> Self {
        DecisionOp::Vote(Box::new(CastBallot { id: id.into(), ballot, reason: reason.into() }))
    }
}

impl DecisionOp {
    /// The decision the operation is about.
    pub fn id(&self) -> &str {
        match self {
            DecisionOp::Open(spec) => &spec.id,
            DecisionOp::Vote(v) => &v.id,
        }
    }

    pub(super) fn check_limits(&self) -> Result<(), WireError> {
        check_id(self.id())?;
        match self {
            DecisionOp::Open(spec) => {
                if spec.question.len() > limits::MAX_DECISION_QUESTION {
                    return Err(WireError::Limit("decision question longer than 1 KiB"));
                }
                if spec.options.len() > limits::MAX_DECISION_OPTIONS
                    || spec.options.iter().any(|o| o.is_empty() || o.len() > limits::MAX_DECISION_OPTION)
                {
                    return Err(WireError::Limit(
                        "more than 16 decision options, or an option empty or longer than 128 bytes",
                    ));
                }
                if spec.voters.len() > limits::MAX_DECISION_VOTERS {
                    return Err(WireError::Limit("more than 128 decision voters"));
                }
            }
            DecisionOp::Vote(v) => {
                let CastBallot { ballot, reason, .. } = &**v;
                if reason.len() > limits::MAX_DECISION_REASON {
                    return Err(WireError::Limit("vote reason longer than 256 bytes"));
                }
                match ballot {
                    Ballot::Option(o) if o.len() > limits::MAX_DECISION_OPTION => {
                        return Err(WireError::Limit("ballot option longer than 128 bytes"));
                    }
                    Ballot::Result { location, .. } if location.len() > limits::MAX_DECISION_LOCATION => {
                        return Err(WireError::Limit("result location longer than 128 bytes"));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// Whether `id` is a decision id: 1 to 64 letters, digits, `.`, `_` or `-`.
pub fn check_id(id: &str) -> Result<(), WireError> {
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if id.is_empty() || id.len() > limits::MAX_DECISION_ID || !id.chars().all(valid) {
        return Err(WireError::Limit("decision id must be 1 to 64 letters, digits, '.', '_' or '-'"));
    }
    Ok(())
}
