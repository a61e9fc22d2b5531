//! Sums over coordinates in one fixed order, for one pair of vectors or for every pair at once.
//!
//! The order, which fixes every bit of a result:
//!
//! - the coordinates split into chunks of [`CHUNK`], and each chunk into panels of [`PANEL`];
//! - within a panel, lane `l` of [`LANES`] adds the terms of coordinates `l, l + LANES, …` left
//!   to right; the lanes are then added as a balanced tree, ((0+1)+(2+3))+((4+5)+(6+7)), and the
//!   panel's last `len mod LANES` terms after that, left to right;
//! - a term is added as [`Term::accumulate`] says: a product a·b rounded, then added; a squared
//!   difference (a − b)² by one fused multiply-add of the rounded difference, s + d·d rounded
//!   once (IEEE 754's fma, the same on every CPU);
//! - a chunk's sum is its panel sums added in order, and the total is the chunk sums added in
//!   order.
//!
//! Nothing in that order depends on the thread count (chunks are computed in parallel and added
//! in chunk order) or on the CPU: the lanes are plain arrays that the compiler maps onto SSE2 or
//! NEON registers, or AVX2 intrinsics doing the same operations per lane (Rust never contracts
//! `a * b + c` into a fused multiply-add of its own accord). `Path` picks the copy the CPU runs
//! best, and `Path::ALL` lets tests check that every copy gives the same bits.
//!
//! The all-pairs kernel ([`pairwise`]) is what makes the distance-based rules fast: one chunk's
//! panel of every vector is copied into a small contiguous buffer that stays in the core's L2
//! cache, and every pair is summed from there, two rows against two at a time: each load serves
//! two sums, so the buffer is read from L2 at half the rate, and the fused multiply-add leaves
//! the adders only the differences. The input is read from memory once instead of once per
//! pair, and the copy also spares the cache the conflict misses of many vectors whose
//! allocations share an alignment.

use rayon::prelude::*;

/// Lanes of every panel sum.
pub const LANES: usize = 8;
/// Coordinates per panel: 100 vectors' panels take 200 KB, within a core's L2 cache.
pub const PANEL: usize = 256;
/// Coordinates per chunk, the unit of parallel work.
pub const CHUNK: usize = 64 * PANEL;
/// Chunks computed at once by [`pairwise`]; each holds an n×n matrix, so this bounds memory.
const WAVE: usize = 16;

/// One term of a sum over coordinates.
pub trait Term: Sync {
    /// Whether the term is of a − b (else of a and b as they are).
    const DIFFERENCE: bool;
    /// `sum` with the term of a and b added.
    fn accumulate(sum: f64, a: f64, b: f64) -> f64;
}

/// a·b: dot products, norms.
pub struct Dot;
/// (a − b)²: squared Euclidean distances.
pub struct Dist2;

impl Term for Dot {
    const DIFFERENCE: bool = false;
    #[inline(always)]
    fn accumulate(sum: f64, a: f64, b: f64) -> f64 {
        sum + a * b
    }
}

impl Term for Dist2 {
    const DIFFERENCE: bool = true;
    /// One rounding fewer than d·d then +, and on x86 one instruction on the multipliers,
    /// which leaves the adders only the difference: that lifts the adders' bound on the
    /// all-pairs kernel.
    #[inline(always)]
    fn accumulate(sum: f64, a: f64, b: f64) -> f64 {
        let d = a - b;
        fused_multiply_add(d, d, sum)
    }
}

/// x·y + z rounded once: the CPU's instruction where the build targets one, elsewhere the
/// libm crate's correctly rounded software (not the platform C library's, which some round
/// wrongly). Either way, the same bits.
#[inline(always)]
fn fused_multiply_add(x: f64, y: f64, z: f64) -> f64 {
    #[cfg(any(target_arch = "aarch64", target_feature = "fma"))]
    return x.mul_add(y, z);
    #[cfg(not(any(target_arch = "aarch64", target_feature = "fma")))]
    return libm::fma(x, y, z);
}

