//! One register of f64 lanes, so that code written once runs on several CPUs: a plain array,
//! which compilers map onto SSE2, NEON or AVX-512 registers, and AVX2 intrinsics. Every
//! operation is exact per lane (min, max, compare, bit masks, one add or multiply), so each
//! form gives the same bits.

/// The widest form's lane count: a buffer this long holds any form's lanes.
pub const MAX_WIDTH: usize = 8;

pub trait Lanes: Copy {
    const WIDTH: usize;
    /// The first `WIDTH` of `values`.
    fn load(values: &[f64]) -> Self;
    /// Into the first `WIDTH` of `out`.
    fn store(self, out: &mut [f64]);
    fn splat(x: f64) -> Self;
    /// Per lane, `if a < b { a } else { b }`.
    fn min(self, other: Self) -> Self;
    /// Per lane, `if a > b { a } else { b }`.
    fn max(self, other: Self) -> Self;
    fn add(self, other: Self) -> Self;
    fn mul(self, other: Self) -> Self;
    /// Per lane, every bit set where `a > b`, none elsewhere.
    fn greater(self, other: Self) -> Self;
    /// Per lane, every bit set where `a < b`, none elsewhere.
    fn less(self, other: Self) -> Self;
    /// Bitwise and: with a mask, the lanes it sets and +0.0 elsewhere.
    fn and(self, other: Self) -> Self;
    /// Counters held as integers in the lanes' bits, plus one where `mask` is set.
    fn tally(self, mask: Self) -> Self;
}

/// A plain array: the portable form, and the AVX-512 one when compiled for it.
impl<const W: usize> Lanes for [f64; W] {
    const WIDTH: usize = W;
    #[inline(always)]
    fn load(values: &[f64]) -> Self {
        *values.first_chunk().expect("a whole register of values")
    }
    #[inline(always)]
    fn store(self, out: &mut [f64]) {
        out[..W].copy_from_slice(&self);
    }
    #[inline(always)]
    fn splat(x: f64) -> Self {
        [x; W]
    }
    #[inline(always)]
    fn min(self, other: Self) -> Self {
        std::array::from_fn(|l| if self[l] < other[l] { self[l] } else { other[l] })
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        std::array::from_fn(|l| if self[l] > other[l] { self[l] } else { other[l] })
    }
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        std::array::from_fn(|l| self[l] + other[l])
    }
    #[inline(always)]
    fn mul(self, other: Self) -> Self {
        std::array::from_fn(|l| self[l] * other[l])
    }
    #[inline(always)]
    fn greater(self, other: Self) -> Self {
        std::array::from_fn(|l| f64::from_bits(if self[l] > other[l] { !0 } else { 0 }))
    }
    #[inline(always)]
    fn less(self, other: Self) -> Self {
        std::array::from_fn(|l| f64::from_bits(if self[l] < other[l] { !0 } else { 0 }))
    }
    #[inline(always)]
    fn and(self, other: Self) -> Self {
        std::array::from_fn(|l| f64::from_bits(self[l].to_bits() & other[l].to_bits()))
    }
    #[inline(always)]
    fn tally(self, mask: Self) -> Self {
        // A set mask is −1 as an integer.
        std::array::from_fn(|l| f64::from_bits(self[l].to_bits().wrapping_sub(mask[l].to_bits())))
    }
}

/// AVX2: only inlined into functions compiled for it, which check the CPU first.
#[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
mod avx2 {
    use super::Lanes;
    use std::arch::x86_64::*;

