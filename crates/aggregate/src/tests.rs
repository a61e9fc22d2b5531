//! The pipeline as callers meet it: every rule by name on one hand-computed case, and the
//! refusals.

use super::*;

/// One-coordinate vectors, for hand-computed cases (shared by the unit tests).
pub(crate) fn line(xs: &[f64]) -> Vec<Vec<f64>> {
    xs.iter().map(|x| vec![*x]).collect()
}

fn run(rule: &str, params: &[&str], vectors: &[Vec<f64>], f: usize) -> Result<Aggregate> {
    let p = Params::parse(params)?;
    let pipeline = Pipeline::from_names(rule, &[], &p, 0)?;
    p.finish()?;
    pipeline.aggregate(vectors, f)
}

/// Five honest values 1..5 (1-d) and one Byzantine 1000, f = 1.
fn poisoned() -> Vec<Vec<f64>> {
    line(&[1.0, 2.0, 3.0, 4.0, 5.0, 1000.0])
}

#[test]
fn every_rule_by_hand_on_one_poisoned_case() {
    let v = poisoned();
    let agg = |rule: &str, params: &[&str]| run(rule, params, &v, 1).unwrap();
    assert_eq!(agg("average", &[]).vector, vec![1015.0 / 6.0]);
    assert_eq!(agg("median", &[]).vector, vec![3.5]);
    assert_eq!(agg("trmean", &[]).vector, vec![3.5]); // mean of 2,3,4,5
    // Median 3.5; the 5 nearest are 1..5 → 3.
    assert_eq!(agg("meamed", &[]).vector, vec![3.0]);
    // Krum (original, n−f−2 = 3 nearest): 1 → 1+4+9 = 14, 2 → 1+1+4 = 6, 3 → 1+1+4 = 6,
    // 4 → 6, 5 → 14; the tie goes to the lowest index: value 2.
    let k = agg("krum", &[]);
    assert_eq!((k.vector, k.kept), (vec![2.0], Some(vec![1])));
    // Mean score over n−f−1 = 4 nearest: 3 → (1+1+4+4)/4 = 2.5 beats 2 and 4 → (1+1+4+9)/4.
    let k = agg("krum", &["score=mean"]);
    assert_eq!((k.vector, k.kept), (vec![3.0], Some(vec![2])));
    // Multi-Krum keeps n−f = 5 best: all honest ones.
    let mk = agg("multikrum", &[]);
    assert_eq!(mk.vector, vec![3.0]);
    assert_eq!(
        mk.kept.map(|mut k| {
            k.sort();
            k
        }),
        Some(vec![0, 1, 2, 3, 4])
    );
    let mk = agg("multikrum", &["m=2", "score=mean"]);
    assert_eq!(mk.kept, Some(vec![2, 1]), "best first");
    // MDA: leaving out 1000 gives diameter 4, the smallest.
    assert_eq!(agg("mda", &[]).kept, Some(vec![0, 1, 2, 3, 4]));
    assert_eq!(agg("smea", &[]).kept, Some(vec![0, 1, 2, 3, 4]));
    // MoNNA around vector 0 (value 1): its 5 nearest are 1..5.
    assert_eq!(agg("monna", &[]).vector, vec![3.0]);
    assert_eq!(agg("monna", &["pivot=5"]).kept, Some(vec![1, 2, 3, 4, 5]));
    // CGE drops the largest norm; sum=true sums the rest.
    assert_eq!(agg("cge", &[]).vector, vec![3.0]);
    assert_eq!(agg("cge", &["sum=true"]).vector, vec![15.0]);
    // CAF zeroes the outlier's weight first.
    assert!(!agg("caf", &[]).kept.unwrap().contains(&5));
    // The geometric median of 1..5 and 1000 in 1-d is any point of [3, 4]; Weiszfeld from the
    // median 3.5 stays there.
    let g = agg("geomed", &[]).vector[0];
    assert!((3.0..=4.0).contains(&g), "{g}");
    // CC from the median 3.5, radius 1, one step: (1/6)(−1 −1 −0.5 +0.5 +1 +1) = 0 → 3.5.
    assert_eq!(agg("cc", &["iterations=1"]).vector, vec![3.5]);
    // From zero with a huge radius, one step is the mean.
    assert_eq!(agg("cc", &["start=zero", "radius=1e9", "iterations=1"]).vector, vec![1015.0 / 6.0]);
}

