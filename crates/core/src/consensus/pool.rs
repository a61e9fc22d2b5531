//! Client requests that were verified and wait to be ordered and executed. Bounded in total and
//! per client, so a flooding client cannot grow an honest replica's memory.

use crate::wire::ClientRequest;
use phalanx_crypto::{Digest, PublicKey};
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes map keys that are already uniform (BLAKE3 digests, public keys) with one multiply
/// per eight bytes. Unkeyed on purpose: iteration order must replay exactly in the simulator.
/// Crafting colliding keys takes a fresh client signature per attempt, and the pool is bounded
/// in total and per client, so collisions can slow it only so much.
#[derive(Default)]
pub(crate) struct UniformHasher(u64);

impl Hasher for UniformHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(23) ^ u64::from_le_bytes(word)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
}

type UniformMap<K, V> = HashMap<K, V, BuildHasherDefault<UniformHasher>>;

struct Entry {
    req: ClientRequest,
    /// Encoded size: batches are cut by bytes as well as by count.
    bytes: usize,
    /// `req.op_digest()`, computed on arrival.
    op: Digest,
    arrival_ms: u64,
    order: u64,
    proposed: bool,
    /// When it was relayed to every replica (once, after waiting half a timeout).
    relayed_ms: Option<u64>,
    /// Sent to the primary alone (once per view, after waiting a whole timeout unproposed).
    forwarded: bool,
}

/// The digests of a batch's requests, in order: operations (`op_digest`) and requests.
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestDigests {
    pub ops: Vec<Digest>,
    pub requests: Vec<Digest>,
}

impl RequestDigests {
    /// Hashes each request, unless `pool` already holds it.
    pub fn of(requests: &[ClientRequest], pool: &Pool) -> Self {
        let (ops, requests) =
            requests.iter().map(|r| pool.known_digests(r).unwrap_or_else(|| r.digests())).unzip();
        RequestDigests { ops, requests }
    }
}

pub(crate) enum Added {
    New,
    AlreadyPending,
    /// The pool (or this client's share of it) is full.
    Full,
    /// Accepted, but the client already has a different request with this nonce pending.
    Conflict(ClientRequest),
}

/// Encoded bytes the pool holds at most, whatever the count limits allow (100,000 requests of a
/// megabyte would otherwise be 100 GB).
pub(crate) const MAX_POOL_BYTES: usize = 64 << 20;

#[derive(Default)]
pub(crate) struct Pool {
    entries: UniformMap<Digest, Entry>,
    /// Not-yet-proposed requests in arrival order.
    unproposed: BTreeMap<u64, Digest>,
    by_client: UniformMap<PublicKey, Vec<(u64, Digest)>>,
    next_order: u64,
    /// The latest arrival here of a request the primary has proposed in this view.
    proposed_arrival_ms: u64,
    /// Encoded size of all pending requests.
    bytes: usize,
}

/// How much the pool may hold: requests in total and per client, and encoded bytes in total.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolLimits {
    pub total: usize,
    pub per_client: usize,
    pub bytes: usize,
}

impl Pool {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn contains(&self, d: &Digest) -> bool {
        self.entries.contains_key(d)
    }

    pub fn get(&self, d: &Digest) -> Option<&ClientRequest> {
        self.entries.get(d).map(|e| &e.req)
    }

    pub fn unproposed(&self) -> usize {
        self.unproposed.len()
    }

    /// Adds `req`, whose digests (`ClientRequest::digests`) are `op` and `d`.
    pub fn add(
        &mut self,
        req: ClientRequest,
        (op, d): (Digest, Digest),
        now: u64,
        limits: PoolLimits,
    ) -> Added {
        if self.entries.contains_key(&d) {
            return Added::AlreadyPending;
        }
        let mine = self.by_client.get(&req.body.client).map_or(0, Vec::len);
        let bytes = crate::wire::encoded_len(&req);
        if self.entries.len() >= limits.total
            || mine >= limits.per_client
            || self.bytes + bytes > limits.bytes
        {
            return Added::Full;
        }
        self.bytes += bytes;
        let conflict = self.by_client.get(&req.body.client).and_then(|v| {
            v.iter()
                .filter(|(n, _)| *n == req.body.nonce)
                .filter_map(|(_, od)| self.entries.get(od))
                .find(|e| e.op != op)
                .map(|e| e.req.clone())
        });
        let order = self.next_order;
        self.next_order += 1;
        self.by_client.entry(req.body.client).or_default().push((req.body.nonce, d));
        self.entries.insert(
            d,
            Entry {
                req,
                bytes,
                op,
                arrival_ms: now,
                order,
                proposed: false,
                relayed_ms: None,
                forwarded: false,
            },
        );
        self.unproposed.insert(order, d);
        match conflict {
            Some(other) => Added::Conflict(other),
            None => Added::New,
        }
    }

    /// Takes unproposed requests, oldest first, up to `max` of them and `max_bytes` of their
    /// encodings (always at least one: every pending request fits a batch on its own), and marks
    /// them proposed. Returns them with their digests.
    pub fn take_batch(&mut self, max: usize, max_bytes: usize) -> (Vec<ClientRequest>, RequestDigests) {
        let n = max.min(self.unproposed.len());
        let mut out = Vec::with_capacity(n);
        let mut digests = RequestDigests { ops: Vec::with_capacity(n), requests: Vec::with_capacity(n) };
        let mut bytes = 0;
        while out.len() < max {
            let Some(next) = self.unproposed.first_entry() else { break };
            let d = *next.get();
            let Some(e) = self.entries.get_mut(&d) else {
                next.remove();
                continue;
            };
            if !out.is_empty() && bytes + e.bytes > max_bytes {
                break;
            }
            next.remove();
            bytes += e.bytes;
            e.proposed = true;
            self.proposed_arrival_ms = self.proposed_arrival_ms.max(e.arrival_ms);
            out.push(e.req.clone());
            digests.ops.push(e.op);
            digests.requests.push(d);
        }
        (out, digests)
    }

