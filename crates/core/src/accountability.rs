//! The accountability part of the replicated state: who the members are (every epoch's keys, so
//! old evidence stays verifiable), committed evidence and accusations, quarantine with expiry,
//! the detection log and the replicated part of each member's reputation.
//!
//! Everything here changes only when a committed operation executes, so every honest replica
//! holds the same detection log and quarantines the same member at the same seq.

use crate::evidence::{Accusation, Culprit, Evidence, Report};
use crate::membership::{Epoch, Member};
use crate::recent::RecentSet;
use crate::wire::{EpochNo, OperatorAction, RejectReason, ReplicaId, Seq};
use phalanx_crypto::{Digest, PublicKey};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Default quarantine: one hour of committed time.
pub const DEFAULT_QUARANTINE_MS: u64 = 60 * 60 * 1000;
/// Detection log entries kept in the state (older ones are counted, not kept).
const LOG_CAPACITY: usize = 1024;
/// The detection log's `reported_by` for evidence the replicated state found itself.
pub const FOUND_BY_EXECUTION: &str = "execution";

/// Evidence identities remembered for deduplication.
const EVIDENCE_MEMORY: usize = 4096;

/// One quarantined member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantine {
    pub name: String,
    pub since_ms: u64,
    pub expires_ms: u64,
    pub fault: String,
}

/// One line of the detection log (field names as in docs/operations.md, "Detection log").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectionEntry {
    /// The seq whose batch committed the report.
    pub seq: Seq,
    /// Committed batch time (ms since the Unix epoch on a node).
    pub timestamp: u64,
    pub detected_agent: String,
    pub fault_type: String,
    /// `evidence` (provable), `accusations` (f+1 accusers) or `timeout` (one accuser).
    pub detection_method: String,
    /// Evidence identity (BLAKE3 of its encoding), or the accusers' names.
    pub evidence: String,
    pub reported_by: String,
    /// `quarantined` or `reputation-lowered`.
    pub action: String,
    pub quarantine_expires: Option<u64>,
}

/// What the replicated state knows of a member's conduct (the node adds what it observes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Committed evidence naming it.
    pub evidence_against: u64,
    /// Committed accusations naming it, by fault.
    pub accusations_against: BTreeMap<Accusation, u64>,
    /// Reports it made that were committed (evidence and accusations).
    pub reports_made: u64,
    pub quarantines: u64,
    /// Reports it made that proved nothing (forged, malformed, another epoch's): each cost every
    /// replica its checks, so each costs its sender reputation.
    pub reports_rejected: u64,
}

/// Something the replica must act on after a batch executes (not part of the state digest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateEvent {
    /// The operator forced the primary of this view out.
    ForceViewChange(crate::wire::View),
    /// The operator injected (or cleared) a fault in this member (testing clusters).
    FaultInjected { agent: String, fault: Option<String>, probability_permille: u32 },
    /// A member's quarantine started or ended.
    QuarantineChanged,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accountability {
    pub cluster: Digest,
    pub operator: Option<PublicKey>,
    pub quarantine_ms: u64,
    /// Every epoch so far, oldest first; the last is current or scheduled.
    pub epochs: Vec<Epoch>,
    /// Where joiners admitted by reconfigurations listen (replica, HTTP), by member id; genesis
    /// members' addresses are in the nodes' configuration.
    pub addresses: BTreeMap<ReplicaId, (String, String)>,
    /// K: epochs change at checkpoint boundaries.
    pub checkpoint_interval: u64,
    /// L: the log window, which bounds how large a NEW-VIEW can grow (reconfigurations that
    /// would let it outgrow a frame are refused).
    pub log_window: u64,
    pub quarantined: BTreeMap<PublicKey, Quarantine>,
    /// Accusations that can still lead to a quarantine: accused → accuser → when.
    pub accusations: BTreeMap<PublicKey, BTreeMap<PublicKey, u64>>,
    pub members: BTreeMap<PublicKey, MemberRecord>,
    evidence_seen: RecentSet<Digest, EVIDENCE_MEMORY>,
    /// Digests of reports rejected recently: the same bytes again are refused without being
    /// decoded or verified again.
    rejected_seen: RecentSet<Digest, EVIDENCE_MEMORY>,
    pub log: VecDeque<DetectionEntry>,
    /// Entries ever appended (the log keeps the last [`LOG_CAPACITY`]).
    pub log_total: u64,
    pub evidence_accepted: u64,
    /// Forged or malformed evidence that failed verification.
    pub evidence_rejected: u64,
    pub evidence_duplicates: u64,
    pub forced_view_changes: u64,
    /// Testing clusters accept fault injection.
    pub testing: bool,
    /// Faults injected by the operator and active now, by member name.
    pub injected: BTreeMap<String, String>,
    /// Members that were ever made faulty: the ground truth of the false-positive rate.
    pub ever_injected: BTreeSet<String>,
}