/// Which compiled copy of the kernels runs. Every path gives the same bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// The target's baseline instructions (SSE2 on x86-64).
    Portable,
    /// The same code compiled for AVX2, used when the CPU has it.
    #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
    Avx2,
    /// AVX-512 where 32 registers pay (the trimmed mean's lists); AVX2 elsewhere.
    #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
    Avx512,
}

impl Path {
    #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
    pub const ALL: &[Path] = &[Path::Portable, Path::Avx2, Path::Avx512];
    #[cfg(not(all(target_arch = "x86_64", not(feature = "portable"))))]
    pub const ALL: &[Path] = &[Path::Portable];

    /// The fastest path this CPU runs.
    pub fn detect() -> Path {
        #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
        for path in [Path::Avx512, Path::Avx2] {
            if path.available() {
                return path;
            }
        }
        Path::Portable
    }

    /// Whether this CPU can run the path.
    pub fn available(self) -> bool {
        match self {
            Path::Portable => true,
            #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
            Path::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
            Path::Avx512 => Path::Avx2.available() && std::arch::is_x86_feature_detected!("avx512f"),
        }
    }
}

/// The tree that adds the lanes.
#[inline(always)]
fn lanes_total(a: &[f64; LANES]) -> f64 {
    ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
}

/// The panel sum of one pair, written for any target: plain arrays of `LANES`, which the
/// compiler turns into the target's vector instructions.
#[inline(always)]
fn panel_portable<T: Term>(a: &[f64], b: &[f64]) -> f64 {
    let (groups, tail) = a.as_chunks::<LANES>();
    let (others, other_tail) = b[..a.len()].as_chunks::<LANES>();
    let mut acc = [0.0f64; LANES];
    for (x, y) in groups.iter().zip(others) {
        for l in 0..LANES {
            acc[l] = T::accumulate(acc[l], x[l], y[l]);
        }
    }
    tail.iter().zip(other_tail).fold(lanes_total(&acc), |s, (x, y)| T::accumulate(s, *x, *y))
}

/// The panel sums of `a` against each of `W` vectors `b` (each at least as long as `a`).
#[inline(always)]
fn panel<T: Term, const W: usize>(path: Path, a: &[f64], b: [&[f64]; W]) -> [f64; W] {
    match path {
        Path::Portable => b.map(|b| panel_portable::<T>(a, b)),
        // SAFETY: `Avx2` and `Avx512` are only chosen (by `detect`, or by tests after
        // `available`) on CPUs that have AVX2 and FMA (`available` checks both).
        #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
        Path::Avx2 | Path::Avx512 => unsafe { avx2::panel::<T, W>(a, b) },
    }
}

/// The panel sums of rows `a[r]` against rows `b[c]` (each at least as long as `a[0]`), as
/// `[r][c]`: each load serves two sums.
#[inline(always)]
fn tile<T: Term>(path: Path, a: [&[f64]; 2], b: [&[f64]; 2]) -> [[f64; 2]; 2] {
    match path {
        Path::Portable => a.map(|a| b.map(|b| panel_portable::<T>(a, b))),
        // SAFETY: as for `panel`.
        #[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
        Path::Avx2 | Path::Avx512 => unsafe { avx2::tile::<T>(a, b) },
    }
}

/// The same sums with AVX2 intrinsics: the lanes are two 4-wide registers per pair. The
/// operations per lane are those of `panel_portable`.
#[cfg(all(target_arch = "x86_64", not(feature = "portable")))]
mod avx2 {
    use super::{LANES, Term, lanes_total};
    use std::arch::x86_64::*;

    /// Four lanes of `sum` with the terms of x and y added, as `Term::accumulate` does per lane.
    #[inline(always)]
    fn accumulate<T: Term>(sum: __m256d, x: __m256d, y: __m256d) -> __m256d {
        // SAFETY: only inlined into functions compiled for AVX2 and FMA.
        unsafe {
            if T::DIFFERENCE {
                let d = _mm256_sub_pd(x, y);
                _mm256_fmadd_pd(d, d, sum)
            } else {
                _mm256_add_pd(sum, _mm256_mul_pd(x, y))
            }
        }
    }

