//! The SGD epoch kernel of [`super::layout`] with a whole low-dimensional point (≤ 8 components)
//! in one AVX2 register.
//!
//! Same algorithm and random stream as the portable `process_chunk`: per due edge the attraction
//! and the first 7 negative samples share one batch of 8 lanes evaluated against the same head
//! position (further negatives follow in batches of 8).
//! The differences: a point is one masked load (5 floats, no padding of the stored layout), the
//! 8 squared distances of a batch are reduced together and their 8 curve coefficients come from
//! one vector evaluation of the pow approximation, instead of 8 scalar ones. Only rounding
//! differs from the portable kernel (fused multiply-adds, summation order).

#![cfg(target_arch = "x86_64")]

use super::layout::{ATTRACTION_REPEAT, EpochContext, GRADIENT_CLIP, NEGATIVE_BATCH};
use super::vectors::mix_seed;
use core::arch::x86_64::*;

/// Largest layout dimension this kernel handles.
pub const MAX_DIM: usize = 8;

/// One epoch for the head vertices of one chunk (`ctx.dim` ≤ [`MAX_DIM`]).
///
/// Each head draws its negative samples from its own generator (seeded by epoch and vertex).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn process_chunk(
    ctx: &EpochContext<'_>,
    chunk: usize,
    chunk_size: usize,
    emb_chunk: &mut [f32],
    sched_chunk: &mut [(f32, f32)],
) {
    let dim = ctx.dim;
    assert!((1..=MAX_DIM).contains(&dim));
    let graph = ctx.graph;
    let n = graph.n;
    assert!(ctx.snapshot.len() >= n * dim);
    let v0 = chunk * chunk_size;
    let edge_base = graph.row_offsets[v0];
    let lane_ids = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(dim as i32), lane_ids);
    let c = Constants::new(ctx, mask);
    for (local, head) in emb_chunk.chunks_exact_mut(dim).enumerate() {
        let i = v0 + local;
        let mut h = Head {
            i,
            // SAFETY: the mask limits the load to the `dim` floats of `head`.
            cur: unsafe { _mm256_maskload_ps(head.as_ptr(), mask) },
            e: graph.row_offsets[i],
            end: graph.row_offsets[i + 1],
            rng: fastrand::Rng::with_seed(mix_seed(ctx.seed, i as u64, 1)),
        };
        while h.advance(ctx, &c, sched_chunk, edge_base) {}
        // SAFETY: the mask limits the store to the `dim` floats of `head`.
        unsafe { _mm256_maskstore_ps(head.as_mut_ptr(), mask, h.cur) };
    }
}

/// A head vertex in the middle of its edge list.
struct Head {
    i: usize,
    cur: __m256,
    /// Next edge to look at, and the end of the row.
    e: usize,
    end: usize,
    rng: fastrand::Rng,
}

impl Head {
    /// Processes the next due edge; false once the row is done.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn advance(
        &mut self,
        ctx: &EpochContext<'_>,
        c: &Constants<'_>,
        sched_chunk: &mut [(f32, f32)],
        edge_base: usize,
    ) -> bool {
        let graph = ctx.graph;
        let n = graph.n;
        while self.e < self.end {
            let e = self.e;
            self.e += 1;
            let sched = &mut sched_chunk[e - edge_base];
            let every = ctx.epochs_per_sample[e];
            if every <= 0.0 || sched.0 > ctx.epoch {
                continue;
            }
            let (i, j) = (self.i, graph.columns[e] as usize);
            sched.0 += every;
            let n_neg = if ctx.neg_rate > 0.0 {
                ((ctx.epoch - sched.1) / (every / ctx.neg_rate)).max(0.0) as usize
            } else {
                0
            };
            // Lane 0: the attraction to j; lanes 1..: negative samples. All are evaluated at the
            // same head position and their clipped gradients summed (see the module docs).
            let mut picks = [i; NEGATIVE_BATCH];
            picks[0] = j;
            let first = n_neg.min(NEGATIVE_BATCH - 1);
            for pick in picks[1..=first].iter_mut() {
                *pick = self.rng.usize(0..n);
            }
            self.cur = batch_step(c, self.cur, i, &picks, first + 1, true);
            let mut remaining = n_neg - first;
            while remaining > 0 {
                let batch = remaining.min(NEGATIVE_BATCH);
                remaining -= batch;
                let mut picks = [i; NEGATIVE_BATCH];
                for pick in picks.iter_mut().take(batch) {
                    *pick = self.rng.usize(0..n);
                }
                self.cur = batch_step(c, self.cur, i, &picks, batch, false);
            }
            if ctx.neg_rate > 0.0 {
                sched.1 += n_neg as f32 * (every / ctx.neg_rate);
            }
            return true;
        }
        false
    }
}

