//! `phalanx decision open|vote|show|list`: questions the agents decide by signed ballots.
//! Opening and voting are ordinary operations accepted on f+1 matching signed replies; `show`
//! accepts a record only when f+1 voters hold it and checks the proof of how it closed.

use clap::{Args, Subcommand};
use phalanx_client::Cluster;
use phalanx_core::wire::{Ballot, DecisionOp, DecisionRule, DecisionSpec, Operation};
use phalanx_crypto::{Digest, digest};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Subcommand)]
pub enum DecisionCommand {
    /// Open a decision: a question, its options (none for free-form results), the voters, a
    /// rule and a deadline.
    Open(OpenArgs),
    /// Cast a ballot: an option, a result (its digest) or an abstention, with a reason.
    Vote(VoteArgs),
    /// A decision as f+1 agents hold it, with the proof of how it closed checked here.
    Show(ShowArgs),
    /// The decisions the cluster holds, open ones first.
    List(ListArgs),
}

#[derive(Args)]
pub struct OpenArgs {
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    /// Letters, digits, '.', '_' or '-' (at most 64).
    #[arg(long)]
    id: String,
    #[arg(long)]
    question: String,
    /// An option (repeat for each); none for free-form results compared by digest.
    #[arg(long = "option")]
    options: Vec<String>,
    /// Who may vote: agent names, client names or public keys in hex, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    voters: Vec<String>,
    /// majority, two-thirds, unanimous or f+1-matching.
    #[arg(long, default_value = "majority")]
    rule: String,
    /// With f+1-matching: how many voters may report a wrong result.
    #[arg(long)]
    f: Option<u32>,
    /// Weigh ballots by each voter's committed record (evidence and accusations against it).
    #[arg(long)]
    weighted: bool,
    /// Closes after this much replicated time, e.g. 30s, 10m, 2h.
    #[arg(long, default_value = "10m")]
    deadline: humantime::Duration,
    /// Who opens it: an agent, a client or `operator`.
    #[arg(long = "as", default_value = "operator")]
    signer: String,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct VoteArgs {
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    #[arg(long)]
    id: String,
    /// The option chosen.
    #[arg(long, group = "ballot")]
    option: Option<String>,
    /// A result, given as text: its BLAKE3 digest is the ballot.
    #[arg(long, group = "ballot")]
    result: Option<String>,
    /// A result's BLAKE3 digest, 64 hex characters.
    #[arg(long, group = "ballot")]
    result_digest: Option<String>,
    /// Vote for no option.
    #[arg(long, group = "ballot")]
    abstain: bool,
    /// Where the full result is stored (a shared-memory namespace/key, say).
    #[arg(long, default_value = "")]
    location: String,
    #[arg(long, default_value = "")]
    reason: String,
    /// The voter: an agent or a client.
    #[arg(long = "as")]
    signer: String,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ShowArgs {
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    #[arg(long)]
    id: String,
    /// How long to wait for f+1 agents to agree.
    #[arg(long, default_value = "10s")]
    timeout: humantime::Duration,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ListArgs {
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: DecisionCommand) -> Result<ExitCode, String> {
    match cmd {
        DecisionCommand::Open(a) => open(a),
        DecisionCommand::Vote(a) => vote(a),
        DecisionCommand::Show(a) => show(a),
        DecisionCommand::List(a) => list(a),
    }
}

/// Submits `op` signed by `signer` and reports the outcome.
fn submit(cluster: &Cluster, signer: &str, op: Operation, id: &str, json: bool) -> Result<ExitCode, String> {
    let key = cluster.signer_key(signer)?;
    let acc = cluster.submit_op(&key, op, Duration::from_secs(20))?;
    if json {
        println!("{}", json!({"id": id, "outcome": acc.outcome, "seq": acc.seq, "epoch": acc.epoch}));
    } else {
        println!("decision {id}: {} at seq {}", acc.outcome, acc.seq);
        if let Some(hint) = hint(&acc.outcome) {
            eprintln!("{hint}");
        }
    }
    Ok(if acc.outcome == "applied" { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

pub fn hint(outcome: &str) -> Option<&'static str> {
    Some(match outcome.strip_prefix("rejected:")? {
        "invalid-decision" => {
            "a decision needs voters (distinct, each an agent or client of the cluster), distinct options (none only with f+1-matching, whose f must be below the number of voters) and a deadline of at most 30 days"
        }
        "duplicate" => "already recorded: a decision with this id exists, or this ballot was cast before",
        "unknown-decision" => "no decision with this id is held (`phalanx decision list`)",
        "not-voter" => "the signer is not among the decision's voters",
        "invalid-ballot" => {
            "the ballot does not fit the decision: an option it lists, or a result when it has none"
        }
        "decision-closed" => "the decision closed before this ballot; it is kept as late",
        "double-vote" => "this voter cast a different ballot before: both are void and recorded as evidence",
        "decisions-full" => "open decisions fill their share of the state; wait for some to close",
        _ => return None,
    })
}

fn open(a: OpenArgs) -> Result<ExitCode, String> {
    let cluster = Cluster::load(&a.dir)?;
    let rule = DecisionRule::parse(&a.rule, a.f)?;
    let voters = a.voters.iter().map(|v| cluster.public_key(v.trim())).collect::<Result<Vec<_>, _>>()?;
    let spec = DecisionSpec {
        id: a.id.clone(),
        question: a.question,
        options: a.options,
        voters,
        rule,
        weighted: a.weighted,
        deadline_ms: Duration::from(a.deadline).as_millis() as u64,
    };
    submit(&cluster, &a.signer, Operation::Decision(DecisionOp::Open(Box::new(spec))), &a.id, a.json)
}

fn vote(a: VoteArgs) -> Result<ExitCode, String> {
    let cluster = Cluster::load(&a.dir)?;
    let ballot = ballot(a.option, a.result, a.result_digest, a.abstain, a.location)?;
    submit(
        &cluster,
        &a.signer,
        Operation::Decision(DecisionOp::vote(a.id.clone(), ballot, a.reason)),
        &a.id,
        a.json,
    )
}

/// One ballot from the ways to give it: an option, a result as text (its BLAKE3 digest is the
/// ballot), a result's digest in hex, or an abstention. Exactly one.
pub fn ballot(
    option: Option<String>,
    result: Option<String>,
    result_digest: Option<String>,
    abstain: bool,
    location: String,
) -> Result<Ballot, String> {
    Ok(match (option, result, result_digest, abstain) {
        (Some(o), None, None, false) => Ballot::Option(o),
        (None, Some(text), None, false) => Ballot::Result { digest: digest(text.as_bytes()), location },
        (None, None, Some(hex), false) => {
            let bytes: [u8; 32] = phalanx_node::api::unhex(&hex)
                .and_then(|b| b.try_into().ok())
                .ok_or("the result digest is 64 hex characters (a BLAKE3 digest)")?;
            Ballot::Result { digest: Digest(bytes), location }
        }
        (None, None, None, true) => Ballot::Abstain,
        _ => {
            return Err(
                "give exactly one ballot: an option, a result, a result digest or an abstention".into()
            );
        }
    })
}

fn show(a: ShowArgs) -> Result<ExitCode, String> {
    let cluster = Cluster::load(&a.dir)?;
    let checked = cluster.decision(&a.id, a.timeout.into())?;
    let mut record = checked.record.clone();
    if let Some(o) = record.as_object_mut() {
        o.remove("replica");
        o.remove("executed_seq");
        o.insert("confirmed_by".into(), json!(checked.confirmed_by));
        o.insert(
            "proof_checked".into(),
            checked.proof.as_ref().map_or(Value::Null, |p| {
                json!({"seq": p.seq, "epoch": p.epoch, "commit_signers": p.signers, "closed_by": p.closed_by})
            }),
        );
    }
    if a.json {
        println!("{record}");
        return Ok(ExitCode::SUCCESS);
    }
    print_record(&record);
    Ok(ExitCode::SUCCESS)
}

fn print_record(r: &Value) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    println!("decision {}: {}", s(&r["id"]), s(&r["question"]));
    println!(
        "  rule {}{}, {} voters",
        s(&r["rule"]),
        if r["weighted"] == true { " (weighted)" } else { "" },
        r["voters"].as_array().map_or(0, Vec::len)
    );
    match s(&r["status"]).as_str() {
        "open" => println!("  open until replicated time {} ms", r["closes_ms"]),
        status => {
            let o = &r["outcome"];
            println!(
                "  {status}: {} ({}) at seq {}",
                o["winner"].as_str().unwrap_or("no winner"),
                s(&o["reason"]),
                o["seq"]
            );
            for t in o["tally"].as_array().into_iter().flatten() {
                println!("    {:<20} {} voter(s), weight {}", s(&t["choice"]), t["voters"], t["weight"]);
            }
        }
    }
    for b in r["ballots"].as_array().into_iter().flatten() {
        println!("  {} voted {}: {}", s(&b["voter"]), s(&b["choice"]), s(&b["reason"]));
    }
    for d in r["double_votes"].as_array().into_iter().flatten() {
        println!(
            "  {} voted twice ({} then {}): ballots void, evidence {}",
            s(&d["voter"]),
            s(&d["first"]),
            s(&d["second"]),
            &s(&d["evidence_id"])[..16]
        );
    }
    for l in r["late"].as_array().into_iter().flatten() {
        println!("  {} voted {} too late", s(&l["voter"]), s(&l["choice"]));
    }
    let names =
        |k: &str| r[k].as_array().map(|a| a.iter().map(s).collect::<Vec<_>>().join(", ")).unwrap_or_default();
    if !names("not_voted").is_empty() {
        println!("  not voted: {}", names("not_voted"));
    }
    println!("  confirmed by {}", names("confirmed_by"));
    match r["proof_checked"].as_object() {
        Some(p) => println!(
            "  proof checked: commit certificate of seq {} (epoch {}, {} signatures), closed by {}",
            p["seq"],
            p["epoch"],
            p["commit_signers"],
            p["closed_by"].as_str().unwrap_or_default()
        ),
        None => println!("  no proof yet: the decision is open"),
    }
}

fn list(a: ListArgs) -> Result<ExitCode, String> {
    let cluster = Cluster::load(&a.dir)?;
    // A listing is an index, not a result: one agent that answers will do.
    let answer =
        cluster.get_all("/v1/decisions").into_iter().find_map(Result::ok).ok_or("no agent answered")?;
    let list = answer["decisions"].as_array().cloned().unwrap_or_default();
    if a.json {
        println!("{}", json!({"decisions": list, "answered_by": answer["replica"]}));
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        println!("no decisions");
    }
    for d in &list {
        println!(
            "{:<24} {:<12} {:<14} ballots {}/{}  {}",
            d["id"].as_str().unwrap_or_default(),
            d["status"].as_str().unwrap_or_default(),
            d["rule"].as_str().unwrap_or_default(),
            d["ballots"],
            d["voters"],
            d["winner"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}