/// Who signed a system operation, and when and where it executes.
pub struct Context {
    pub seq: Seq,
    pub clock_ms: u64,
    pub signer: PublicKey,
}

impl Accountability {
    pub fn new(
        cluster: Digest,
        epoch: Epoch,
        operator: Option<PublicKey>,
        quarantine_ms: u64,
        testing: bool,
        (checkpoint_interval, log_window): (u64, u64),
    ) -> Self {
        let members = epoch.members.iter().map(|m| (m.key, MemberRecord::default())).collect();
        Accountability {
            cluster,
            operator,
            quarantine_ms: if quarantine_ms == 0 { DEFAULT_QUARANTINE_MS } else { quarantine_ms },
            epochs: vec![epoch],
            addresses: BTreeMap::new(),
            checkpoint_interval,
            log_window,
            quarantined: BTreeMap::new(),
            accusations: BTreeMap::new(),
            members,
            evidence_seen: RecentSet::default(),
            rejected_seen: RecentSet::default(),
            log: VecDeque::new(),
            log_total: 0,
            evidence_accepted: 0,
            evidence_rejected: 0,
            evidence_duplicates: 0,
            forced_view_changes: 0,
            testing,
            injected: BTreeMap::new(),
            ever_injected: BTreeSet::new(),
        }
    }

    /// The newest epoch, which may be scheduled to start at a later checkpoint boundary.
    #[allow(clippy::expect_used, reason = "the history is created non-empty and never shrinks below one")]
    pub fn current(&self) -> &Epoch {
        self.epochs.last().expect("the history starts with the genesis epoch")
    }

    /// The epoch that orders `seq` (the genesis epoch for seq 0).
    pub fn ordering(&self, seq: Seq) -> &Epoch {
        self.epochs.iter().rev().find(|e| e.start < seq || e.number == 0).unwrap_or(self.current())
    }

    /// A reconfiguration is committed but its boundary not yet executed.
    pub fn pending(&self, executed: Seq) -> Option<&Epoch> {
        self.epochs.last().filter(|e| e.start > executed)
    }

    fn epoch(&self, number: EpochNo) -> Option<&Epoch> {
        self.epochs.iter().find(|e| e.number == number)
    }

    /// Any agent ever admitted, by key (ids are stable across epochs).
    pub fn member(&self, key: &PublicKey) -> Option<(ReplicaId, &Member)> {
        let e = self.current();
        e.id_of(key).map(|id| (id, &e.members[id as usize]))
    }

    /// A member by name.
    pub fn member_named(&self, name: &str) -> Option<(ReplicaId, &Member)> {
        let e = self.current();
        e.members.iter().position(|m| m.name == name).map(|i| (i as ReplicaId, &e.members[i]))
    }

    pub fn is_quarantined(&self, key: &PublicKey) -> bool {
        self.quarantined.contains_key(key)
    }

    /// Keys that may submit system operations: members (current or scheduled voters) and the
    /// operator.
    pub fn may_submit(&self, key: &PublicKey) -> bool {
        let voter = |e: &Epoch| e.id_of(key).is_some_and(|id| e.is_voter(id));
        self.epochs.iter().rev().take(2).any(voter) || self.operator.as_ref() == Some(key)
    }

    /// Ends quarantines whose time has passed on the replicated clock.
    pub fn expire(&mut self, now_ms: u64, events: &mut Vec<StateEvent>) {
        let before = self.quarantined.len();
        self.quarantined.retain(|_, q| q.expires_ms > now_ms);
        if self.quarantined.len() != before {
            events.push(StateEvent::QuarantineChanged);
        }
        // Accusations count toward a quarantine only within one quarantine period.
        let horizon = now_ms.saturating_sub(self.quarantine_ms);
        for by in self.accusations.values_mut() {
            by.retain(|_, at| *at > horizon);
        }
        self.accusations.retain(|_, by| !by.is_empty());
    }

