//! Any gradients, from any number of clients, under any rule and any f: aggregation returns a
//! finite vector or an error, never a panic, a NaN or an infinity.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use phalanx_aggregate::{Params, RULES, Rule};

#[derive(Arbitrary, Debug)]
struct Input {
    rule: u8,
    f: u8,
    vectors: Vec<Vec<f64>>,
}

fuzz_target!(|input: Input| {
    // Bounded so that each run stays quick: the cost is the rule's, not the fuzzer's.
    if input.vectors.len() > 24 || input.vectors.iter().any(|v| v.len() > 32) {
        return;
    }
    let name = RULES[input.rule as usize % RULES.len()];
    let Ok(rule) = Rule::from_params(name, &Params::default()) else { return };
    if let Ok(out) = phalanx_aggregate::aggregate(&rule, &input.vectors, input.f as usize) {
        assert!(out.vector.iter().all(|x| x.is_finite()), "{name} returned a non-finite aggregate");
    }
});
