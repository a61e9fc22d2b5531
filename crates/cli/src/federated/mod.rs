//! `phalanx federated`: agents train a digits classifier together; each round every agent sends
//! a gradient, f of them Byzantine, and the chosen robust rule combines them. In-process and
//! seeded: the same command prints the same accuracies. With `--dir`, a real cluster runs every
//! round through consensus ([`cluster`]), and prints the same accuracies as in-process.

mod cluster;
mod data;
mod model;
mod plot;

use clap::Args;
use data::Sample;
use phalanx_aggregate::{ATTACKS, Attack, Params, Pipeline, RULES, attacks::flip_label};
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct FederatedArgs {
    #[arg(long, default_value_t = 10)]
    agents: usize,
    /// Byzantine agents (the last ones).
    #[arg(long, default_value_t = 3)]
    faulty: usize,
    /// none, or an attack: signflip, ipm, alie, opt-ipm, opt-alie, mimic, infinity, gaussian,
    /// labelflip. A comma list (or `all`) prints a table.
    #[arg(long, default_value = "none", value_delimiter = ',')]
    attack: Vec<String>,
    /// The aggregation rule; a comma list (or `all`) prints a table.
    #[arg(long, default_value = "average", value_delimiter = ',')]
    rule: Vec<String>,
    /// Pre-aggregators before the rule: nnm, bucketing, clip, arc.
    #[arg(long, value_delimiter = ',')]
    pre: Vec<String>,
    /// Rule and pre-aggregator parameters, key=value (repeatable).
    #[arg(long = "param")]
    params: Vec<String>,
    /// Attack parameters, key=value (repeatable). The optimised attacks target --rule unless
    /// given rule=.
    #[arg(long = "attack-param")]
    attack_params: Vec<String>,
    #[arg(long, default_value_t = 60)]
    rounds: usize,
    /// Each agent holds mostly one or two digits instead of a random share.
    #[arg(long)]
    non_iid: bool,
    /// Learning rate of the server's SGD step.
    #[arg(long, default_value_t = 0.5)]
    lr: f64,
    /// Each agent sends its gradient momentum m ← β m + (1 − β) g instead of the raw gradient
    /// (0 sends raw gradients). Momentum shrinks the honest spread that ALIE and IPM hide in.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Samples per agent per round.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the accuracy curves as an SVG chart.
    #[arg(long)]
    plot: Option<PathBuf>,
    #[arg(long)]
    json: bool,
    /// Run every round on this running cluster instead of in-process (one rule, one attack).
    /// The agents are its client accounts bench-0, bench-1, …; the operator opens the rounds.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Model name on the cluster; rounds continue from its last one.
    #[arg(long, default_value = "digits")]
    model: String,
    /// Coordinates per uploaded chunk (at most 8192) with --dir.
    #[arg(long, default_value_t = 256)]
    chunk: usize,
    /// With --dir: a round closes with the updates that arrived after this long.
    #[arg(long, default_value = "30s")]
    round_timeout: humantime::Duration,
    /// With --dir: forget --model on the cluster (open round, aggregate, results) and free its
    /// space, instead of training.
    #[arg(long)]
    delete: bool,
}

/// One training run's result.
pub struct Run {
    pub rule: String,
    pub attack: String,
    /// Test accuracy before training and after each round.
    pub accuracy: Vec<f64>,
    /// Rounds whose aggregation was refused (the model was left unchanged).
    pub refused: usize,
}

impl Run {
    /// The mean accuracy of the last five rounds: steadier than the last one alone.
    pub fn final_accuracy(&self) -> f64 {
        let tail = &self.accuracy[self.accuracy.len().saturating_sub(5)..];
        tail.iter().sum::<f64>() / tail.len() as f64
    }
}

fn expand(list: &[String], all: &[&str]) -> Vec<String> {
    if list.iter().any(|s| s == "all") { all.iter().map(|s| s.to_string()).collect() } else { list.to_vec() }
}