#[test]
fn pre_aggregators_chain_before_the_rule() {
    let p = Params::parse(&["clip_norm=10"]).unwrap();
    let pipe = Pipeline::from_names("average", &["clip"], &p, 0).unwrap();
    // 1000 is clipped to 10: mean of 1,2,3,4,5,10 = 25/6.
    assert!((pipe.aggregate(&poisoned(), 1).unwrap().vector[0] - 25.0 / 6.0).abs() < 1e-12);
    // nnm then average: NNM pulls every vector towards its neighbours first.
    let pipe = Pipeline::from_names("average", &["nnm"], &Params::default(), 0).unwrap();
    let v = pipe.aggregate(&poisoned(), 1).unwrap().vector[0];
    assert!(v < 1015.0 / 6.0, "{v}");
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let msg = |r: Result<Aggregate>| r.unwrap_err().to_string();
    assert_eq!(msg(run("median", &[], &[], 0)), "no vectors to aggregate");
    assert_eq!(msg(run("median", &[], &[vec![], vec![]], 0)), "vectors have no coordinates");
    assert_eq!(
        msg(run("median", &[], &[vec![1.0, 2.0], vec![1.0]], 0)),
        "vector 1 has 1 coordinates, vector 0 has 2"
    );
    assert_eq!(
        msg(run("median", &[], &[vec![1.0], vec![f64::NAN]], 0)),
        "vector 1, coordinate 0 is NaN: only finite numbers are accepted"
    );
    assert!(msg(run("median", &[], &[vec![1.0], vec![f64::INFINITY]], 0)).contains("inf"));
    assert_eq!(
        msg(run("trmean", &[], &line(&[1.0, 2.0, 3.0, 4.0]), 2)),
        "trmean needs n > 2f with f = 2, but got n = 4 vectors"
    );
    assert!(msg(run("krum", &[], &line(&[1.0, 2.0, 3.0]), 1)).contains("n ≥ f + 3"));
    assert!(msg(run("multikrum", &["m=9"], &poisoned(), 1)).contains("between 1 and n = 6"));
    assert!(msg(run("monna", &["pivot=6"], &poisoned(), 1)).contains("below n = 6"));
    assert!(msg(run("mda", &["max_subsets=3"], &poisoned(), 1)).contains("6 subsets"));
    assert!(msg(run("nope", &[], &poisoned(), 1)).contains("known: average, median"));
    assert!(msg(run("median", &["radius=1"], &poisoned(), 1)).contains("parameter radius"));
    assert!(msg(run("cc", &["radius=-1"], &poisoned(), 1)).contains("must be above 0"));
    assert!(msg(run("cc", &["radius=x"], &poisoned(), 1)).contains("not a finite number"));
    assert!(msg(run("krum", &["score=max"], &poisoned(), 1)).contains("original"));
    // Finite input whose average overflows: an error, never inf or NaN output.
    assert_eq!(
        msg(run("cge", &["sum=true"], &[vec![f64::MAX], vec![f64::MAX], vec![f64::MAX]], 1)),
        "the aggregate overflowed f64: the inputs are too large to combine"
    );
}