/// Broadcast constants of one epoch.
struct Constants<'a> {
    snapshot: &'a [f32],
    dim: usize,
    mask: __m256i,
    lo: __m256,
    hi: __m256,
    alpha: __m256,
    a: __m256,
    b: __m256,
    /// Numerators of the coefficients: −2ab (attraction, times d^(2b)) and 2γb (repulsion).
    attract: __m256,
    repulse: __m256,
    ones: __m256,
}

impl<'a> Constants<'a> {
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn new(ctx: &EpochContext<'a>, mask: __m256i) -> Self {
        Constants {
            snapshot: ctx.snapshot,
            dim: ctx.dim,
            mask,
            lo: _mm256_set1_ps(-GRADIENT_CLIP),
            hi: _mm256_set1_ps(GRADIENT_CLIP),
            alpha: _mm256_set1_ps(ctx.alpha),
            a: _mm256_set1_ps(ctx.a),
            b: _mm256_set1_ps(ctx.b),
            attract: _mm256_set1_ps(-2.0 * ctx.a * ctx.b),
            repulse: _mm256_set1_ps(2.0 * ctx.gamma * ctx.b),
            ones: _mm256_set1_ps(1.0),
        }
    }
}

/// One SGD step of head `i` at `cur` against `picks[..count]`; with `attraction`, lane 0 is the
/// edge's other end (pulled in, weight `ATTRACTION_REPEAT`) and the rest are negative samples.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn batch_step(
    c: &Constants<'_>,
    cur: __m256,
    i: usize,
    picks: &[usize; NEGATIVE_BATCH],
    count: usize,
    attraction: bool,
) -> __m256 {
    let n = c.snapshot.len() / c.dim;
    let mut diffs = [_mm256_setzero_ps(); NEGATIVE_BATCH];
    let mut squares = [_mm256_setzero_ps(); NEGATIVE_BATCH];
    for s in 0..NEGATIVE_BATCH {
        assert!(picks[s] < n);
        // SAFETY: picks[s] < n and the snapshot holds n rows of `dim` floats (mask ≤ dim lanes).
        let o = unsafe { _mm256_maskload_ps(c.snapshot.as_ptr().add(picks[s] * c.dim), c.mask) };
        diffs[s] = _mm256_sub_ps(cur, o);
        squares[s] = _mm256_mul_ps(diffs[s], diffs[s]);
    }
    let d2 = hsum8(&squares);
    let d2b = pow_v(_mm256_max_ps(d2, _mm256_set1_ps(f32::MIN_POSITIVE)), c.b);
    let common = _mm256_fmadd_ps(c.a, d2b, c.ones);
    // Attraction lane: −2ab·d^(2b) / (d²·common); repulsion: 2γb / ((0.001 + d²)·common).
    let lane0 = _mm256_castsi256_ps(_mm256_setr_epi32(-1, 0, 0, 0, 0, 0, 0, 0));
    let lane0 = if attraction {
        lane0
    } else {
        _mm256_setzero_ps()
    };
    let numerator = _mm256_blendv_ps(c.repulse, _mm256_mul_ps(c.attract, d2b), lane0);
    let offset = _mm256_blendv_ps(_mm256_set1_ps(0.001), _mm256_setzero_ps(), lane0);
    let coeff = _mm256_div_ps(numerator, _mm256_mul_ps(_mm256_add_ps(offset, d2), common));
    // Valid lanes: inside the batch, not the head itself, at a positive distance.
    let mut valid = [0i32; NEGATIVE_BATCH];
    for s in 0..count {
        valid[s] = if picks[s] != i { -1 } else { 0 };
    }
    // SAFETY: reads 8 i32 from an 8-element array.
    let valid = unsafe { _mm256_loadu_si256(valid.as_ptr().cast()) };
    let positive = _mm256_cmp_ps::<_CMP_GT_OQ>(d2, _mm256_setzero_ps());
    let keep = _mm256_and_ps(_mm256_castsi256_ps(valid), positive);
    let mut coeffs = [0.0f32; NEGATIVE_BATCH];
    // SAFETY: writes 8 floats into an 8-element array.
    unsafe { _mm256_storeu_ps(coeffs.as_mut_ptr(), _mm256_and_ps(coeff, keep)) };
    let mut step = _mm256_setzero_ps();
    for s in 0..count {
        let g = clip(
            _mm256_mul_ps(_mm256_set1_ps(coeffs[s]), diffs[s]),
            c.lo,
            c.hi,
        );
        step = if s == 0 && attraction {
            _mm256_fmadd_ps(g, _mm256_set1_ps(ATTRACTION_REPEAT), step)
        } else {
            _mm256_add_ps(step, g)
        };
    }
    _mm256_fmadd_ps(step, c.alpha, cur)
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn clip(v: __m256, lo: __m256, hi: __m256) -> __m256 {
    _mm256_min_ps(_mm256_max_ps(v, lo), hi)
}

/// Lane s of the result = sum of the 8 lanes of `v[s]`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum8(v: &[__m256; 8]) -> __m256 {
    let t0 = _mm256_hadd_ps(v[0], v[1]);
    let t1 = _mm256_hadd_ps(v[2], v[3]);
    let t2 = _mm256_hadd_ps(v[4], v[5]);
    let t3 = _mm256_hadd_ps(v[6], v[7]);
    let u0 = _mm256_hadd_ps(t0, t1);
    let u1 = _mm256_hadd_ps(t2, t3);
    let lo = _mm256_permute2f128_ps::<0x20>(u0, u1);
    let hi = _mm256_permute2f128_ps::<0x31>(u0, u1);
    _mm256_add_ps(lo, hi)
}

