//! `phalanx aggregate` and `phalanx attack` as another tool calls them: JSON in, JSON out, and a
//! clear error with exit code 2 for bad input.

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

fn phalanx(args: &[&str], stdin: &str) -> (i32, Value, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_phalanx"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run phalanx");
    // A command refused for its arguments exits without reading its input: a broken pipe here
    // is that, not a failure (the exit code and message are checked).
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json, String::from_utf8_lossy(&out.stderr).into_owned())
}

const POISONED: &str = r#"{"vectors": [[1, 2], [2, 2], [3, 2], [4, 2], [1000, -5]]}"#;

#[test]
fn aggregate_prints_the_aggregate_and_the_kept_indices() {
    let (code, out, _) = phalanx(&["aggregate", "--rule", "krum", "--f", "1"], POISONED);
    assert_eq!(code, 0);
    // Original Krum, 2 nearest others: 2 and 3 tie at 1+1 = 2; the lower index wins.
    assert_eq!(out["aggregate"], serde_json::json!([2.0, 2.0]));
    assert_eq!(out["kept"], serde_json::json!([1]));
    let (code, out, _) = phalanx(&["aggregate", "--rule", "median", "--f", "1"], POISONED);
    assert_eq!(code, 0);
    assert_eq!(out["aggregate"], serde_json::json!([3.0, 2.0]));
    assert_eq!(out["kept"], Value::Null);
    // Pre-aggregators and parameters: clipping every vector to norm 1 first.
    let (code, out, _) = phalanx(
        &["aggregate", "--rule", "average", "--f", "0", "--pre", "clip", "--param", "clip_norm=1"],
        r#"{"vectors": [[3, 4], [0, 0.5]]}"#,
    );
    assert_eq!(code, 0);
    let v: Vec<f64> = serde_json::from_value(out["aggregate"].clone()).unwrap();
    assert!((v[0] - 0.3).abs() < 1e-12 && (v[1] - 0.65).abs() < 1e-12, "{v:?}");
}

#[test]
fn attack_prints_the_byzantine_vector() {
    let honest = r#"{"vectors": [[1, 2], [3, 2], [2, 2]]}"#;
    let (code, out, _) = phalanx(&["attack", "--kind", "ipm", "--f", "2", "--param", "tau=0.5"], honest);
    assert_eq!(code, 0);
    assert_eq!(out["vector"], serde_json::json!([-1.0, -1.0]));
    let (code, out, _) =
        phalanx(&["attack", "--kind", "opt-alie", "--f", "2", "--param", "rule=trmean"], honest);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["vector"].as_array().map(Vec::len), Some(2));
}

#[test]
fn bad_input_gets_a_clear_error() {
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["aggregate", "--rule", "median", "--f", "1"],
            r#"{"vectors": [[1, 2], [3]]}"#,
            "vector 1 has 1 coordinates",
        ),
        (&["aggregate", "--rule", "median", "--f", "1"], r#"{"vectors": [[1], [2]]}"#, "needs n > 2f"),
        (&["aggregate", "--rule", "median", "--f", "0"], r#"{"vectors": []}"#, "no vectors"),
        (&["aggregate", "--rule", "median", "--f", "0"], r#"{"vectors": [[1e999]]}"#, "number out of range"),
        (&["aggregate", "--rule", "median", "--f", "0"], r#"{"vecs": [[1]]}"#, "unknown field"),
        (&["aggregate", "--rule", "median", "--f", "0"], "not json", "stdin is not"),
        (&["aggregate", "--rule", "best", "--f", "0"], POISONED, "unknown rule \"best\""),
        (&["aggregate", "--rule", "cc", "--f", "1", "--param", "radius=-2"], POISONED, "must be above 0"),
        (&["aggregate", "--rule", "cc", "--f", "1", "--param", "raduis=2"], POISONED, "parameter raduis"),
        (&["attack", "--kind", "labelflip", "--f", "1"], POISONED, "training data"),
        (&["attack", "--kind", "opt-ipm", "--f", "1"], POISONED, "need the rule"),
    ];
    for (args, stdin, expected) in cases {
        let (code, out, err) = phalanx(args, stdin);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn federated_training_learns_and_robust_rules_resist_the_optimised_attack() {
    let (code, out, err) = phalanx(
        &["federated", "--rule", "average,median", "--attack", "none,opt-ipm", "--rounds", "40", "--json"],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let acc = |rule: &str, attack: &str| {
        let run =
            out.as_array().unwrap().iter().find(|r| r["rule"] == rule && r["attack"] == attack).unwrap();
        assert_eq!(run["accuracy"].as_array().unwrap().len(), 41, "before training and after each round");
        run["final_accuracy"].as_f64().unwrap()
    };
    // Ten classes: chance is 10 %. Without an attack both rules learn.
    assert!(acc("average", "none") > 0.85 && acc("median", "none") > 0.85);
    // The optimised IPM (line search over τ against the target rule) destroys the average but
    // not the median.
    assert!(acc("average", "opt-ipm") < 0.2, "{}", acc("average", "opt-ipm"));
    assert!(acc("median", "opt-ipm") > acc("median", "none") - 0.03);
    // Bad settings are refused.
    let (code, _, err) = phalanx(&["federated", "--agents", "6", "--faulty", "3"], "");
    assert_eq!(code, 2);
    assert!(err.contains("must exceed twice"), "{err}");
}

#[test]
fn smea_on_the_command_line_searches_what_the_reference_computes_in_seconds() {
    // n = 25, f = 6: C(25, 6) = 177,100 subsets. Inside consensus the default bound (20,000)
    // refuses this; `phalanx aggregate` allows it, and the six far points are left out.
    let mut vectors: Vec<Vec<f64>> = (0..19).map(|i| vec![(i % 5) as f64, (i / 5) as f64]).collect();
    vectors.extend((0..6).map(|i| vec![100.0 + i as f64, -50.0]));
    let input = serde_json::json!({ "vectors": vectors }).to_string();
    let (code, out, err) = phalanx(&["aggregate", "--rule", "smea", "--f", "6"], &input);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["kept"], serde_json::json!((0..19).collect::<Vec<_>>()));
    // A lower bound, given explicitly, is kept, and the refusal says how to raise it.
    let (code, _, err) =
        phalanx(&["aggregate", "--rule", "smea", "--f", "6", "--param", "max_subsets=20000"], &input);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("177100 subsets") && err.contains("--param max_subsets=177100"), "{err}");
}