    /// Executes a system operation. Deterministic: depends only on the state and the operation.
    pub fn execute_report(
        &mut self,
        cx: &Context,
        bytes: &[u8],
        events: &mut Vec<StateEvent>,
    ) -> Result<(), RejectReason> {
        let ordering = self.ordering(cx.seq);
        let Some(id) = ordering.id_of(&cx.signer).filter(|id| ordering.is_voter(*id)) else {
            return Err(RejectReason::Unauthorized);
        };
        let reporter = ordering.members[id as usize].name.clone();
        if self.is_quarantined(&cx.signer) {
            return Err(RejectReason::Unauthorized);
        }
        let id = phalanx_crypto::digest(bytes);
        if self.rejected_seen.contains(&id) {
            self.evidence_rejected += 1;
            self.members.entry(cx.signer).or_default().reports_rejected += 1;
            return Err(RejectReason::InvalidEvidence);
        }
        let result = match Report::decode(bytes) {
            Ok(Report::Evidence(ev)) => self.evidence(cx, Some(&reporter), &ev, events),
            Ok(Report::Accusation { epoch, accused, fault }) => {
                self.accusation(cx, &reporter, epoch, accused, fault, events)
            }
            Err(_) => {
                self.evidence_rejected += 1;
                Err(RejectReason::InvalidEvidence)
            }
        };
        if result == Err(RejectReason::InvalidEvidence) {
            self.members.entry(cx.signer).or_default().reports_rejected += 1;
            self.rejected_seen.insert(id);
        }
        result
    }

    /// Commits evidence the application found while executing the request in `cx` (a voter's
    /// two ballots, say): every replica found it in the same batch, so no member reports it.
    pub fn commit_found(&mut self, cx: &Context, ev: &Evidence, events: &mut Vec<StateEvent>) {
        // A duplicate (the same voter caught again) changes nothing.
        let _ = self.evidence(cx, None, ev, events);
    }

    /// `reporter`: the member whose report carried the evidence (`None`: found by execution).
    fn evidence(
        &mut self,
        cx: &Context,
        reporter: Option<&str>,
        ev: &Evidence,
        events: &mut Vec<StateEvent>,
    ) -> Result<(), RejectReason> {
        let credit = reporter.is_some();
        let reporter = reporter.unwrap_or(FOUND_BY_EXECUTION);
        let key = ev.slot_key();
        if self.evidence_seen.contains(&key) {
            self.evidence_duplicates += 1;
            return Err(RejectReason::Duplicate);
        }
        // The culprit's key, from the epoch the evidence was signed in.
        let culprit = match (ev.epoch(), ev.culprit()) {
            (Some(n), Culprit::Member(id)) => {
                let Some(epoch) = self.epoch(n) else {
                    self.evidence_rejected += 1;
                    return Err(RejectReason::InvalidEvidence);
                };
                if ev.verify(&self.cluster, &epoch.keys(), self.testing).is_err() {
                    self.evidence_rejected += 1;
                    return Err(RejectReason::InvalidEvidence);
                }
                epoch.members[id as usize].key
            }
            (_, Culprit::Client(k)) => {
                if ev.verify(&self.cluster, &[], self.testing).is_err() {
                    self.evidence_rejected += 1;
                    return Err(RejectReason::InvalidEvidence);
                }
                k
            }
            (None, Culprit::Member(_)) => {
                self.evidence_rejected += 1;
                return Err(RejectReason::InvalidEvidence);
            }
        };
        self.evidence_seen.insert(key);
        self.evidence_accepted += 1;
        if credit {
            self.credit_reporter(cx);
        }
        let name = match self.member(&culprit) {
            Some((_, m)) => m.name.clone(),
            // A client (not a member) double-spent: logged, nothing to quarantine.
            None => {
                let entry =
                    self.entry(cx, format!("client:{}", culprit.to_hex()), ev.fault_type(), "evidence");
                self.push_log(DetectionEntry {
                    evidence: ev.id().to_hex(),
                    reported_by: reporter.into(),
                    action: match ev {
                        Evidence::DoubleVote(..) => "ballots-voided",
                        _ => "transaction-rejected",
                    }
                    .into(),
                    ..entry
                });
                return Ok(());
            }
        };
        self.members.entry(culprit).or_default().evidence_against += 1;
        let expires = self.quarantine(cx, culprit, &name, ev.fault_type(), events);
        let entry = self.entry(cx, name, ev.fault_type(), "evidence");
        self.push_log(DetectionEntry {
            evidence: ev.id().to_hex(),
            reported_by: reporter.into(),
            action: if expires.is_some() { "quarantined" } else { "already-quarantined" }.into(),
            quarantine_expires: expires.or_else(|| self.quarantined.get(&culprit).map(|q| q.expires_ms)),
            ..entry
        });
        Ok(())
    }