/// The rules whose first pass meets every value check finiteness on their way instead of by
/// `validate`: every bad value, wherever it sits (first or last vector, first or a late strip,
/// the short last strip), and with either thread path, gets the error `validate` gives, naming
/// the first bad vector; bad shapes are still refused as before.
#[test]
fn rules_checking_on_their_way_refuse_what_validate_refuses() {
    let msg = |rule: &str, v: &[Vec<f64>]| run(rule, &[], v, 2).unwrap_err().to_string();
    for d in [300, 40_000] {
        let base: Vec<Vec<f64>> =
            (0..7).map(|i| (0..d).map(|k| ((i * d + k) as f64).cos()).collect()).collect();
        for (i, k) in [(0, 0), (6, d - 1), (3, 256), (2, d / 2)] {
            for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                let mut v = base.clone();
                v[i][k] = bad;
                let expected = validate(&v).unwrap_err().to_string();
                assert!(expected.contains(&format!("vector {i}, coordinate {k}")), "{expected}");
                for rule in ["average", "trmean", "krum", "multikrum", "mda", "monna", "cge", "geomed", "cc"]
                {
                    assert_eq!(msg(rule, &v), expected, "{rule} d={d} ({i}, {k}) {bad}");
                }
                // Centered clipping from its other starts.
                for start in ["start=zero", "start=average"] {
                    let got = run("cc", &[start], &v, 2).unwrap_err().to_string();
                    assert_eq!(got, expected, "cc {start} d={d} ({i}, {k}) {bad}");
                }
            }
        }
        // Two bad values: the first vector's is named, as a scan in order would.
        let mut v = base.clone();
        (v[5][1], v[1][d - 1]) = (f64::NAN, f64::INFINITY);
        for rule in ["average", "trmean", "krum", "multikrum", "mda", "monna", "cge", "geomed", "cc"] {
            assert!(msg(rule, &v).starts_with(&format!("vector 1, coordinate {}", d - 1)), "{rule}");
        }
    }
    // Σ x/n of the largest finite values stays finite: nothing for the check to mistake. Their
    // norms and distances overflow: those rules take the full path, and answer as ever.
    let mut huge = vec![vec![f64::MAX, -f64::MAX]; 5];
    assert_eq!(run("average", &[], &huge, 2).unwrap().vector, vec![f64::MAX, -f64::MAX]);
    huge[4] = vec![-f64::MAX, f64::MAX];
    assert_eq!(run("monna", &[], &huge, 1).unwrap().kept, Some(vec![0, 1, 2, 3]));
    assert_eq!(run("multikrum", &[], &huge, 1).unwrap().kept, Some(vec![0, 1, 2, 3]));
    assert_eq!(run("cge", &[], &huge, 1).unwrap().vector, vec![f64::MAX, -f64::MAX]);
    assert!(
        msg("average", &[vec![1.0, 2.0], vec![1.0], vec![f64::NAN]])
            .starts_with("vector 1 has 1 coordinates")
    );
    assert!(msg("trmean", &vec![vec![1.0]; 4]).contains("n > 2f"));
    // Fine input still passes, with the values of the rules as ever.
    assert_eq!(run("trmean", &[], &line(&[1.0, 2.0, 3.0, 4.0, 100.0]), 1).unwrap().vector, vec![3.0]);
}

#[test]
fn robust_rules_survive_the_largest_finite_values() {
    let mut v = line(&[1.0, 2.0, 3.0, 4.0, 5.0]);
    v.push(vec![f64::MAX]);
    v.push(vec![f64::MAX]);
    for rule in ["median", "trmean", "meamed", "krum", "multikrum", "mda", "monna", "cge", "geomed", "cc"] {
        let out = run(rule, &[], &v, 2).unwrap_or_else(|e| panic!("{rule}: {e}"));
        assert!((1.0..=5.0).contains(&out.vector[0]), "{rule}: {:?}", out.vector);
    }
}

#[test]
fn results_are_bit_identical_across_thread_counts() {
    // Long enough vectors to take the parallel paths.
    let d = 70_000;
    let v: Vec<Vec<f64>> =
        (0..9).map(|i| (0..d).map(|k| ((i * d + k) as f64 * 0.37).sin()).collect()).collect();
    let with_threads = |threads: usize, rule: &str, pre: &[&str]| {
        let pipeline = Pipeline::from_names(rule, pre, &Params::default(), 7).unwrap();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let out = pool.install(|| pipeline.aggregate(&v, 2).unwrap());
        out.vector.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    };
    let cases = RULES.iter().map(|r| (*r, None)).chain(PRE_AGGREGATORS.iter().map(|p| ("average", Some(*p))));
    for (rule, pre) in cases {
        let pre: Vec<&str> = pre.into_iter().collect();
        let one = with_threads(1, rule, &pre);
        assert_eq!(one, with_threads(2, rule, &pre), "{rule} {pre:?}");
        assert_eq!(one, with_threads(3, rule, &pre), "{rule} {pre:?}");
    }
}
