//! The input buffer: validation, normalization and the dot product every stage leans on.
//!
//! Embeddings arrive as one contiguous row-major `f32` buffer (n × dim). They are meant to be
//! L2-normalized so that cosine similarity is a plain dot product; slightly off rows are
//! renormalized here, rows that cannot be (NaN, infinite, all-zero) are rejected with their index.

use super::ClusterError;
use std::borrow::Cow;

/// How far a row's norm may drift from 1 before we copy the buffer and renormalize it.
const NORM_TOLERANCE: f32 = 1e-3;

/// Checks shape and values; returns the buffer itself when every row is already unit length,
/// otherwise a normalized copy.
pub fn validate_and_normalize(vectors: &[f32], dim: usize) -> Result<Cow<'_, [f32]>, ClusterError> {
    if dim == 0 {
        return Err(ClusterError::InvalidInput(
            "embedding dimension must be at least 1".into(),
        ));
    }
    if vectors.len() % dim != 0 {
        return Err(ClusterError::DimensionMismatch {
            len: vectors.len(),
            dim,
        });
    }
    let mut needs_copy = false;
    for (row_index, row) in vectors.chunks_exact(dim).enumerate() {
        let mut norm2 = 0.0f64;
        for &x in row {
            if !x.is_finite() {
                return Err(ClusterError::NonFiniteValue { row: row_index });
            }
            norm2 += f64::from(x) * f64::from(x);
        }
        if norm2 == 0.0 {
            return Err(ClusterError::ZeroVector { row: row_index });
        }
        if (norm2.sqrt() as f32 - 1.0).abs() > NORM_TOLERANCE {
            needs_copy = true;
        }
    }
    if !needs_copy {
        return Ok(Cow::Borrowed(vectors));
    }
    let mut owned = vectors.to_vec();
    for row in owned.chunks_exact_mut(dim) {
        normalize(row);
    }
    Ok(Cow::Owned(owned))
}

/// Scales a vector to unit length in place (no-op for the zero vector).
pub fn normalize(row: &mut [f32]) {
    let norm = dot(row, row).sqrt();
    if norm > 0.0 {
        let inv = 1.0 / norm;
        row.iter_mut().for_each(|x| *x *= inv);
    }
}

/// Dot product of two equal-length slices.
///
/// Whether this CPU runs the `#[target_feature(enable = "avx2,fma")]` copies of the hot loops.
pub fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// This is the hot loop of the kNN graph, PCA and k-means on raw vectors. The default x86-64
/// target only guarantees SSE2, so a copy compiled for AVX2+FMA is picked at run time when the
/// CPU has it (2× wider lanes, fused multiply-add); the result differs only in rounding.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    {
        if a.len() >= 32 && has_avx2_fma() {
            // SAFETY: the CPU supports the features the function was compiled for.
            return unsafe { dot_avx2_fma(a, b) };
        }
    }
    dot_lanes::<false>(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2_fma(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes::<true>(a, b)
}

/// Sixteen independent accumulators let the compiler keep whole SIMD registers busy (float
/// addition is not reassociated for us).
#[inline(always)]
fn dot_lanes<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let mut a_chunks = a.chunks_exact(LANES);
    let mut b_chunks = b.chunks_exact(LANES);
    for (ca, cb) in (&mut a_chunks).zip(&mut b_chunks) {
        for i in 0..LANES {
            acc[i] = if FMA {
                ca[i].mul_add(cb[i], acc[i])
            } else {
                acc[i] + ca[i] * cb[i]
            };
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in a_chunks.remainder().iter().zip(b_chunks.remainder()) {
        tail += x * y;
    }
    let mut sum = 0.0f32;
    for half in [0, 8] {
        let mut part = 0.0f32;
        for v in &acc[half..half + 8] {
            part += v;
        }
        sum += part;
    }
    sum + tail
}

/// Squared Euclidean distance for the small reduced vectors (2–10 dims).
#[inline(always)]
pub fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        let d = x - y;
        s += d * d;
    }
    s
}

/// Mixes a seed with stream numbers (epoch, chunk, …) so each stream gets an independent,
/// reproducible random sequence (SplitMix64 finalizer).
pub fn mix_seed(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed
        .wrapping_add(a.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(b.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Standard normal sample (Box–Muller; one of the pair is discarded for simplicity).
pub fn gaussian(rng: &mut fastrand::Rng) -> f32 {
    let u1 = rng.f64().max(f64::MIN_POSITIVE);
    let u2 = rng.f64();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive_sum_for_odd_lengths() {
        let mut rng = fastrand::Rng::with_seed(1);
        for len in [1usize, 7, 16, 33, 100, 385] {
            let a: Vec<f32> = (0..len).map(|_| rng.f32() - 0.5).collect();
            let b: Vec<f32> = (0..len).map(|_| rng.f32() - 0.5).collect();
            let naive: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x * y)).sum();
            assert!((f64::from(dot(&a, &b)) - naive).abs() < 1e-4, "len {len}");
        }
    }

    #[test]
    fn rows_off_unit_length_are_normalized_and_bad_rows_rejected() {
        let v = [3.0f32, 4.0, 0.0, 1.0];
        let out = validate_and_normalize(&v, 2).unwrap();
        assert!(matches!(out, Cow::Owned(_)));
        assert!((out[0] - 0.6).abs() < 1e-6 && (out[1] - 0.8).abs() < 1e-6);
        let unit = [1.0f32, 0.0];
        assert!(matches!(
            validate_and_normalize(&unit, 2).unwrap(),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            validate_and_normalize(&[1.0, f32::NAN], 2),
            Err(ClusterError::NonFiniteValue { row: 0 })
        ));
        assert!(matches!(
            validate_and_normalize(&[1.0, 0.0, 0.0, 0.0], 2),
            Err(ClusterError::ZeroVector { row: 1 })
        ));
        assert!(matches!(
            validate_and_normalize(&[1.0, 0.0, 0.0], 2),
            Err(ClusterError::DimensionMismatch { len: 3, dim: 2 })
        ));
    }
}