    fn accusation(
        &mut self,
        cx: &Context,
        reporter: &str,
        epoch: EpochNo,
        accused: ReplicaId,
        fault: Accusation,
        events: &mut Vec<StateEvent>,
    ) -> Result<(), RejectReason> {
        let current = self.ordering(cx.seq).clone();
        if epoch != current.number || !current.is_voter(accused) {
            self.evidence_rejected += 1;
            return Err(RejectReason::InvalidEvidence);
        }
        let accused_member = current.members[accused as usize].clone();
        if accused_member.key == cx.signer {
            return Err(RejectReason::InvalidEvidence);
        }
        if fault == Accusation::BadSignature {
            let accusers = self.accusations.entry(accused_member.key).or_default();
            if accusers.insert(cx.signer, cx.clock_ms).is_some() {
                return Err(RejectReason::Duplicate);
            }
        }
        self.credit_reporter(cx);
        *self.members.entry(accused_member.key).or_default().accusations_against.entry(fault).or_default() +=
            1;
        let mut entry = self.entry(cx, accused_member.name.clone(), fault.as_str(), "timeout");
        entry.reported_by = reporter.into();
        entry.evidence = format!("accusation by {reporter}");
        if fault != Accusation::BadSignature {
            entry.action = "reputation-lowered".into();
            self.push_log(entry);
            return Ok(());
        }
        entry.detection_method = "signature-check".into();
        // Accusers count only while they are voters of the current epoch and not quarantined:
        // a member removed by a reconfiguration or caught since speaks for no one.
        let accusers: Vec<PublicKey> = self
            .accusations
            .get(&accused_member.key)
            .map(|a| a.keys().copied().collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|k| current.id_of(k).is_some_and(|id| current.is_voter(id)) && !self.is_quarantined(k))
            .collect();
        let distinct = accusers.len();
        if distinct < current.f + 1 || self.is_quarantined(&accused_member.key) {
            entry.action = "reputation-lowered".into();
            self.push_log(entry);
            return Ok(());
        }
        // f+1 distinct members saw bad signatures on its own links: at least one is honest.
        let names: Vec<String> = accusers
            .iter()
            .filter_map(|k| current.members.iter().find(|m| m.key == *k).map(|m| m.name.clone()))
            .collect();
        self.accusations.remove(&accused_member.key);
        let expires = self.quarantine(cx, accused_member.key, &accused_member.name, fault.as_str(), events);
        entry.detection_method = "accusations".into();
        entry.evidence = format!("{distinct} accusers: {}", names.join(","));
        entry.action = "quarantined".into();
        entry.quarantine_expires = expires;
        self.push_log(entry);
        Ok(())
    }

