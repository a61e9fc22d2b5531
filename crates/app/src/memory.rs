//! The shared memory: a namespaced key-value store with owners, quotas and expiry.
//!
//! A key belongs to the client that wrote it: nobody else may overwrite it until it expires,
//! unless the operator declared its namespace shared (then any client may). Every client has a
//! quota of the store, so one client cannot fill it for everyone. Each entry is charged its
//! bytes plus a fixed overhead for what the snapshot encodes beside them (writer, seq, expiry),
//! so the store's bound is a bound on its share of the snapshot.

use crate::AppState;
use phalanx_core::wire::{RejectReason, Seq, limits};
use phalanx_crypto::PublicKey;
use serde::{Deserialize, Serialize};

/// One value in the shared memory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEntry {
    pub value: String,
    pub writer: PublicKey,
    pub stored_seq: Seq,
    pub expires_at_ms: Option<u64>,
}

/// What a snapshot encodes for an entry beside namespace, key and value (writer key, seq,
/// expiry, length prefixes), charged to the writer's quota and the store's total.
pub const ENTRY_OVERHEAD: u64 = 64;
/// One client's share of the store: a sixteenth, so at least sixteen clients fit.
pub const MAX_MEMORY_PER_CLIENT: u64 = limits::MAX_MEMORY_TOTAL / 16;
/// Namespaces the operator may declare shared.
pub const MAX_SHARED_NAMESPACES: usize = 256;

/// What an entry costs the store.
pub fn entry_cost(namespace: &str, key: &str, value: &str) -> u64 {
    (namespace.len() + key.len() + value.len()) as u64 + ENTRY_OVERHEAD
}

/// The store's parameters for one write.
pub(crate) struct Write<'a> {
    pub seq: Seq,
    /// The replicated clock, which expiry counts from.
    pub clock_ms: u64,
    pub writer: PublicKey,
    pub namespace: &'a str,
    pub key: &'a str,
    pub value: &'a str,
    pub ttl_ms: Option<u64>,
}

impl AppState {
    pub(crate) fn memory_store(&mut self, w: Write<'_>) -> Result<(), RejectReason> {
        let id = (w.namespace.to_string(), w.key.to_string());
        let old = self.memory.get(&id).map(|e| (e.writer, entry_cost(w.namespace, w.key, &e.value)));
        if let Some((owner, _)) = old
            && owner != w.writer
            && !self.shared_namespaces.contains(w.namespace)
        {
            return Err(RejectReason::NotOwner);
        }
        let new = entry_cost(w.namespace, w.key, w.value);
        let freed = old.map_or(0, |(_, c)| c);
        if self.memory_bytes - freed + new > limits::MAX_MEMORY_TOTAL {
            return Err(RejectReason::MemoryFull);
        }
        let mine = self.memory_usage.get(&w.writer).copied().unwrap_or(0);
        let mine_freed = old.filter(|(owner, _)| *owner == w.writer).map_or(0, |(_, c)| c);
        if mine - mine_freed + new > MAX_MEMORY_PER_CLIENT {
            return Err(RejectReason::MemoryQuota);
        }
        if let Some((owner, cost)) = old {
            self.release(owner, cost);
        }
        self.memory_bytes += new;
        *self.memory_usage.entry(w.writer).or_default() += new;
        let expires_at_ms = w.ttl_ms.map(|t| w.clock_ms.saturating_add(t));
        let entry =
            MemoryEntry { value: w.value.to_string(), writer: w.writer, stored_seq: w.seq, expires_at_ms };
        self.memory.insert(id, entry);
        Ok(())
    }

    /// Declares a namespace shared (operator only): any client may write any of its keys.
    pub(crate) fn share_namespace(&mut self, by_operator: bool, namespace: &str) -> Result<(), RejectReason> {
        if !by_operator {
            return Err(RejectReason::Unauthorized);
        }
        if self.shared_namespaces.len() >= MAX_SHARED_NAMESPACES
            && !self.shared_namespaces.contains(namespace)
        {
            return Err(RejectReason::MemoryFull);
        }
        self.shared_namespaces.insert(namespace.to_string());
        Ok(())
    }

    /// Drops entries expired at `now`, crediting their writers.
    pub(crate) fn expire_memory(&mut self, now: u64) {
        let mut freed: Vec<(PublicKey, u64)> = Vec::new();
        self.memory.retain(|(ns, k), e| {
            let keep = e.expires_at_ms.is_none_or(|t| t > now);
            if !keep {
                freed.push((e.writer, entry_cost(ns, k, &e.value)));
            }
            keep
        });
        for (writer, cost) in freed {
            self.release(writer, cost);
        }
    }

    fn release(&mut self, writer: PublicKey, cost: u64) {
        self.memory_bytes -= cost;
        if let Some(u) = self.memory_usage.get_mut(&writer) {
            *u -= cost;
            if *u == 0 {
                self.memory_usage.remove(&writer);
            }
        }
    }

    /// Rebuilds each writer's usage from the entries (after a restore: not encoded).
    pub(crate) fn index_memory_usage(&mut self) {
        self.memory_usage.clear();
        for ((ns, k), e) in &self.memory {
            *self.memory_usage.entry(e.writer).or_default() += entry_cost(ns, k, &e.value);
        }
    }
}
