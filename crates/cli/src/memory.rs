//! `phalanx memory store|retrieve|share`: the replicated key-value store shared by the agents.
//! A key belongs to the client that first wrote it, unless the operator shared its namespace.

use clap::{Args, Subcommand};
use phalanx_client::{Cluster, path_segment};
use phalanx_core::wire::{Operation, OperatorAction};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Subcommand)]
pub enum MemoryCommand {
    /// Store a value (ordered through consensus like any operation).
    Store(StoreArgs),
    /// Read a value from committed state, confirmed by f+1 agents.
    Retrieve(RetrieveArgs),
    /// Operator: let any client write any key of a namespace (elsewhere a key belongs to the
    /// client that wrote it).
    Share(ShareArgs),
}

#[derive(Args)]
pub struct ShareArgs {
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    #[arg(long)]
    namespace: String,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct StoreArgs {
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    #[arg(long)]
    key: String,
    #[arg(long)]
    value: String,
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Expire after this long, e.g. 30s, 1h (judged on committed batch timestamps).
    #[arg(long)]
    ttl: Option<humantime::Duration>,
    /// Client account that signs the write.
    #[arg(long = "as", default_value = "alice")]
    signer: String,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct RetrieveArgs {
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    #[arg(long)]
    key: String,
    #[arg(long, default_value = "default")]
    namespace: String,
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: MemoryCommand) -> Result<ExitCode, String> {
    match cmd {
        MemoryCommand::Store(a) => store(a),
        MemoryCommand::Retrieve(a) => retrieve(a),
        MemoryCommand::Share(a) => share(a),
    }
}

fn share(a: ShareArgs) -> Result<ExitCode, String> {
    let cluster = Cluster::load(&a.dir)?;
    let key = crate::operator::operator_key(&a.dir)?;
    let action = OperatorAction::ShareNamespace { namespace: a.namespace.clone() };
    let acc = crate::operator::submit_action(&cluster, &key, action)?;
    if a.json {
        println!(
            "{}",
            json!({"namespace": a.namespace, "shared": acc.outcome == "applied", "outcome": acc.outcome, "seq": acc.seq})
        );
    } else {
        println!("namespace {}: {} at seq {}", a.namespace, acc.outcome, acc.seq);
    }
    Ok(if acc.outcome == "applied" { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn store(a: StoreArgs) -> Result<ExitCode, String> {
    let cluster = Cluster::load(&a.dir)?;
    let key = cluster.client_key(&a.signer)?;
    let op = Operation::MemoryStore {
        namespace: a.namespace.clone(),
        key: a.key.clone(),
        value: a.value.clone(),
        ttl_ms: a.ttl.map(|d| Duration::from(d).as_millis() as u64),
    };
    let acc = cluster.submit_op(&key, op, Duration::from_secs(20))?;
    if a.json {
        println!(
            "{}",
            json!({"namespace": a.namespace, "key": a.key, "outcome": acc.outcome, "seq": acc.seq})
        );
    } else {
        println!("{}/{}: {} at seq {}", a.namespace, a.key, acc.outcome, acc.seq);
        if acc.outcome.contains("not-owner") {
            eprintln!(
                "the key belongs to the client that wrote it; write under your own key or ask the operator to run `phalanx memory share --namespace {}`",
                a.namespace
            );
        } else if acc.outcome.contains("memory-quota") {
            eprintln!(
                "{} has used its share of the shared memory; let entries expire (--ttl) or overwrite your own keys",
                a.signer
            );
        }
    }
    Ok(if acc.outcome == "applied" { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn retrieve(a: RetrieveArgs) -> Result<ExitCode, String> {
    let cluster = Cluster::load(&a.dir)?;
    let path = format!("/v1/memory/{}/{}", path_segment(&a.namespace), path_segment(&a.key));
    // Only voters of the latest epoch the client verified count, toward that epoch's f+1: an
    // agent removed by a reconfiguration no longer speaks for the cluster.
    let (voters, f) = cluster.current_voters();
    let weak = f + 1;
    // Votes are counted per agent endpoint we asked, never per what an answer claims to be.
    let mut votes: BTreeMap<(String, u64), BTreeSet<usize>> = BTreeMap::new();
    let mut missing = 0;
    for (i, r) in cluster.get_all(&path).into_iter().enumerate() {
        if !voters.contains(&i) {
            continue;
        }
        match r {
            Ok(v) if v.get("value").is_some_and(Value::is_string) => {
                let value = v["value"].as_str().unwrap_or_default().to_string();
                let seq = v["stored_seq"].as_u64().unwrap_or(0);
                votes.entry((value, seq)).or_default().insert(i);
            }
            Ok(v)
                if v.get("error")
                    .is_some_and(|e| e.as_str().is_some_and(|e| e.starts_with("no live value"))) =>
            {
                missing += 1
            }
            _ => {}
        }
    }
    let agreed = votes.into_iter().find(|(_, who)| who.len() >= weak);
    match agreed {
        Some(((value, seq), who)) => {
            if a.json {
                println!(
                    "{}",
                    json!({"namespace": a.namespace, "key": a.key, "value": value, "stored_seq": seq, "confirmed_by": who.len()})
                );
            } else {
                println!("{value}");
            }
            Ok(ExitCode::SUCCESS)
        }
        None if missing >= weak => {
            let v: Value = json!({"namespace": a.namespace, "key": a.key, "value": null});
            if a.json {
                println!("{v}");
            } else {
                eprintln!("{}/{}: not found", a.namespace, a.key);
            }
            Ok(ExitCode::FAILURE)
        }
        None => Err(format!("no value for {}/{} is confirmed by f+1 = {weak} agents", a.namespace, a.key)),
    }
}