    /// Executes an operator action; only the operator key named in genesis may.
    pub fn execute_operator(
        &mut self,
        cx: &Context,
        action: &OperatorAction,
        events: &mut Vec<StateEvent>,
    ) -> Result<(), RejectReason> {
        if self.operator.as_ref() != Some(&cx.signer) {
            return Err(RejectReason::Unauthorized);
        }
        if let OperatorAction::InjectFault { agent, fault, probability_permille } = action {
            if !self.testing {
                // Logged for everyone to see: somebody holding the operator key tried.
                let mut e = self.entry(cx, agent.clone(), "fault-injection-refused", "operator");
                e.evidence =
                    format!("inject {} into a production cluster", fault.as_deref().unwrap_or("clear"));
                e.action = "refused".into();
                self.push_log(e);
                return Err(RejectReason::Unauthorized);
            }
            if self.member_named(agent).is_none() {
                return Err(RejectReason::UnknownAccount);
            }
            match fault {
                Some(f) => {
                    self.injected.insert(agent.clone(), f.clone());
                    self.ever_injected.insert(agent.clone());
                }
                None => {
                    self.injected.remove(agent);
                }
            }
            events.push(StateEvent::FaultInjected {
                agent: agent.clone(),
                fault: fault.clone(),
                probability_permille: *probability_permille,
            });
            return Ok(());
        }
        match action {
            OperatorAction::ForceViewChange { view } => {
                self.forced_view_changes += 1;
                events.push(StateEvent::ForceViewChange(*view));
            }
            OperatorAction::LiftQuarantine { member } => {
                let key = self.member_named(member).map(|(_, m)| m.key);
                let Some(key) = key else { return Err(RejectReason::UnknownAccount) };
                if self.quarantined.remove(&key).is_some() {
                    events.push(StateEvent::QuarantineChanged);
                }
            }
            OperatorAction::UpdateQuorum { remove, add, f } => {
                let next = self.next_epoch(cx.seq, remove, add, *f)?;
                for j in add {
                    if let Some(id) = next.id_of(&j.key) {
                        self.addresses.insert(id, (j.replica_addr.clone(), j.http_addr.clone()));
                    }
                    self.members.entry(j.key).or_default();
                }
                // The replica reads the new epoch from the state when it executes the boundary.
                self.epochs.push(next);
            }
            // Handled by the state before it gets here (shared memory is not accountability).
            OperatorAction::InjectFault { .. } | OperatorAction::ShareNamespace { .. } => {}
        }
        Ok(())
    }

    /// The epoch a reconfiguration committed at `seq` creates, if it is allowed: one change at a
    /// time, and what [`Epoch::reconfigured`] allows.
    fn next_epoch(
        &self,
        seq: Seq,
        remove: &[String],
        add: &[crate::wire::Joiner],
        f: Option<u32>,
    ) -> Result<Epoch, RejectReason> {
        let bad = Err(RejectReason::InvalidReconfiguration);
        if self.pending(seq).is_some() || (remove.is_empty() && add.is_empty() && f.is_none()) {
            return bad;
        }
        self.current()
            .reconfigured(seq, (self.checkpoint_interval, self.log_window), remove, add, f)
            .ok_or(RejectReason::InvalidReconfiguration)
    }

    fn credit_reporter(&mut self, cx: &Context) {
        self.members.entry(cx.signer).or_default().reports_made += 1;
    }

    /// Quarantines `key` unless it already is; returns the expiry if a quarantine started.
    fn quarantine(
        &mut self,
        cx: &Context,
        key: PublicKey,
        name: &str,
        fault: &str,
        events: &mut Vec<StateEvent>,
    ) -> Option<u64> {
        if self.quarantined.contains_key(&key) {
            return None;
        }
        let expires_ms = cx.clock_ms.saturating_add(self.quarantine_ms);
        self.quarantined.insert(
            key,
            Quarantine { name: name.into(), since_ms: cx.clock_ms, expires_ms, fault: fault.into() },
        );
        self.members.entry(key).or_default().quarantines += 1;
        events.push(StateEvent::QuarantineChanged);
        Some(expires_ms)
    }

    fn entry(&self, cx: &Context, agent: String, fault: &str, method: &str) -> DetectionEntry {
        DetectionEntry {
            seq: cx.seq,
            timestamp: cx.clock_ms,
            detected_agent: agent,
            fault_type: fault.into(),
            detection_method: method.into(),
            evidence: String::new(),
            reported_by: String::new(),
            action: String::new(),
            quarantine_expires: None,
        }
    }

    /// Appends to the detection log. Past its capacity the oldest entry goes, unless it records
    /// a quarantine still in force: a flood of accusations must not erase why a member is
    /// quarantined (those records are at most one per member).
    fn push_log(&mut self, e: DetectionEntry) {
        let now = e.timestamp;
        self.log_total += 1;
        self.log.push_back(e);
        if self.log.len() > LOG_CAPACITY {
            let in_force = |x: &DetectionEntry| {
                x.action == "quarantined" && x.quarantine_expires.is_some_and(|t| t > now)
            };
            if let Some(i) = self.log.iter().position(|x| !in_force(x)) {
                self.log.remove(i);
            }
        }
    }
}