pub fn run(a: FederatedArgs) -> Result<ExitCode, String> {
    if a.delete {
        let dir = a.dir.as_deref().ok_or("--delete needs --dir")?;
        let outcome = cluster::delete(dir, &a.model)?;
        println!("delete model {:?}: {outcome}", a.model);
        return Ok(if outcome == "applied" { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    if a.agents <= 2 * a.faulty {
        return Err(format!("--agents {} must exceed twice --faulty {}", a.agents, a.faulty));
    }
    if a.rounds == 0 || a.batch == 0 || !(a.lr > 0.0 && a.lr.is_finite()) {
        return Err("--rounds, --batch and --lr must be above zero".into());
    }
    if !(0.0..1.0).contains(&a.momentum) {
        return Err(format!("--momentum must be in [0, 1), got {}", a.momentum));
    }
    let rules = expand(&a.rule, RULES);
    let mut attacks_all = vec!["none"];
    attacks_all.extend(ATTACKS);
    let attacks = expand(&a.attack, &attacks_all);
    let split = data::split(data::digits(), a.agents, a.non_iid, a.seed);
    let pre: Vec<&str> = a.pre.iter().map(String::as_str).collect();
    if let Some(dir) = &a.dir {
        return on_cluster(&a, dir, &split, &rules, &attacks);
    }
    let mut runs = Vec::new();
    for rule in &rules {
        let params = Params::parse(&a.params).map_err(|e| e.to_string())?;
        let pipeline = Pipeline::from_names(rule, &pre, &params, a.seed).map_err(|e| e.to_string())?;
        params.finish().map_err(|e| e.to_string())?;
        for attack in &attacks {
            // A refused aggregation leaves the model unchanged.
            let mut combine = |v: &[Vec<f64>]| Ok(pipeline.aggregate(v, a.faulty).ok().map(|g| g.vector));
            runs.push(train(&a, &split, rule, attack, &mut combine)?);
        }
    }
    if let Some(path) = &a.plot {
        std::fs::write(path, plot::svg(&runs))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    print(&a, &runs, &rules, &attacks);
    Ok(ExitCode::SUCCESS)
}

/// Runs one rule against one attack on the cluster in `dir`; prints the accuracies and whether
/// every agent ended with the same digest for every round.
fn on_cluster(
    a: &FederatedArgs,
    dir: &std::path::Path,
    split: &data::Split,
    rules: &[String],
    attacks: &[String],
) -> Result<ExitCode, String> {
    let ([rule], [attack]) = (rules, attacks) else {
        return Err("--dir runs one --rule against one --attack".into());
    };
    let settings = cluster::Settings {
        model: &a.model,
        rule,
        pre: &a.pre,
        params: &a.params,
        agents: a.agents,
        faulty: a.faulty,
        dim: model::PARAMETERS,
        timeout: a.round_timeout.into(),
        chunk: a.chunk,
        seed: a.seed,
    };
    let mut rounds = cluster::Rounds::connect(dir, &settings)?;
    let run = train(a, split, rule, attack, &mut |v| rounds.run(v))?;
    let agreement = rounds.agreement();
    let all = agreement.digests.len();
    if a.json {
        let mut v = run_json(a, &run);
        v["cluster"] = cluster::agreement_json(&agreement, &rounds.opened);
        println!("{v}");
    } else {
        print(a, std::slice::from_ref(&run), rules, attacks);
        let (first, last) = (rounds.opened.first().unwrap_or(&0), rounds.opened.last().unwrap_or(&0));
        println!("rounds {first}–{last} of model {:?} on {}", a.model, dir.display());
        for (agent, digests) in &agreement.digests {
            let last = digests.last().cloned().flatten().unwrap_or_else(|| "no answer".into());
            println!("  {agent:<16} last round's aggregate digest {last}");
        }
        println!("{} of {all} agents hold the same digest for every round", agreement.agreeing());
        println!("participants' standing (score: 100 − % of recent updates the rule removed):");
        let honest = if attack == "none" { a.agents } else { a.agents - a.faulty };
        for (i, s) in agreement.standing.iter().enumerate() {
            println!(
                "  {:<10} {:<9} submitted {:>3}  kept {:>3}  removed {:>3}  score {:>3}{}",
                s["agent"].as_str().unwrap_or("?"),
                if i < honest { "honest" } else { "byzantine" },
                s["submitted"],
                s["kept"],
                s["removed"],
                s["score"],
                if s["suspect"] == true { "  suspect" } else { "" }
            );
        }
    }
    // Up to f agents may be faulty and answer anything; the rest must agree.
    let honest_agents = all - rounds.max_failures();
    Ok(if agreement.agreeing() >= honest_agents { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Aggregates one round's vectors: `Some(aggregate)`, `None` when the rule refused them, or an
/// error that ends the run (a cluster that stopped answering).
type Combine<'a> = dyn FnMut(&[Vec<f64>]) -> Result<Option<Vec<f64>>, String> + 'a;

/// Trains for `a.rounds` rounds; `combine` aggregates one round's vectors (`None`: refused, the
/// model stays as it was).
fn train(
    a: &FederatedArgs,
    split: &data::Split,
    rule: &str,
    attack: &str,
    combine: &mut Combine,
) -> Result<Run, String> {
    let pre: Vec<&str> = a.pre.iter().map(String::as_str).collect();
    let vector_attack = match attack {
        "none" | "labelflip" => None,
        kind => {
            let mut given = a.attack_params.clone();
            if kind.starts_with("opt-") && !given.iter().any(|p| p.starts_with("rule=")) {
                given.push(format!("rule={rule}"));
                if !pre.is_empty() {
                    given.push(format!("pre={}", pre.join(",")));
                }
            }
            let p = Params::parse(&given).map_err(|e| e.to_string())?;
            let at = Attack::from_params(kind, &p, a.seed).map_err(|e| format!("--attack {kind}: {e}"))?;
            p.finish().map_err(|e| format!("--attack {kind}: {e}"))?;
            Some(at)
        }
    };
    let honest = a.agents - a.faulty;
    let mut theta = vec![0.0; model::PARAMETERS];
    let mut accuracy = vec![model::accuracy(&theta, &split.test)];
    let mut refused = 0;
    let mut momenta = vec![vec![0.0; model::PARAMETERS]; a.agents];
    let flipped: Vec<Vec<Sample>> = split.shards[honest..]
        .iter()
        .map(|s| s.iter().map(|x| Sample { x: x.x, y: flip_label(x.y, data::CLASSES) }).collect())
        .collect();
    for round in 0..a.rounds {
        let mut rng = ChaCha8Rng::seed_from_u64(a.seed ^ (round as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut grad = |shard: &[Sample]| {
            let batch: Vec<&Sample> = shard.sample(&mut rng, a.batch).collect();
            model::gradient(&theta, &batch, 1e-4)
        };
        let raw: Vec<Vec<f64>> = match (&vector_attack, attack) {
            (None, "labelflip") => split.shards[..honest].iter().chain(&flipped).map(|s| grad(s)).collect(),
            (None, _) => split.shards.iter().map(|s| grad(s)).collect(),
            (Some(_), _) => split.shards[..honest].iter().map(|s| grad(s)).collect(),
        };
        for (m, g) in momenta.iter_mut().zip(&raw) {
            m.iter_mut().zip(g).for_each(|(m, g)| *m = a.momentum * *m + (1.0 - a.momentum) * g);
        }
        let mut vectors: Vec<Vec<f64>> = momenta[..honest].to_vec();
        let byzantine: Vec<Vec<f64>> = match (&vector_attack, attack) {
            (None, _) => momenta[honest..].to_vec(),
            (Some(at), _) => match at.vector(&vectors, a.faulty, a.seed ^ round as u64) {
                Ok(v) => vec![v; a.faulty],
                // The honest gradients were not finite: the model has already diverged.
                Err(_) => Vec::new(),
            },
        };
        vectors.extend(byzantine);
        match combine(&vectors)? {
            Some(g) => theta.iter_mut().zip(&g).for_each(|(t, g)| *t -= a.lr * g),
            None => refused += 1,
        }
        accuracy.push(model::accuracy(&theta, &split.test));
    }
    Ok(Run { rule: rule.to_string(), attack: attack.to_string(), accuracy, refused })
}

fn run_json(a: &FederatedArgs, r: &Run) -> serde_json::Value {
    json!({"rule": r.rule, "attack": r.attack, "agents": a.agents, "faulty": a.faulty, "non_iid": a.non_iid,
           "accuracy": r.accuracy, "final_accuracy": r.final_accuracy(), "refused_rounds": r.refused})
}

fn print(a: &FederatedArgs, runs: &[Run], rules: &[String], attacks: &[String]) {
    if a.json {
        let rows: Vec<_> = runs.iter().map(|r| run_json(a, r)).collect();
        println!("{}", serde_json::Value::Array(rows));
        return;
    }
    let split = if a.non_iid { "non-IID" } else { "IID" };
    if let [r] = runs {
        println!(
            "{} agents, {} Byzantine ({}), rule {}, {split}; test accuracy per round:",
            a.agents, a.faulty, r.attack, r.rule
        );
        for (i, acc) in r.accuracy.iter().enumerate() {
            println!("  round {i:>3}  {:5.1} %", acc * 100.0);
        }
        println!("final (mean of the last 5 rounds): {:.1} %", r.final_accuracy() * 100.0);
        if r.refused > 0 {
            println!("{} rounds refused by the rule (model unchanged)", r.refused);
        }
        return;
    }
    println!(
        "test accuracy % (mean of the last 5 of {} rounds), {} agents, {} Byzantine, {split}",
        a.rounds, a.agents, a.faulty
    );
    print!("| rule |");
    attacks.iter().for_each(|x| print!(" {x} |"));
    println!();
    println!("|---|{}", "---|".repeat(attacks.len()));
    for rule in rules {
        print!("| {rule} |");
        for r in runs.iter().filter(|r| &r.rule == rule) {
            print!(" {:.1}{} |", r.final_accuracy() * 100.0, if r.refused > 0 { "*" } else { "" });
        }
        println!();
    }
    if runs.iter().any(|r| r.refused > 0) {
        println!(
            "* some rounds were refused by the rule (non-finite or overflowing input); the model kept its value"
        );
    }
}