    /// The eight lanes of a pair's sum added as `lanes_total` does, then the tail's terms.
    #[inline(always)]
    fn finish<T: Term>(low: __m256d, high: __m256d, a: &[f64], b: &[f64], full: usize) -> f64 {
        let mut lanes = [0.0; LANES];
        // SAFETY: `lanes` holds 8 values, 4 from each store.
        unsafe {
            _mm256_storeu_pd(lanes.as_mut_ptr(), low);
            _mm256_storeu_pd(lanes.as_mut_ptr().add(4), high);
        }
        (full..a.len()).fold(lanes_total(&lanes), |s, k| T::accumulate(s, a[k], b[k]))
    }

    /// `a` against each of `W` vectors `b`, sharing each load of `a`.
    #[target_feature(enable = "avx2,fma")]
    pub fn panel<T: Term, const W: usize>(a: &[f64], b: [&[f64]; W]) -> [f64; W] {
        let len = a.len();
        // Checked once here, not resliced through an array map (a call per panel).
        assert!(b.iter().all(|v| v.len() >= len), "a panel's rows are as long as its first");
        let full = len - len % LANES;
        let mut low = [_mm256_setzero_pd(); W];
        let mut high = [_mm256_setzero_pd(); W];
        for k in (0..full).step_by(LANES) {
            // SAFETY: k + LANES ≤ len, and every slice here has at least len elements.
            unsafe {
                let x0 = _mm256_loadu_pd(a.as_ptr().add(k));
                let x1 = _mm256_loadu_pd(a.as_ptr().add(k + 4));
                for w in 0..W {
                    let y0 = _mm256_loadu_pd(b[w].as_ptr().add(k));
                    let y1 = _mm256_loadu_pd(b[w].as_ptr().add(k + 4));
                    low[w] = accumulate::<T>(low[w], x0, y0);
                    high[w] = accumulate::<T>(high[w], x1, y1);
                }
            }
        }
        let mut out = [0.0; W];
        for w in 0..W {
            out[w] = finish::<T>(low[w], high[w], a, b[w], full);
        }
        out
    }

    /// Two rows against two: eight accumulators, and each row's loads serve two sums. Written
    /// out, without array maps: a tile is only 32 steps long, and calls around it would cost
    /// as much as its loop.
    #[target_feature(enable = "avx2,fma")]
    pub fn tile<T: Term>(a: [&[f64]; 2], b: [&[f64]; 2]) -> [[f64; 2]; 2] {
        let len = a[0].len();
        let (a0, a1, b0, b1) = (&a[0][..len], &a[1][..len], &b[0][..len], &b[1][..len]);
        let full = len - len % LANES;
        let z = _mm256_setzero_pd();
        let (mut l00, mut h00, mut l01, mut h01) = (z, z, z, z);
        let (mut l10, mut h10, mut l11, mut h11) = (z, z, z, z);
        for k in (0..full).step_by(LANES) {
            // SAFETY: k + LANES ≤ len, and every slice here has len elements.
            unsafe {
                let load = |v: &[f64], at: usize| _mm256_loadu_pd(v.as_ptr().add(at));
                let (x0, x1, u0, u1) = (load(a0, k), load(a0, k + 4), load(a1, k), load(a1, k + 4));
                let (y0, y1) = (load(b0, k), load(b0, k + 4));
                (l00, h00) = (accumulate::<T>(l00, x0, y0), accumulate::<T>(h00, x1, y1));
                (l10, h10) = (accumulate::<T>(l10, u0, y0), accumulate::<T>(h10, u1, y1));
                let (y0, y1) = (load(b1, k), load(b1, k + 4));
                (l01, h01) = (accumulate::<T>(l01, x0, y0), accumulate::<T>(h01, x1, y1));
                (l11, h11) = (accumulate::<T>(l11, u0, y0), accumulate::<T>(h11, u1, y1));
            }
        }
        [
            [finish::<T>(l00, h00, a0, b0, full), finish::<T>(l01, h01, a0, b1, full)],
            [finish::<T>(l10, h10, a1, b0, full), finish::<T>(l11, h11, a1, b1, full)],
        ]
    }
}

