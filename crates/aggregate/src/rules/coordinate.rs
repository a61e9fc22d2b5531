//! Coordinate-wise rules: each coordinate of the aggregate depends only on that coordinate of the
//! inputs.

use crate::linalg::per_column;

/// The middle value; for an even count, the mean of the two middle values.
pub fn median_of(col: &mut [f64]) -> f64 {
    let n = col.len();
    let (lower, mid, _) = col.select_nth_unstable_by(n / 2, f64::total_cmp);
    let mid = *mid;
    if n % 2 == 1 {
        return mid;
    }
    let below = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    below / 2.0 + mid / 2.0
}

/// The mean of a slice, each term divided before it is added (no overflow near f64::MAX).
fn mean_of(values: &[f64]) -> f64 {
    let w = 1.0 / values.len() as f64;
    values.iter().fold(0.0, |s, x| s + w * x)
}

pub fn median(vectors: &[Vec<f64>]) -> Vec<f64> {
    per_column(vectors, median_of)
}

/// Drops the f lowest and f highest values of each coordinate and averages the rest.
pub fn trimmed_mean(vectors: &[Vec<f64>], f: usize) -> Vec<f64> {
    per_column(vectors, |col| {
        col.sort_unstable_by(f64::total_cmp);
        mean_of(&col[f..col.len() - f])
    })
}

/// Mean around the median: per coordinate, the mean of the n−f values closest to the median
/// (ties broken towards the smaller value, so the choice is deterministic).
pub fn meamed(vectors: &[Vec<f64>], f: usize) -> Vec<f64> {
    per_column(vectors, |col| {
        let m = median_of(col);
        col.sort_unstable_by(|a, b| (a - m).abs().total_cmp(&(b - m).abs()).then(a.total_cmp(b)));
        let keep = col.len() - f;
        // Summed in ascending value order, independent of how the sort broke ties.
        col[..keep].sort_unstable_by(f64::total_cmp);
        mean_of(&col[..keep])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(cols: &[&[f64]]) -> Vec<Vec<f64>> {
        // Input given column-major for readability: one slice per coordinate.
        let n = cols[0].len();
        (0..n).map(|i| cols.iter().map(|c| c[i]).collect()).collect()
    }

    #[test]
    fn median_odd_even_and_outliers() {
        assert_eq!(median(&rows(&[&[3.0, 1.0, 2.0]])), vec![2.0]);
        assert_eq!(median(&rows(&[&[4.0, 1.0, 3.0, 2.0]])), vec![2.5]);
        assert_eq!(median(&rows(&[&[1.0, 2.0, 1e300], &[-5.0, 0.0, 5.0]])), vec![2.0, 0.0]);
        assert_eq!(median(&rows(&[&[f64::MAX, f64::MAX]])), vec![f64::MAX]);
    }

    #[test]
    fn trimmed_mean_drops_f_each_side() {
        // sorted 1,2,3,4,100 with f=1 → mean(2,3,4) = 3
        assert_eq!(trimmed_mean(&rows(&[&[100.0, 1.0, 3.0, 2.0, 4.0]]), 1), vec![3.0]);
        // f=0 is the plain mean.
        assert_eq!(trimmed_mean(&rows(&[&[1.0, 2.0, 6.0]]), 0), vec![3.0]);
        // f=2 of 5 leaves only the median.
        assert_eq!(trimmed_mean(&rows(&[&[9.0, -9.0, 1.0, 7.0, -7.0]]), 2), vec![1.0]);
    }

    #[test]
    fn meamed_keeps_values_nearest_the_median() {
        // values 0,1,2,3,100: median 2; the 4 nearest are 1,2,3,0 (0 and 4 tie... 0 is at 2, 100 far)
        // → mean(0,1,2,3) = 1.5
        assert_eq!(meamed(&rows(&[&[100.0, 0.0, 3.0, 1.0, 2.0]]), 1), vec![1.5]);
        // Ties at equal distance go to the smaller value: median of 1,2,3 is 2; 1 and 3 tie; keep 1,2.
        assert_eq!(meamed(&rows(&[&[3.0, 1.0, 2.0]]), 1), vec![1.5]);
    }
}