    /// The digests of `req` if this very request is pending: a request hashed on arrival is not
    /// hashed again when it comes back inside a proposal (comparing its bytes is far cheaper).
    pub fn known_digests(&self, req: &ClientRequest) -> Option<(Digest, Digest)> {
        let list = self.by_client.get(&req.body.client)?;
        list.iter()
            .filter(|(n, _)| *n == req.body.nonce)
            .find_map(|(_, d)| self.entries.get(d).filter(|e| e.req == *req).map(|e| (e.op, *d)))
    }

    pub fn mark_proposed(&mut self, d: &Digest) {
        if let Some(e) = self.entries.get_mut(d) {
            e.proposed = true;
            self.proposed_arrival_ms = self.proposed_arrival_ms.max(e.arrival_ms);
            self.unproposed.remove(&e.order);
        }
    }

    /// The latest arrival here of a request the primary proposed in this view: requests that
    /// arrived well before it were passed over, not merely queued behind older ones.
    pub fn proposed_arrival_ms(&self) -> u64 {
        self.proposed_arrival_ms
    }

    /// After a view change nothing counts as proposed until the new view re-proposes it, and
    /// every request gets a fresh timeout.
    pub fn reset(&mut self, now: u64) {
        self.proposed_arrival_ms = 0;
        for (d, e) in self.entries.iter_mut() {
            e.arrival_ms = now;
            e.relayed_ms = None;
            e.forwarded = false;
            if e.proposed {
                e.proposed = false;
                self.unproposed.insert(e.order, *d);
            }
        }
    }

    /// Drops the client's requests with nonces up to `nonce`: executed, or superseded.
    pub fn remove_upto(&mut self, client: &PublicKey, nonce: u64) {
        let Some(list) = self.by_client.get_mut(client) else { return };
        list.retain(|(n, d)| {
            if *n <= nonce {
                if let Some(e) = self.entries.remove(d) {
                    self.unproposed.remove(&e.order);
                    self.bytes -= e.bytes;
                }
                false
            } else {
                true
            }
        });
        if list.is_empty() {
            self.by_client.remove(client);
        }
    }

    /// Drops the one request of `client` under `nonce` whose operation digest is `op` (it was
    /// executed). Keyed by content, not by (client, nonce): a different request under the same
    /// nonce (an opaque payload anyone could have made up) must not take an honest one along.
    pub fn remove_op(&mut self, client: &PublicKey, nonce: u64, op: &Digest) {
        let Some(list) = self.by_client.get_mut(client) else { return };
        list.retain(|(n, d)| {
            if *n != nonce || self.entries.get(d).is_some_and(|e| e.op != *op) {
                return true;
            }
            if let Some(e) = self.entries.remove(d) {
                self.unproposed.remove(&e.order);
                self.bytes -= e.bytes;
            }
            false
        });
        if list.is_empty() {
            self.by_client.remove(client);
        }
    }

    /// Requests that waited since before `cutoff` and were not relayed yet: marks them relayed
    /// at `now`. Relaying before suspecting the primary means a request a client sent to only
    /// some replicas cannot make an honest primary look silent.
    pub fn take_unrelayed(&mut self, cutoff: u64, now: u64, max: usize) -> Vec<ClientRequest> {
        let mut out = Vec::new();
        for e in self.entries.values_mut() {
            if out.len() >= max {
                break;
            }
            if e.arrival_ms <= cutoff && e.relayed_ms.is_none() {
                e.relayed_ms = Some(now);
                out.push(e.req.clone());
            }
        }
        out
    }

    /// Requests that waited since before `cutoff`, unproposed, neither relayed nor forwarded
    /// yet: marks them forwarded.
    pub fn take_unforwarded(&mut self, cutoff: u64, max: usize) -> Vec<ClientRequest> {
        let mut out = Vec::new();
        for e in self.entries.values_mut() {
            if out.len() >= max {
                break;
            }
            if e.arrival_ms <= cutoff && !e.forwarded && !e.proposed && e.relayed_ms.is_none() {
                e.forwarded = true;
                out.push(e.req.clone());
            }
        }
        out
    }

    /// Arrival of the oldest request `take_unforwarded` could take.
    pub fn oldest_unforwarded(&self) -> Option<u64> {
        self.entries
            .values()
            .filter(|e| !e.forwarded && !e.proposed && e.relayed_ms.is_none())
            .map(|e| e.arrival_ms)
            .min()
    }

    /// Arrival of the oldest request not relayed yet.
    pub fn oldest_unrelayed(&self) -> Option<u64> {
        self.entries.values().filter(|e| e.relayed_ms.is_none()).map(|e| e.arrival_ms).min()
    }

    /// The first moment some request will have waited `wait` since arriving and `spread` since
    /// it was relayed (every replica has had it that long).
    pub fn first_overdue(&self, wait: u64, spread: u64) -> Option<u64> {
        self.entries.values().filter_map(|e| Some((e.arrival_ms + wait).max(e.relayed_ms? + spread))).min()
    }
}