/// One chunk's sum of one pair: its panel sums in order.
fn chunk_pair<T: Term>(path: Path, a: &[f64], b: &[f64]) -> f64 {
    a.chunks(PANEL).zip(b.chunks(PANEL)).fold(0.0, |s, (x, y)| s + panel::<T, 1>(path, x, [y])[0])
}

/// Σ_k T(a[k], b[k]) in the fixed order.
pub fn sum<T: Term>(path: Path, a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "sum over vectors of different lengths");
    if a.len() <= CHUNK {
        return chunk_pair::<T>(path, a, b);
    }
    let chunks: Vec<f64> =
        a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)).map(|(x, y)| chunk_pair::<T>(path, x, y)).collect();
    chunks.into_iter().fold(0.0, |s, c| s + c)
}

/// Σ_k T(x_i[k], z[k]) for every vector x_i, each with the bits of `sum::<T>(x_i, z)`, from
/// one pass: a chunk of `z` stays in cache while the chunks of every vector stream past it.
pub fn sum_each<T: Term>(path: Path, vectors: &[Vec<f64>], z: &[f64]) -> Vec<f64> {
    let chunk = |&start: &usize| {
        let end = (start + CHUNK).min(z.len());
        let mut sums = vec![0.0; vectors.len()];
        for p in (start..end).step_by(PANEL) {
            let a = &z[p..(p + PANEL).min(end)];
            add_panel_sums::<T>(path, vectors.len(), |i| &vectors[i][p..p + a.len()], a, &mut sums);
        }
        sums
    };
    let starts: Vec<usize> = (0..z.len()).step_by(CHUNK).collect();
    let chunks = if z.len() > CHUNK {
        starts.par_iter().map(chunk).collect()
    } else {
        starts.iter().map(chunk).collect()
    };
    in_chunk_order(vectors.len(), chunks)
}

/// A vector z that `make(packed, start, panel)` computes a panel at a time from that panel of
/// every vector (`packed`: the n panels one after another, from coordinate `start`; z a
/// weighted sum of them, say), adding into `panel`, which comes zeroed as the blocks of
/// `weighted_sum` do; and Σ_k T(x_i[k], z[k]) for every vector x_i, each with the bits of
/// `sum_each::<T>(vectors, z)`. Each panel of the input is read from memory once, into a contiguous buffer that stays in
/// cache for both z and the sums (vectors whose allocations share an alignment would evict
/// each other's panels): an iteration that moves a point and then measures every vector
/// against it reads the input once, not twice.
pub fn make_and_sum_each<T: Term>(
    path: Path,
    vectors: &[Vec<f64>],
    make: impl Fn(&[f64], usize, &mut [f64]) + Sync,
) -> (Vec<f64>, Vec<f64>) {
    let (n, d) = (vectors.len(), vectors.first().map_or(0, Vec::len));
    let mut z = vec![0.0; d];
    let chunk = |packed: &mut Vec<f64>, (c, made): (usize, &mut [f64])| {
        let (mut sums, end) = (vec![0.0; n], c * CHUNK + made.len());
        for (q, panel) in made.chunks_mut(PANEL).enumerate() {
            let (p, len) = (c * CHUNK + q * PANEL, panel.len());
            packed.resize(n * len, 0.0);
            for (i, v) in vectors.iter().enumerate() {
                packed[i * len..(i + 1) * len].copy_from_slice(&v[p..p + len]);
                // The vector's next panel in this chunk, asked for now so that it is in cache
                // by its turn.
                prefetch(&v[(p + PANEL).min(end)..(p + 2 * PANEL).min(end)]);
            }
            make(packed, p, panel);
            add_panel_sums::<T>(path, n, |i| &packed[i * len..(i + 1) * len], panel, &mut sums);
        }
        sums
    };
    let chunks = if d > CHUNK {
        z.par_chunks_mut(CHUNK).enumerate().map_init(Vec::new, chunk).collect()
    } else {
        let mut packed = Vec::new();
        z.chunks_mut(CHUNK).enumerate().map(|c| chunk(&mut packed, c)).collect()
    };
    (z, in_chunk_order(n, chunks))
}

