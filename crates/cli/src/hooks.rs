//! `phalanx hooks --dir D`: runs operators' hooks on what the cluster commits (and on the view
//! changes the followed agent goes through).
//!
//! A separate process that reads the HTTP API, so no hook can ever stall consensus. Each hook
//! has its own thread and its own cursor file. It gets every matching event at least once, in
//! commit order: the cursor is persisted only after a delivery succeeds, and a failed delivery
//! is retried with backoff before any later event. A command hook gets the event as JSON on
//! stdin; a webhook gets it as a JSON POST.

use clap::Args;
use phalanx_client::Cluster;
use phalanx_core::wire::{self, EpochProof, Operation, OperatorAction};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct HooksArgs {
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    /// The hooks file (default `<dir>/hooks.toml`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where cursors are kept (default `<dir>/hooks/`).
    #[arg(long)]
    state: Option<PathBuf>,
    /// The agent whose API to follow first; the others are asked while it is down.
    #[arg(long)]
    agent: Option<String>,
    /// How often to look for new events.
    #[arg(long, default_value = "500ms")]
    poll: humantime::Duration,
}

/// Event names, in the order events of one seq are delivered.
pub const EVENTS: [&str; 6] = [
    "malicious-detected",
    "quarantined",
    "reconfiguration",
    "decision-opened",
    "decision-decided",
    "view-change",
];