    // SAFETY (every block below): these functions are inlined only into code compiled with
    // `target_feature(enable = "avx2")`, run only where `Path::Avx2` is available; loads and
    // stores go through slices checked to hold four values.
    impl Lanes for __m256d {
        const WIDTH: usize = 4;
        #[inline(always)]
        fn load(values: &[f64]) -> Self {
            unsafe { _mm256_loadu_pd(values[..4].as_ptr()) }
        }
        #[inline(always)]
        fn store(self, out: &mut [f64]) {
            unsafe { _mm256_storeu_pd(out[..4].as_mut_ptr(), self) }
        }
        #[inline(always)]
        fn splat(x: f64) -> Self {
            unsafe { _mm256_set1_pd(x) }
        }
        #[inline(always)]
        fn min(self, other: Self) -> Self {
            // vminpd returns its second operand unless the first is smaller.
            unsafe { _mm256_min_pd(self, other) }
        }
        #[inline(always)]
        fn max(self, other: Self) -> Self {
            unsafe { _mm256_max_pd(self, other) }
        }
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            unsafe { _mm256_add_pd(self, other) }
        }
        #[inline(always)]
        fn mul(self, other: Self) -> Self {
            unsafe { _mm256_mul_pd(self, other) }
        }
        #[inline(always)]
        fn greater(self, other: Self) -> Self {
            unsafe { _mm256_cmp_pd::<_CMP_GT_OQ>(self, other) }
        }
        #[inline(always)]
        fn less(self, other: Self) -> Self {
            unsafe { _mm256_cmp_pd::<_CMP_LT_OQ>(self, other) }
        }
        #[inline(always)]
        fn and(self, other: Self) -> Self {
            unsafe { _mm256_and_pd(self, other) }
        }
        #[inline(always)]
        fn tally(self, mask: Self) -> Self {
            unsafe {
                let count = _mm256_sub_epi64(_mm256_castpd_si256(self), _mm256_castpd_si256(mask));
                _mm256_castsi256_pd(count)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation of one form against the array of the same width, on awkward values.
    #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
    #[inline(always)]
    fn same_as_array<L: Lanes>() {
        let values = [0.0, -0.0, 1.0, -1.0, 2.5, 1e300, -1e-300, f64::INFINITY, f64::NEG_INFINITY, 3.0];
        for i in 0..values.len() - L::WIDTH {
            for j in 0..values.len() - L::WIDTH {
                let (a, b) = (&values[i..], &values[j..]);
                let (x, y) = (L::load(a), L::load(b));
                let (p, q): ([f64; 4], [f64; 4]) = (Lanes::load(a), Lanes::load(b));
                let ones = L::splat(f64::from_bits(!0));
                let ops: [(L, [f64; 4]); 9] = [
                    (x.min(y), p.min(q)),
                    (x.max(y), p.max(q)),
                    (x.add(y), p.add(q)),
                    (x.mul(y), p.mul(q)),
                    (x.greater(y), p.greater(q)),
                    (x.less(y), p.less(q)),
                    (x.and(y.greater(x)), p.and(q.greater(p))),
                    (
                        L::splat(0.0).tally(x.less(y)).tally(ones),
                        [0.0; 4].tally(p.less(q)).tally([f64::from_bits(!0); 4]),
                    ),
                    (L::splat(-0.0), [-0.0; 4]),
                ];
                for (got, want) in ops {
                    let mut out = [0.0; MAX_WIDTH];
                    got.store(&mut out);
                    let same = out[..4].iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{:?} vs {want:?}", &out[..4]);
                }
            }
        }
    }

    #[test]
    fn avx2_lanes_are_the_array_lanes() {
        #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
        if crate::linalg::kernel::Path::Avx2.available() {
            // SAFETY: the CPU has AVX2.
            #[target_feature(enable = "avx2")]
            fn run() {
                same_as_array::<std::arch::x86_64::__m256d>();
            }
            unsafe { run() }
        }
    }

    /// The array form against its documented definitions, by hand: equal values (±0) give the
    /// second operand, masks are all bits or none, a masked-out lane is +0.0, tallies count.
    #[test]
    fn array_lanes_follow_their_definitions() {
        let bits = |x: [f64; 2]| x.map(f64::to_bits);
        let (zero, minus) = ([0.0, -0.0], [-0.0, 0.0]);
        assert_eq!(bits(zero.min(minus)), bits(minus));
        assert_eq!(bits(zero.max(minus)), bits(minus));
        assert_eq!(bits([1.0, 5.0].min([2.0, 3.0])), bits([1.0, 3.0]));
        assert_eq!(bits([1.0, 5.0].max([2.0, 3.0])), bits([2.0, 5.0]));
        let greater = [1.0, 5.0].greater([2.0, 3.0]);
        assert_eq!(bits(greater), [0, !0]);
        assert_eq!(bits([1.0, 5.0].less([2.0, 3.0])), [!0, 0]);
        assert_eq!(bits(greater.and([-7.0, -7.0])), bits([0.0, -7.0]));
        let counts = [0.0; 2].tally(greater).tally(greater).tally([1.0, 5.0].less([2.0, 3.0]));
        assert_eq!(bits(counts), [1, 2]);
    }
}