/// Asks the memory for `x`, a 64-byte stretch at a time (from `x`'s start, so the line holding
/// its last values may be left out when `x` is not aligned to one). A hint; it changes no result.
#[inline(always)]
fn prefetch(x: &[f64]) {
    #[cfg(target_arch = "x86_64")]
    for line in x.chunks(8) {
        // SAFETY: a prefetch only hints; the address is inside the slice.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(line.as_ptr().cast()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// Adds the panel sums of each of `n` rows (`rows(i)`, as long as `a`) against `a` into
/// `sums`, four rows per load of `a`.
fn add_panel_sums<'a, T: Term>(
    path: Path,
    n: usize,
    rows: impl Fn(usize) -> &'a [f64],
    a: &[f64],
    sums: &mut [f64],
) {
    let mut i = 0;
    while i + 4 <= n {
        let b = [0, 1, 2, 3].map(|w| rows(i + w));
        for (w, s) in panel::<T, 4>(path, a, b).into_iter().enumerate() {
            sums[i + w] += s;
        }
        i += 4;
    }
    for (i, sum) in sums.iter_mut().enumerate().skip(i) {
        *sum += panel::<T, 1>(path, a, [rows(i)])[0];
    }
}

/// The per-vector sums of every chunk, added in chunk order.
fn in_chunk_order(n: usize, chunks: Vec<Vec<f64>>) -> Vec<f64> {
    chunks.into_iter().fold(vec![0.0; n], |mut total, c| {
        total.iter_mut().zip(c).for_each(|(t, c)| *t += c);
        total
    })
}

/// Adds one panel's sums for every pair i ≤ j (i < j without the diagonal) of the `n` packed
/// rows of `len` coordinates into `sums` (n×n, row-major): two rows at a time against two
/// columns at a time.
fn panel_pairs<T: Term>(path: Path, packed: &[f64], n: usize, len: usize, diagonal: bool, sums: &mut [f64]) {
    let row = |i: usize| &packed[i * len..(i + 1) * len];
    let mut add = |i: usize, j: usize, s: f64| sums[i * n + j] += s;
    let one = |i: usize, j: usize| panel::<T, 1>(path, row(i), [row(j)])[0];
    let mut i = 0;
    while i + 2 <= n {
        if diagonal {
            add(i, i, one(i, i));
            add(i + 1, i + 1, one(i + 1, i + 1));
        }
        add(i, i + 1, one(i, i + 1));
        let mut j = i + 2;
        while j + 2 <= n {
            let s = tile::<T>(path, [row(i), row(i + 1)], [row(j), row(j + 1)]);
            for (r, c) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                add(i + r, j + c, s[r][c]);
            }
            j += 2;
        }
        if j < n {
            add(i, j, one(i, j));
            add(i + 1, j, one(i + 1, j));
        }
        i += 2;
    }
    if i < n && diagonal {
        add(i, i, one(i, i));
    }
}

/// How [`pairwise`] reads a coordinate: x, or (x·scale − center[k]).
#[derive(Clone, Copy)]
pub struct Pack<'a> {
    pub scale: f64,
    pub center: Option<&'a [f64]>,
}

