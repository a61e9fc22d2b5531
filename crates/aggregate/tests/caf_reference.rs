//! CAF against values computed independently: `tests/reference/caf.py` runs the published
//! algorithm in d-space with numpy's eigensolver and printed the expected results below.

use phalanx_aggregate::Rule;

fn caf(vectors: &[&[f64]], f: usize) -> (Vec<f64>, Vec<usize>) {
    let vectors: Vec<Vec<f64>> = vectors.iter().map(|v| v.to_vec()).collect();
    let a = Rule::Caf.apply(&vectors, f).unwrap();
    (a.vector, a.kept.unwrap())
}

fn close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "got {got:?}, want {want:?}");
    }
}

#[test]
fn caf_returns_the_iterate_with_the_smallest_top_eigenvalue_as_the_reference_does() {
    // ±1 on x and 100: the second iterate (the outlier gone, the ±1 slightly uneven) has the
    // smallest eigenvalue. The third would have dropped both −1 points: the damped variant this
    // replaces stopped there instead and returned a different mean.
    let (m, kept) = caf(&[&[-1.0, 0.0], &[1.0, 0.0], &[-1.0, 0.0], &[1.0, 0.0], &[100.0, 0.0]], 1);
    assert_eq!(kept, vec![0, 1, 2, 3]);
    close(&m, &[0.006667777962993809, 0.0]);

    let (m, kept) = caf(
        &[
            &[0.5, -1.0, 2.0],
            &[1.5, 0.0, 1.0],
            &[1.0, -0.5, 1.5],
            &[0.0, -1.5, 2.5],
            &[1.0, 0.5, 2.0],
            &[9.0, 9.0, -9.0],
            &[8.0, 10.0, -8.0],
        ],
        2,
    );
    assert_eq!(kept, vec![0, 1, 2, 3, 4]);
    close(&m, &[0.8391162873652116, -0.4502244261998622, 1.7662133558522515]);

    let (m, kept) = caf(
        &[
            &[1.0, 2.0, 0.0, -1.0],
            &[2.0, 1.0, 1.0, 0.0],
            &[0.0, 2.0, 1.0, -1.0],
            &[1.0, 1.0, 0.0, 0.0],
            &[2.0, 2.0, 1.0, -1.0],
            &[1.0, 0.0, 1.0, 0.0],
            &[0.0, 1.0, 0.0, -2.0],
            &[40.0, 0.0, 0.0, 0.0],
            &[0.0, 0.0, -40.0, 30.0],
        ],
        2,
    );
    assert_eq!(kept, vec![0, 1, 2, 3, 4, 5, 6]);
    close(&m, &[1.0041421309775407, 1.2848592351648531, 0.5717780046234482, -0.7112099716390878]);
}

#[test]
fn caf_ends_when_the_live_vectors_coincide_and_with_no_faults_is_the_mean() {
    // Identical honest vectors and one far away: once it is dropped nothing can move (ByzFL's
    // maximum over every vector would loop here for ever).
    let (m, kept) = caf(&[&[2.0, 3.0], &[2.0, 3.0], &[2.0, 3.0], &[2.0, 3.0], &[1e9, -1e9]], 1);
    assert_eq!(kept, vec![0, 1, 2, 3]);
    assert_eq!(m, vec![2.0, 3.0]);
    let (m, kept) = caf(&[&[1.0], &[2.0], &[6.0]], 0);
    assert_eq!(kept, vec![0, 1, 2]);
    assert_eq!(m, vec![3.0]);
}
