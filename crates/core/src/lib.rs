//! Phalanx core: the deterministic, sans-IO heart of the system.
//!
//! - [`wire`]: every message and its canonical encoding; total decoding of untrusted bytes.
//! - [`consensus`]: the PBFT replica as a pure state machine, `handle(now, input) -> effects`.
//! - [`application`]: the trait an application implements to be replicated.
//! - [`state`]: what consensus replicates for itself (client table, clock, accountability).
//! - [`evidence`]: self-contained proofs of misbehaviour, and reports that carry them.
//! - [`accountability`]: what committed reports do: evidence, accusations, quarantine, the
//!   detection log, membership changes.
//! - [`membership`]: epochs, their members and voters.
//! - [`new_view`]: the pure computation of what a NEW-VIEW must re-propose.
//!
//! Nothing in this crate performs I/O, reads a clock, spawns a thread or uses unseeded
//! randomness; the host (simulator or node) supplies time and delivers effects.

// Replicas run this code on input from Byzantine members: it answers with errors, never a panic
// (as Malachite's core crates do). Tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod accountability;
pub mod application;
pub mod consensus;
pub mod evidence;
pub mod membership;
pub mod new_view;
pub mod quorum;
pub mod recent;
pub mod state;
pub mod wire;

pub use phalanx_crypto as crypto;