impl Pack<'_> {
    pub const RAW: Pack<'static> = Pack { scale: 1.0, center: None };

    fn copy(&self, from: &[f64], start: usize, to: &mut [f64]) {
        match self.center {
            None if self.scale == 1.0 => to.copy_from_slice(from),
            None => to.iter_mut().zip(from).for_each(|(t, x)| *t = x * self.scale),
            Some(c) => {
                let c = &c[start..start + to.len()];
                to.iter_mut().zip(from).zip(c).for_each(|((t, x), c)| *t = x * self.scale - c)
            }
        }
    }
}

/// One chunk's sums for every pair: its panels packed one at a time, their sums added in order.
fn chunk_pairs<T: Term>(
    path: Path,
    vectors: &[Vec<f64>],
    pack: Pack,
    diagonal: bool,
    start: usize,
    end: usize,
    packed: &mut Vec<f64>,
) -> Vec<f64> {
    let n = vectors.len();
    let mut sums = vec![0.0; n * n];
    for p in (start..end).step_by(PANEL) {
        let len = PANEL.min(end - p);
        packed.resize(n * len, 0.0);
        for (i, v) in vectors.iter().enumerate() {
            pack.copy(&v[p..p + len], p, &mut packed[i * len..(i + 1) * len]);
        }
        panel_pairs::<T>(path, packed, n, len, diagonal, &mut sums);
    }
    sums
}