/// x^p per lane for positive x: the vector form of `layout::fast_pow` (same polynomials).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn pow_v(x: __m256, p: __m256) -> __m256 {
    // log2(x): exponent plus a degree-5 polynomial of the mantissa − 1.5.
    let bits = _mm256_castps_si256(x);
    let exponent = _mm256_sub_epi32(
        _mm256_and_si256(_mm256_srli_epi32::<23>(bits), _mm256_set1_epi32(0xff)),
        _mm256_set1_epi32(127),
    );
    let mantissa = _mm256_or_si256(
        _mm256_and_si256(bits, _mm256_set1_epi32(0x007f_ffff)),
        _mm256_set1_epi32(0x3f80_0000),
    );
    let m = _mm256_sub_ps(_mm256_castsi256_ps(mantissa), _mm256_set1_ps(1.5));
    let mut poly = _mm256_set1_ps(0.043_004_96);
    for c in [
        -0.079_976_21,
        0.142_005_48,
        -0.319_757_7,
        0.961_803_4,
        0.584_950_76,
    ] {
        poly = _mm256_fmadd_ps(poly, m, _mm256_set1_ps(c));
    }
    let log2 = _mm256_add_ps(_mm256_cvtepi32_ps(exponent), poly);
    // 2^y: floor into the exponent bits, degree-4 polynomial of the fraction − 0.5.
    let y = _mm256_min_ps(
        _mm256_max_ps(_mm256_mul_ps(p, log2), _mm256_set1_ps(-125.0)),
        _mm256_set1_ps(125.0),
    );
    let whole = _mm256_floor_ps(y);
    let f = _mm256_sub_ps(_mm256_sub_ps(y, whole), _mm256_set1_ps(0.5));
    let mut poly = _mm256_set1_ps(0.013_670_31);
    for c in [
        0.079_085_6,
        0.339_727_3,
        0.980_221_2,
        std::f32::consts::SQRT_2,
    ] {
        poly = _mm256_fmadd_ps(poly, f, _mm256_set1_ps(c));
    }
    let scale = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(whole),
        _mm256_set1_epi32(127),
    ));
    _mm256_mul_ps(poly, _mm256_castsi256_ps(scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_pow_matches_scalar_pow() {
        if !(std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")) {
            return;
        }
        let xs = [1e-6f32, 0.01, 0.3, 1.0, 1.7, 12.0, 400.0, 9e4];
        for &p in &[0.7915f32, -0.2085, 1.5] {
            // SAFETY: features checked above.
            let got = unsafe {
                let v = pow_v(_mm256_loadu_ps(xs.as_ptr()), _mm256_set1_ps(p));
                let mut out = [0.0f32; 8];
                _mm256_storeu_ps(out.as_mut_ptr(), v);
                out
            };
            for (&x, &g) in xs.iter().zip(&got) {
                let exact = x.powf(p);
                assert!(
                    ((g - exact) / exact).abs() < 1e-4,
                    "{x}^{p}: {g} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn hsum8_sums_each_vector() {
        if !std::is_x86_feature_detected!("avx2") {
            return;
        }
        // SAFETY: feature checked above.
        unsafe {
            let v: [__m256; 8] = std::array::from_fn(|s| _mm256_set1_ps(s as f32 + 1.0));
            let mut out = [0.0f32; 8];
            _mm256_storeu_ps(out.as_mut_ptr(), hsum8(&v));
            for (s, &x) in out.iter().enumerate() {
                assert_eq!(x, 8.0 * (s as f32 + 1.0));
            }
        }
    }
}
