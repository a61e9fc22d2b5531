//! The simulated clients: what they submit and what they check in the replies.
//!
//! - [`clients`]: transfer clients that sign, retry and accept a result on f+1 matching
//!   verified replies, as the real client does.
//! - [`federated`]: an operator and trainers running federated-learning rounds, with the
//!   checks of each round's result.

pub mod clients;
pub mod federated;