/// The symmetric matrix of Σ_k T(x_i[k], x_j[k]) over every pair, with the vectors read through
/// `pack`; the diagonal is computed when `diagonal` is set and left 0 otherwise. Entry (i, j)
/// has exactly the bits of `sum::<T>` of the packed vectors i and j.
pub fn pairwise<T: Term>(path: Path, vectors: &[Vec<f64>], pack: Pack, diagonal: bool) -> Vec<Vec<f64>> {
    let n = vectors.len();
    let d = vectors.first().map_or(0, Vec::len);
    let chunks: Vec<(usize, usize)> = (0..d).step_by(CHUNK).map(|s| (s, (s + CHUNK).min(d))).collect();
    let mut total = vec![0.0; n * n];
    for wave in chunks.chunks(WAVE) {
        let sums: Vec<Vec<f64>> = wave
            .par_iter()
            .map_init(Vec::new, |packed, &(s, e)| {
                chunk_pairs::<T>(path, vectors, pack, diagonal, s, e, packed)
            })
            .collect();
        for chunk in sums {
            total.iter_mut().zip(chunk).for_each(|(t, c)| *t += c);
        }
    }
    (0..n).map(|i| (0..n).map(|j| total[i.min(j) * n + i.max(j)]).collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(n: usize, d: usize, seed: u64) -> Vec<Vec<f64>> {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| (0..d).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect()).collect()
    }

    /// The documented order, written out one coordinate at a time.
    fn reference(a: &[f64], b: &[f64], accumulate: fn(f64, f64, f64) -> f64) -> f64 {
        let mut total = 0.0;
        for (ca, cb) in a.chunks(CHUNK).zip(b.chunks(CHUNK)) {
            let mut chunk = 0.0;
            for (pa, pb) in ca.chunks(PANEL).zip(cb.chunks(PANEL)) {
                let full = pa.len() - pa.len() % LANES;
                let mut lanes = [0.0; LANES];
                for k in 0..full {
                    lanes[k % LANES] = accumulate(lanes[k % LANES], pa[k], pb[k]);
                }
                let mut s = lanes_total(&lanes);
                for k in full..pa.len() {
                    s = accumulate(s, pa[k], pb[k]);
                }
                chunk += s;
            }
            total += chunk;
        }
        total
    }

    #[test]
    fn a_squared_distance_is_added_with_one_rounding() {
        // d = 1 + 2⁻²⁷: d² = 1 + 2⁻²⁶ + 2⁻⁵⁴, whose last term a rounded product drops. Fused,
        // s + d² for s = −(1 + 2⁻²⁶) is exactly 2⁻⁵⁴; unfused it would be 0.
        let d = 1.0 + 2f64.powi(-27);
        let s = -(1.0 + 2f64.powi(-26));
        assert_eq!(Dist2::accumulate(s, d, 0.0), 2f64.powi(-54));
        assert_eq!(Dot::accumulate(s, d, d), 0.0);
        // And on every path's lanes: each lane adds x², x², d² with x = 2⁻²⁷, so 2⁻⁵³ then
        // d². 1 + 2⁻²⁶ + 2⁻⁵³ is a tie that rounds to even (down) but for d²'s 2⁻⁵⁴, which
        // only a fused add sees: each lane is 1 + 2⁻²⁶ + 2⁻⁵², and the tree adds eight of them.
        let x = 2f64.powi(-27);
        let a: Vec<f64> = [x, x, d].iter().flat_map(|&v| [v; LANES]).collect();
        let lane = 1.0 + 2f64.powi(-26) + 2f64.powi(-52);
        for &path in Path::ALL.iter().filter(|p| p.available()) {
            let got = sum::<Dist2>(path, &a, &vec![0.0; a.len()]);
            assert_eq!(got, 8.0 * lane, "{path:?}");
        }
    }

    #[test]
    fn every_path_and_thread_count_follows_the_documented_order() {
        // Lengths that end mid-lane, mid-panel and mid-chunk, and more than one wave of chunks.
        for d in [1, 7, 8, 9, 300, CHUNK + 13, WAVE * CHUNK + 5 * PANEL + 3] {
            // An odd count leaves a row and a column outside the two-by-two tiles; an even one
            // does not.
            let v = random(if d % 2 == 0 { 8 } else { 7 }, d, d as u64);
            let dot = |i: usize, j: usize| reference(&v[i], &v[j], |s, a, b| s + a * b);
            let dist = |i: usize, j: usize| reference(&v[i], &v[j], |s, a, b| (a - b).mul_add(a - b, s));
            for &path in Path::ALL.iter().filter(|p| p.available()) {
                for threads in [1, 2, 3] {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    pool.install(|| {
                        let g = pairwise::<Dot>(path, &v, Pack::RAW, true);
                        let e = pairwise::<Dist2>(path, &v, Pack::RAW, false);
                        let to_last = sum_each::<Dist2>(path, &v, &v[v.len() - 1]);
                        for i in 0..v.len() {
                            for j in 0..v.len() {
                                let at = format!("d={d} {path:?} threads={threads} ({i},{j})");
                                assert_eq!(g[i][j].to_bits(), dot(i, j).to_bits(), "{at}");
                                assert_eq!(
                                    sum::<Dot>(path, &v[i], &v[j]).to_bits(),
                                    dot(i, j).to_bits(),
                                    "{at}"
                                );
                                let expect = if i == j { 0.0 } else { dist(i, j) };
                                assert_eq!(e[i][j].to_bits(), expect.to_bits(), "{at}");
                                if j == v.len() - 1 {
                                    assert_eq!(to_last[i].to_bits(), dist(i, j).to_bits(), "{at}");
                                }
                                assert_eq!(
                                    sum::<Dist2>(path, &v[i], &v[j]).to_bits(),
                                    dist(i, j).to_bits(),
                                    "{at}"
                                );
                            }
                        }
                    });
                }
            }
        }
    }

    #[test]
    fn packing_centres_and_scales() {
        let v = random(5, 1000, 3);
        let center: Vec<f64> = (0..1000).map(|k| k as f64 / 1000.0).collect();
        let g = pairwise::<Dot>(Path::detect(), &v, Pack { scale: 0.5, center: Some(&center) }, true);
        let shifted: Vec<Vec<f64>> =
            v.iter().map(|x| x.iter().zip(&center).map(|(x, c)| x * 0.5 - c).collect()).collect();
        for i in 0..5 {
            for j in 0..5 {
                assert_eq!(
                    g[i][j].to_bits(),
                    reference(&shifted[i], &shifted[j], |s, a, b| s + a * b).to_bits()
                );
            }
        }
    }
}