/// The names the seed used, accepted in `on`.
fn canonical(name: &str) -> Option<&'static str> {
    match name {
        "onMaliciousDetected" => Some("malicious-detected"),
        "onViewChange" => Some("view-change"),
        "onQuarantined" => Some("quarantined"),
        "onReconfiguration" => Some("reconfiguration"),
        "onDecisionOpened" => Some("decision-opened"),
        "onDecisionDecided" => Some("decision-decided"),
        other => EVENTS.iter().find(|e| **e == other).copied(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HooksFile {
    #[serde(default)]
    hook: Vec<HookSpec>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HookSpec {
    name: String,
    /// Event names (or `*` for all).
    on: Vec<String>,
    /// A program and its arguments; it gets the event JSON on stdin and succeeds with exit 0.
    command: Option<Vec<String>>,
    /// A URL that gets the event as a JSON POST and succeeds with a 2xx answer.
    webhook: Option<String>,
    /// How long one delivery may take before it counts as failed (default 10s).
    timeout: Option<String>,
}

/// A hook ready to run.
struct Hook {
    name: String,
    events: Vec<&'static str>,
    target: Target,
    timeout: Duration,
}

enum Target {
    Command(Vec<String>),
    Webhook(String),
}

fn load(path: &Path) -> Result<Vec<Hook>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: HooksFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut hooks = Vec::new();
    for h in file.hook {
        let at = |what: String| format!("{}: hook {:?}: {what}", path.display(), h.name);
        let valid_name =
            !h.name.is_empty() && h.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid_name || hooks.iter().any(|x: &Hook| x.name == h.name) {
            return Err(at("names are unique letters, digits, '-', '_' or '.'".into()));
        }
        let mut events = Vec::new();
        for e in &h.on {
            if e == "*" {
                events.extend(EVENTS);
                continue;
            }
            let known = canonical(e)
                .ok_or_else(|| at(format!("unknown event {e:?}; known: {}", EVENTS.join(", "))))?;
            events.push(known);
        }
        if events.is_empty() {
            return Err(at("`on` names no event".into()));
        }
        let target = match (h.command, h.webhook) {
            (Some(c), None) if !c.is_empty() => Target::Command(c),
            (None, Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {
                Target::Webhook(url)
            }
            _ => {
                return Err(at(
                    "give either `command` (a non-empty list) or `webhook` (an http(s) URL)".into()
                ));
            }
        };
        let timeout = match &h.timeout {
            Some(t) => humantime::parse_duration(t).map_err(|e| at(format!("timeout: {e}")))?,
            None => Duration::from_secs(10),
        };
        hooks.push(Hook { name: h.name, events, target, timeout });
    }
    Ok(hooks)
}

/// Where an event sits in the stream: committed events by (seq, kind, key); view changes,
/// which are the followed agent's own, by view number after them.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Position {
    seq: u64,
    kind: u8,
    key: String,
}

/// How far a hook got (persisted after each delivery).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Cursor {
    committed: Position,
    view: u64,
}

impl Cursor {
    fn load(path: &Path) -> Result<Self, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Cursor::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Written to a temporary file, synced, then renamed over the old one: a crash leaves the
    /// old cursor or the new one, never half of one.
    fn save(&self, path: &Path) -> Result<(), String> {
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(serde_json::to_string(self).unwrap_or_default().as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// One event, as delivered.
struct Event {
    position: Position,
    view: u64,
    name: &'static str,
    body: Value,
}

/// What the cluster committed up to the followed agent's executed seq (and its view changes).
struct Source<'a> {
    cluster: &'a Cluster,
    order: Vec<usize>,
    /// Reconfiguration events, once read (an epoch proof never changes).
    epochs: Vec<Event>,
}

impl Source<'_> {
    /// Every event the first agent that answers holds, in order.
    fn events(&mut self) -> Result<(Vec<Event>, u64), String> {
        let mut last = String::from("no agent answered");
        for i in self.order.clone() {
            match self.events_of(i) {
                Ok(e) => return Ok(e),
                Err(e) => last = format!("{}: {e}", self.cluster.agents[i].name),
            }
        }
        Err(last)
    }

    fn events_of(&mut self, i: usize) -> Result<(Vec<Event>, u64), String> {
        let c = self.cluster;
        // The height first: what the later reads show up to it is final.
        let status = c.get(i, "/v1/status")?;
        let height = status["last_executed"].as_u64().ok_or("no last_executed in /v1/status")?;
        let epoch = status["epoch"].as_u64().unwrap_or(0);
        let mut events = Vec::new();
        let log = c.get(i, "/v1/detection-log")?;
        let entries = log["entries"].as_array().cloned().unwrap_or_default();
        let first = log["total"].as_u64().unwrap_or(0).saturating_sub(entries.len() as u64);
        for (k, e) in entries.into_iter().enumerate() {
            let seq = e["seq"].as_u64().unwrap_or(0);
            let key = format!("{:020}", first + k as u64);
            if e["action"] == "quarantined" {
                events.push(committed(seq, "quarantined", key.clone(), e.clone()));
            }
            events.push(committed(seq, "malicious-detected", key, e));
        }
        for n in (self.epochs.len() as u64 + 1)..=epoch {
            let v = c.get(i, &format!("/v1/epochs/{n}"))?;
            let proof: EpochProof = v["proof"]
                .as_str()
                .and_then(phalanx_node::api::unhex)
                .and_then(|b| wire::decode_value(&b).ok())
                .ok_or_else(|| format!("no readable proof of epoch {n}"))?;
            let seq = proof.cert.commits.first().map_or(0, |c| c.body.seq);
            let (remove, add, f) = match &proof.request.body.op {
                Operation::Operator(OperatorAction::UpdateQuorum { remove, add, f }) => {
                    (remove.clone(), add.iter().map(|j| j.name.clone()).collect::<Vec<_>>(), *f)
                }
                _ => (Vec::new(), Vec::new(), None),
            };
            let body = json!({"epoch": n, "removed": remove, "added": add, "f": f});
            self.epochs.push(committed(seq, "reconfiguration", format!("{n:020}"), body));
        }
        events.extend(self.epochs.iter().map(|e| Event {
            position: e.position.clone(),
            view: 0,
            name: e.name,
            body: e.body.clone(),
        }));
        let decisions = c.get(i, "/v1/decisions")?;
        for d in decisions["decisions"].as_array().into_iter().flatten() {
            let id = d["id"].as_str().unwrap_or_default().to_string();
            if let Some(seq) = d["opened_seq"].as_u64() {
                events.push(committed(seq, "decision-opened", id.clone(), d.clone()));
            }
            if let Some(seq) = d["closed_seq"].as_u64() {
                events.push(committed(seq, "decision-decided", id, d.clone()));
            }
        }
        events.retain(|e| e.position.seq <= height);
        let changes = c.get(i, "/v1/view-changes")?;
        for v in changes["view_changes"].as_array().into_iter().flatten() {
            let view = v["view_number"].as_u64().unwrap_or(0);
            let mut body = v.clone();
            body["agent"] = json!(c.agents[i].name);
            events.push(Event { position: Position::default(), view, name: "view-change", body });
        }
        events.sort_by(|a, b| {
            (a.name == "view-change", &a.position, a.view).cmp(&(
                b.name == "view-change",
                &b.position,
                b.view,
            ))
        });
        Ok((events, height))
    }
}

fn committed(seq: u64, name: &'static str, key: String, body: Value) -> Event {
    let kind = EVENTS.iter().position(|e| *e == name).unwrap_or(0) as u8;
    Event { position: Position { seq, kind, key }, view: 0, name, body }
}

pub fn run(a: HooksArgs) -> Result<ExitCode, String> {
    let config = a.config.clone().unwrap_or_else(|| a.dir.join("hooks.toml"));
    let hooks = load(&config)?;
    if hooks.is_empty() {
        return Err(format!("{}: no [[hook]] defined", config.display()));
    }
    let state = a.state.clone().unwrap_or_else(|| a.dir.join("hooks"));
    std::fs::create_dir_all(&state).map_err(|e| format!("{}: {e}", state.display()))?;
    let cluster = Cluster::load(&a.dir)?;
    let first = match &a.agent {
        Some(name) => {
            cluster.agents.iter().position(|m| m.name == *name).ok_or(format!("no agent {name:?}"))?
        }
        None => 0,
    };
    let order: Vec<usize> = (0..cluster.n()).map(|k| (first + k) % cluster.n()).collect();
    let poll: Duration = a.poll.into();
    eprintln!(
        "phalanx hooks: {} hook(s) from {}, cursors in {}",
        hooks.len(),
        config.display(),
        state.display()
    );
    std::thread::scope(|s| {
        for hook in &hooks {
            let (cluster, order, state) = (&cluster, order.clone(), state.clone());
            s.spawn(move || follow(cluster, order, hook, &state.join(format!("{}.cursor", hook.name)), poll));
        }
    });
    Ok(ExitCode::SUCCESS)
}

/// One hook's loop: read what is new, deliver what matches in order, move the cursor.
fn follow(cluster: &Cluster, order: Vec<usize>, hook: &Hook, cursor_path: &Path, poll: Duration) {
    let mut cursor = match Cursor::load(cursor_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hook {}: {e}; not running it", hook.name);
            return;
        }
    };
    let mut source = Source { cluster, order, epochs: Vec::new() };
    loop {
        let events = match source.events() {
            Ok((events, _)) => events,
            Err(e) => {
                eprintln!("hook {}: cannot read events ({e}); trying again", hook.name);
                std::thread::sleep(poll.max(Duration::from_secs(1)));
                continue;
            }
        };
        for e in events {
            let new =
                if e.name == "view-change" { e.view > cursor.view } else { e.position > cursor.committed };
            if !new {
                continue;
            }
            if hook.events.contains(&e.name) {
                deliver(hook, &e);
            }
            if e.name == "view-change" {
                cursor.view = e.view;
            } else {
                cursor.committed = e.position.clone();
            }
            if let Err(err) = cursor.save(cursor_path) {
                eprintln!("hook {}: cannot persist the cursor ({err}); stopping it", hook.name);
                return;
            }
        }
        std::thread::sleep(poll);
    }
}

/// Delivers `e` until it succeeds, backing off from 200 ms to 30 s between attempts.
fn deliver(hook: &Hook, e: &Event) {
    let payload = json!({
        "event": e.name,
        "seq": if e.name == "view-change" { Value::Null } else { json!(e.position.seq) },
        "hook": hook.name,
        "data": e.body,
    });
    let mut backoff = Duration::from_millis(200);
    for attempt in 1.. {
        let started = Instant::now();
        let result = match &hook.target {
            Target::Command(argv) => run_command(argv, &payload, e.name, hook.timeout),
            Target::Webhook(url) => post(url, &payload, hook.timeout),
        };
        match result {
            Ok(()) => {
                eprintln!(
                    "hook {}: {} delivered (attempt {attempt}, {} ms)",
                    hook.name,
                    e.name,
                    started.elapsed().as_millis()
                );
                return;
            }
            Err(err) => {
                eprintln!(
                    "hook {}: {} failed (attempt {attempt}): {err}; retrying in {} ms",
                    hook.name,
                    e.name,
                    backoff.as_millis()
                );
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

fn run_command(argv: &[String], payload: &Value, event: &str, timeout: Duration) -> Result<(), String> {
    let mut child = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .env("PHALANX_EVENT", event)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", argv[0]))?;
    if let Some(mut stdin) = child.stdin.take() {
        // From another thread: a hook that never reads its input must not block this one
        // (its exit status, or the timeout, decides).
        let bytes = payload.to_string().into_bytes();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        });
    }
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) if status.success() => return Ok(()),
            Some(status) => return Err(format!("exited with {status}")),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("still running after {} ms; killed", timeout.as_millis()));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn post(url: &str, payload: &Value, timeout: Duration) -> Result<(), String> {
    let mut answer = phalanx_client::agent(timeout)
        .post(url)
        .header("content-type", "application/json")
        .send(payload.to_string().as_str())
        .map_err(|e| e.to_string())?;
    let code = answer.status().as_u16();
    let _ = answer.body_mut().read_to_string();
    if (200..300).contains(&code) { Ok(()) } else { Err(format!("HTTP {code}")) }
}
