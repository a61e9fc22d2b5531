//! Phalanx core: the deterministic, sans-IO heart of the system.
//!
//! - [`wire`]: every message and its canonical encoding; total decoding of untrusted bytes.
//! - [`consensus`]: the PBFT replica as a pure state machine, `handle(now, input) -> effects`.
//! - [`state`]: the replicated application (ledger and client table).
//! - [`evidence`]: self-contained proofs of misbehaviour.
//!
//! Nothing in this crate performs I/O, reads a clock, spawns a thread or uses unseeded
//! randomness; the host (simulator or node) supplies time and delivers effects.

pub mod consensus;
pub mod evidence;
pub mod quorum;
pub mod recent;
pub mod state;
pub mod wire;

pub use phalanx_crypto as crypto;
