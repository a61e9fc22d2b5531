//! `phalanx aggregate` and `phalanx attack`: the robust-aggregation library for tools in any
//! language, JSON on stdin and stdout.

use clap::Args;
use phalanx_aggregate::{Attack, Params, Pipeline, Rule, SMEA_MAX_SUBSETS_INTERACTIVE};
use serde::Deserialize;
use serde_json::json;
use std::io::Read;
use std::process::ExitCode;

/// Largest JSON document read from stdin (n=100 vectors of d=1,000,000 numbers fit).
const MAX_INPUT_BYTES: u64 = 4 << 30;

#[derive(Args)]
pub struct AggregateArgs {
    /// average, median, trmean, geomed, krum, multikrum, cc, mda, monna, meamed, caf, smea, cge.
    #[arg(long)]
    rule: String,
    /// How many of the vectors may be Byzantine.
    #[arg(long)]
    f: usize,
    /// Pre-aggregators applied in order before the rule: nnm, bucketing, clip, arc.
    #[arg(long, value_delimiter = ',')]
    pre: Vec<String>,
    /// A rule or pre-aggregator parameter, key=value (repeatable); see docs/aggregation.md for each.
    #[arg(long = "param")]
    params: Vec<String>,
    /// Seeds bucketing.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
pub struct AttackArgs {
    /// signflip, ipm, alie, opt-ipm, opt-alie, mimic, infinity, gaussian.
    #[arg(long)]
    kind: String,
    /// How many Byzantine agents send the vector.
    #[arg(long)]
    f: usize,
    /// An attack parameter, key=value (repeatable): tau, target, mu, sigma; the optimised
    /// attacks take rule=, pre=a,b, evaluations=, tau_start=, factor= and the rule's parameters.
    #[arg(long = "param")]
    params: Vec<String>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    vectors: Vec<Vec<f64>>,
}

fn read_vectors() -> Result<Vec<Vec<f64>>, String> {
    let mut text = String::new();
    std::io::stdin()
        .take(MAX_INPUT_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    if text.len() as u64 > MAX_INPUT_BYTES {
        return Err(format!("input is larger than {} GiB", MAX_INPUT_BYTES >> 30));
    }
    let input: Input = serde_json::from_str(&text)
        .map_err(|e| format!("stdin is not {{\"vectors\": [[numbers], ...]}}: {e}"))?;
    Ok(input.vectors)
}

pub fn aggregate(a: AggregateArgs) -> Result<ExitCode, String> {
    let params = Params::parse(&a.params).map_err(|e| e.to_string())?;
    let pre: Vec<&str> = a.pre.iter().map(String::as_str).filter(|s| !s.is_empty()).collect();
    let mut pipeline = Pipeline::from_names(&a.rule, &pre, &params, a.seed).map_err(|e| e.to_string())?;
    params.finish().map_err(|e| e.to_string())?;
    // Here one person waits, not every replica of a cluster: SMEA may search more subsets.
    let given = |key: &str| a.params.iter().any(|p| p.split('=').next().map(str::trim) == Some(key));
    if let Rule::Smea { max_subsets } = &mut pipeline.rule
        && !given("max_subsets")
    {
        *max_subsets = SMEA_MAX_SUBSETS_INTERACTIVE;
    }
    let vectors = read_vectors()?;
    let out = pipeline.aggregate(&vectors, a.f).map_err(|e| e.to_string())?;
    println!("{}", json!({"aggregate": out.vector, "kept": out.kept}));
    Ok(ExitCode::SUCCESS)
}

pub fn attack(a: AttackArgs) -> Result<ExitCode, String> {
    let params = Params::parse(&a.params).map_err(|e| e.to_string())?;
    let attack = Attack::from_params(&a.kind, &params, a.seed).map_err(|e| e.to_string())?;
    params.finish().map_err(|e| e.to_string())?;
    let honest = read_vectors()?;
    let vector = attack.vector(&honest, a.f, a.seed).map_err(|e| e.to_string())?;
    println!("{}", json!({"kind": a.kind, "f": a.f, "vector": vector}));
    Ok(ExitCode::SUCCESS)
}
