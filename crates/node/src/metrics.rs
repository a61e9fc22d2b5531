//! Prometheus metrics (`GET /metrics`), in the OpenMetrics text format of `prometheus-client`.
//!
//! Two kinds of series:
//! - **events**, counted as they happen by the replica loop and the links ([`Metrics`]): view
//!   changes, detections, latencies, batch sizes, fsyncs, traffic per peer and kind;
//! - **state**, read once per scrape from the replica loop ([`Snapshot`]): height, view,
//!   epoch, members, quarantines, reputations, counters kept in committed state, ignored
//!   messages, digest agreement, links, and the process itself.
//!
//! Every name is documented in docs/observability.md; the dashboard and the alert rules in `deploy/`
//! read these names.

use phalanx_core::consensus::{DigestAgreement, Ignored, ReplicaStatus, ViewChangeCause};
use phalanx_core::wire::Message;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabel {
    cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabel {
    fault_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DetectionLabels {
    fault_type: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TrafficLabels {
    kind: &'static str,
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MemberLabel {
    member: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Series counted as things happen, shared by the replica loop, the links and the HTTP API.
pub struct Metrics {
    view_changes: Family<CauseLabel, Counter>,
    detections: Family<DetectionLabels, Counter>,
    evidence_observed: Family<FaultLabel, Counter>,
    /// From a client's request reaching this node's API to its execution here.
    commit_latency: Histogram,
    /// The histogram's sum (µs) and count again, for the dashboard's history.
    latency_sum_us: AtomicU64,
    latency_count: AtomicU64,
    /// Requests per executed batch.
    pub batch_size: Histogram,
    pub fsync: Histogram,
    sent: Family<TrafficLabels, Counter>,
    sent_bytes: Family<TrafficLabels, Counter>,
    received: Family<TrafficLabels, Counter>,
    received_bytes: Family<TrafficLabels, Counter>,
    dropped: Family<PeerLabel, Counter>,
    pub state_transfers: Counter,
    pub catch_up_requests: Counter,
    /// Operations applied and rejected in committed state, as of the last executed batch.
    pub applied: AtomicU64,
    pub rejected: AtomicU64,
    pub height: AtomicU64,
    /// One sample a second for the dashboard's charts.
    history: Mutex<VecDeque<Sample>>,
}

/// Samples kept: five minutes at one a second.
pub const HISTORY: usize = 300;

/// What the dashboard charts, sampled once a second (`GET /v1/history`).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sample {
    pub at_ms: u64,
    pub height: u64,
    pub committed: u64,
    pub rejected: u64,
    pub latency_sum_s: f64,
    pub latency_count: u64,
}

impl Default for Metrics {
    /// Every view-change cause starts at 0, so `increase()` sees the first one.
    fn default() -> Self {
        let view_changes: Family<CauseLabel, Counter> = Family::default();
        for cause in ViewChangeCause::ALL.map(|c| c.as_str()) {
            let _ = view_changes.get_or_create(&CauseLabel { cause: cause.to_string() });
        }
        Metrics {
            view_changes,
            detections: Family::default(),
            evidence_observed: Family::default(),
            // 0.5 ms … 8 s.
            commit_latency: Histogram::new(exponential_buckets(0.0005, 2.0, 15)),
            // 1 … 4,096 requests.
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            // 50 µs … 1.6 s.
            fsync: Histogram::new(exponential_buckets(0.00005, 2.0, 16)),
            sent: Family::default(),
            sent_bytes: Family::default(),
            received: Family::default(),
            received_bytes: Family::default(),
            dropped: Family::default(),
            state_transfers: Counter::default(),
            catch_up_requests: Counter::default(),
            latency_sum_us: AtomicU64::new(0),
            latency_count: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            height: AtomicU64::new(0),
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
        }
    }
}

/// One link's counters, resolved once per link so that counting a message costs two atomic
/// additions, not a label lookup.
#[derive(Clone)]
pub struct PeerCounters {
    by_kind: Vec<(Counter, Counter)>,
    dropped: Counter,
}

impl PeerCounters {
    /// One message of kind `kind` (`Message::name_index`) and `bytes` bytes.
    pub fn count(&self, kind: usize, bytes: usize) {
        if let Some((m, b)) = self.by_kind.get(kind) {
            m.inc();
            b.inc_by(bytes as u64);
        }
    }

    /// A frame dropped because the peer's queue was full.
    pub fn dropped(&self) {
        self.dropped.inc();
    }
}

impl Metrics {
    pub fn view_change(&self, cause: &str) {
        self.view_changes.get_or_create(&CauseLabel { cause: cause.to_string() }).inc();
    }

    /// A committed detection-log entry executed here.
    pub fn detection(&self, fault_type: &str, method: &str) {
        let labels = DetectionLabels { fault_type: fault_type.to_string(), method: method.to_string() };
        self.detections.get_or_create(&labels).inc();
    }

    /// Misbehaviour this replica proved itself (before the cluster commits the evidence).
    pub fn evidence(&self, fault_type: &str) {
        self.evidence_observed.get_or_create(&FaultLabel { fault_type: fault_type.to_string() }).inc();
    }

    fn link(
        &self,
        messages: &Family<TrafficLabels, Counter>,
        bytes: &Family<TrafficLabels, Counter>,
        peer: &str,
    ) -> PeerCounters {
        let labels = |kind| TrafficLabels { kind, peer: peer.to_string() };
        PeerCounters {
            by_kind: (Message::NAMES.iter())
                .map(|k| (messages.get_or_create_owned(&labels(k)), bytes.get_or_create_owned(&labels(k))))
                .collect(),
            dropped: self.dropped.get_or_create_owned(&PeerLabel { peer: peer.to_string() }),
        }
    }

    /// One request executed `seconds` after it reached this node's API.
    pub fn committed_after(&self, seconds: f64) {
        self.commit_latency.observe(seconds);
        self.latency_sum_us.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes this second's sample (the node calls it once a second).
    pub fn sample(&self, at_ms: u64) {
        let s = Sample {
            at_ms,
            height: self.height.load(Ordering::Relaxed),
            committed: self.applied.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            latency_sum_s: self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6,
            latency_count: self.latency_count.load(Ordering::Relaxed),
        };
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if h.len() == HISTORY {
            h.pop_front();
        }
        h.push_back(s);
    }

    /// The samples of the last five minutes, oldest first.
    pub fn history(&self) -> Vec<Sample> {
        self.history.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect()
    }

    /// Kinds of message a node sends only to catch up.
    pub fn is_catch_up(kind: usize) -> bool {
        matches!(Message::NAMES.get(kind), Some(&"fetch") | Some(&"state-request"))
    }

    /// Counters for what this node sends to `peer`.
    pub fn outbound(&self, peer: &str) -> PeerCounters {
        self.link(&self.sent, &self.sent_bytes, peer)
    }

    /// Counters for what this node receives from `peer`.
    pub fn inbound(&self, peer: &str) -> PeerCounters {
        self.link(&self.received, &self.received_bytes, peer)
    }
}

/// The replica's state at scrape time, copied by the replica loop (`Query::Metrics`).
pub struct Snapshot {
    pub status: ReplicaStatus,
    pub epoch_voters: usize,
    pub quorum: usize,
    pub max_faults: usize,
    pub applied: u64,
    pub rejected: u64,
    pub evidence_accepted: u64,
    pub evidence_rejected: u64,
    pub forced_view_changes: u64,
    /// Member names quarantined now.
    pub quarantined: Vec<String>,
    /// Member id → reputation score.
    pub reputations: Vec<f64>,
    pub digests: Vec<DigestAgreement>,
}

/// What the HTTP side adds at scrape time.
pub struct Scrape<'a> {
    /// Member id → name.
    pub names: &'a [String],
    /// Member id → whether this node heard from it recently (itself included).
    pub links_up: &'a [bool],
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g: Gauge = Gauge::default();
    g.set(value);
    registry.register(name, help, g);
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter = Counter::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

/// Encodes every series: the live ones, and the snapshot's as fresh metrics.
pub fn render(live: &Metrics, snap: &Snapshot, scrape: &Scrape) -> String {
    let mut root = Registry::default();
    let name = |id: usize| scrape.names.get(id).cloned().unwrap_or_else(|| format!("member-{id}"));
    {
        let r = root.sub_registry_with_prefix("phalanx");
        let st = &snap.status;
        gauge(
            r,
            "height",
            "Highest seq executed here (the committed history's height)",
            st.last_executed as i64,
        );
        gauge(r, "stable_checkpoint", "Seq of the latest stable checkpoint", st.stable_checkpoint as i64);
        gauge(r, "view", "Current view", st.view as i64);
        gauge(r, "view_change_in_progress", "1 while changing to a new view", i64::from(!st.active));
        gauge(r, "epoch", "Current membership epoch", st.epoch as i64);
        gauge(r, "primary_id", "Member id of the current view's primary", st.primary as i64);
        gauge(
            r,
            "is_primary",
            "1 if this node is the current view's primary",
            i64::from(st.primary == st.id),
        );
        gauge(r, "voters", "Voting members of the current epoch", snap.epoch_voters as i64);
        gauge(r, "quorum", "Votes a certificate needs (2f+1)", snap.quorum as i64);
        gauge(r, "max_faults", "Byzantine members tolerated (f)", snap.max_faults as i64);
        gauge(r, "quarantined_members", "Members quarantined now", snap.quarantined.len() as i64);
        gauge(r, "requests_pending", "Client requests waiting in the pool", st.pending_requests as i64);
        counter(
            r,
            "transactions_committed",
            "Operations applied by executed batches (committed state)",
            snap.applied,
        );
        counter(
            r,
            "transactions_rejected",
            "Operations executed and rejected (committed state)",
            snap.rejected,
        );
        counter(
            r,
            "evidence_accepted",
            "Evidence reports committed and verified (committed state)",
            snap.evidence_accepted,
        );
        counter(
            r,
            "evidence_rejected",
            "Evidence reports that failed verification (committed state)",
            snap.evidence_rejected,
        );
        counter(
            r,
            "forced_view_changes",
            "View changes forced by the operator (committed state)",
            snap.forced_view_changes,
        );

        let quarantined: Family<MemberLabel, Gauge> = Family::default();
        let reputation: Family<MemberLabel, Gauge<f64, AtomicU64>> = Family::default();
        for (id, score) in snap.reputations.iter().enumerate() {
            let m = MemberLabel { member: name(id) };
            reputation.get_or_create(&m).set(*score);
            quarantined.get_or_create(&m).set(i64::from(snap.quarantined.contains(&m.member)));
        }
        r.register(
            "member_reputation",
            "Reputation of each member as this node sees it (1 spotless, 0 proven faulty)",
            reputation,
        );
        r.register("member_quarantined", "1 if the member is quarantined now", quarantined);

        let ignored: Family<ReasonLabel, Counter> = Family::default();
        for reason in Ignored::ALL {
            let _ = ignored.get_or_create(&ReasonLabel { reason: reason.as_str() });
        }
        for (reason, n) in &st.ignored {
            ignored.get_or_create(&ReasonLabel { reason: reason.as_str() }).inc_by(*n);
        }
        r.register("messages_ignored", "Messages the replica dropped without effect, by reason", ignored);

        let agrees: Family<MemberLabel, Gauge> = Family::default();
        let mut disagreeing = 0;
        for d in &snap.digests {
            if let Some(a) = d.agrees {
                agrees.get_or_create(&MemberLabel { member: name(d.member as usize) }).set(i64::from(a));
                disagreeing += i64::from(!a);
            }
        }
        r.register(
            "checkpoint_digest_agrees",
            "1 if the member's latest signed checkpoint matches this node's state at that seq, 0 if it differs",
            agrees,
        );
        gauge(
            r,
            "checkpoint_digest_disagreements",
            "Members whose latest signed checkpoint differs from this node's state",
            disagreeing,
        );

        let up: Family<PeerLabel, Gauge> = Family::default();
        for (id, ok) in scrape.links_up.iter().enumerate() {
            if id as u32 != st.id {
                up.get_or_create(&PeerLabel { peer: name(id) }).set(i64::from(*ok));
            }
        }
        r.register("peer_link_up", "1 if this node heard from the peer in the last 5 s", up);

        r.register(
            "view_changes",
            "Views entered, by why this node left the previous one",
            live.view_changes.clone(),
        );
        r.register(
            "byzantine_detections",
            "Detection-log entries committed while this node ran, by fault and detection method",
            live.detections.clone(),
        );
        r.register(
            "evidence_observed",
            "Misbehaviour this node proved itself, by fault (before it is committed)",
            live.evidence_observed.clone(),
        );
        r.register_with_unit(
            "commit_latency",
            "From a request reaching this node's API to its execution here",
            Unit::Seconds,
            live.commit_latency.clone(),
        );
        r.register("batch_size", "Requests per executed batch", live.batch_size.clone());
        r.register_with_unit(
            "journal_fsync_duration",
            "One durable journal write (one fsync)",
            Unit::Seconds,
            live.fsync.clone(),
        );
        r.register("messages_sent", "Messages sent, by kind and peer", live.sent.clone());
        r.register_with_unit("sent", "Bytes sent, by kind and peer", Unit::Bytes, live.sent_bytes.clone());
        r.register(
            "messages_received",
            "Messages received and decoded, by kind and peer",
            live.received.clone(),
        );
        r.register_with_unit(
            "received",
            "Bytes received, by kind and peer",
            Unit::Bytes,
            live.received_bytes.clone(),
        );
        r.register(
            "frames_dropped",
            "Frames dropped because the peer's queue was full",
            live.dropped.clone(),
        );
        r.register(
            "state_transfers",
            "Certified snapshots installed to catch up",
            live.state_transfers.clone(),
        );
        r.register(
            "catch_up_requests",
            "Requests this node sent to catch up: commit certificates (fetch) and snapshots (state-request)",
            live.catch_up_requests.clone(),
        );
    }
    process(&mut root);
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &root).is_err() {
        out.clear();
    }
    out
}

/// The standard `process_*` series, read from /proc (Linux; absent elsewhere).
fn process(r: &mut Registry) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
    // Fields after the parenthesised command name (which may hold spaces).
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { return };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // Linux reports CPU time in clock ticks of 1/100 s (USER_HZ) on every architecture.
    let ticks = field(14) + field(15);
    let cpu: Counter<f64, AtomicU64> = Counter::default();
    cpu.inc_by(ticks as f64 / 100.0);
    r.register_with_unit("process_cpu", "User and system CPU time spent", Unit::Seconds, cpu);
    let rss_kib = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse::<i64>().ok())
    });
    if let Some(kib) = rss_kib {
        gauge(r, "process_resident_memory_bytes", "Resident memory size", kib * 1024);
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        gauge(r, "process_open_fds", "Open file descriptors", dir.count() as i64);
    }
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok()));
    if let Some(boot) = boot {
        let start = boot as f64 + field(22) as f64 / 100.0;
        let g: Gauge<f64, AtomicU64> = Gauge::default();
        g.set(start);
        r.register_with_unit(
            "process_start_time",
            "Start time of the process since the Unix epoch",
            Unit::Seconds,
            g,
        );
    }
}
