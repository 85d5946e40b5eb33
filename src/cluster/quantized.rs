//! Int8 copies of the embedding rows and exact integer dot products on them.
//!
//! The kNN graph's NN-descent spends almost all of its time in 1024-d dot products between
//! candidate pairs. With one signed byte per component (scaled per row so the largest magnitude
//! maps to 127) a row is 4× smaller and, on CPUs with AVX-512 VNNI, one `vpdpbusd` multiplies
//! and sums 64 byte pairs. The approximate cosine is only used to rank candidates; the final k
//! distances are recomputed in `f32`.
//!
//! `vpdpbusd` multiplies *unsigned* by signed bytes. The left operand `a` is therefore offset by
//! 128 (flipping its sign bit does exactly that) and the excess `128 · Σ b` is subtracted again:
//! Σ (a + 128)·b − 128·Σ b = Σ a·b. Integer sums are exact, so every kernel (AVX-512 VNNI, AVX2,
//! portable) returns the same value and results do not depend on the CPU.
//!
//! Public API: [`dot_i8`] (exact dot of two `i8` slices, any length, runtime-dispatched) and
//! [`I8Rows`] (a quantized matrix with per-row scale and sum, and batched cosine distances).

use rayon::prelude::*;

/// Row stride is rounded up to this many bytes (zero padding), so kernels need no tail.
const ROW_ALIGN: usize = 64;

/// Exact Σ a[i]·b[i] over two equal-length `i8` slices (i32 accumulation: exact for lengths up
/// to 65,000, far beyond any embedding).
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    assert_eq!(a.len(), b.len(), "dot_i8 of unequal lengths");
    match Kernel::detect() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: detect() checked the CPU features.
        Kernel::Avx512Vnni => unsafe { x86::dot_vnni(a, b) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Kernel::Avx2 => unsafe { x86::dot_avx2(a, b) },
        _ => dot_portable(a, b),
    }
}

#[inline(always)]
fn dot_portable(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum()
}

/// The instruction set a batch of int8 dot products runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// AVX-512 F+BW+VNNI (`vpdpbusd` on 64 bytes).
    Avx512Vnni,
    /// AVX2 (sign-extend to i16, `vpmaddwd`).
    Avx2,
    /// Plain Rust (any target).
    Portable,
}

impl Kernel {
    /// The fastest kernel this CPU supports.
    pub fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vnni")
            {
                return Kernel::Avx512Vnni;
            }
            if std::is_x86_feature_detected!("avx2") {
                return Kernel::Avx2;
            }
        }
        Kernel::Portable
    }

    /// Whether this CPU can run the kernel.
    pub fn is_supported(self) -> bool {
        match self {
            Kernel::Avx512Vnni => Kernel::detect() == Kernel::Avx512Vnni,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx2 => false,
            Kernel::Portable => true,
        }
    }
}

/// Row-major int8 copy of unit-length `f32` rows: row i ≈ `scale[i] · data[i]`.
pub struct I8Rows {
    pub dim: usize,
    /// Bytes per row (≥ dim, multiple of 64, zero padded).
    pub stride: usize,
    data: Vec<i8>,
    scales: Vec<f32>,
    /// Σ of each row's bytes (the correction term of the unsigned×signed product).
    sums: Vec<i32>,
    kernel: Kernel,
}

impl I8Rows {
    /// Quantizes n × dim `f32` rows, each with its own scale (max |x| → 127).
    pub fn quantize(data: &[f32], dim: usize) -> I8Rows {
        Self::quantize_with(data, dim, Kernel::detect())
    }

    /// As [`I8Rows::quantize`] with a chosen kernel (tests run every kernel this CPU has); a
    /// kernel the CPU cannot run is replaced by the portable one.
    pub fn quantize_with(data: &[f32], dim: usize, kernel: Kernel) -> I8Rows {
        let kernel = if kernel.is_supported() {
            kernel
        } else {
            Kernel::Portable
        };
        let n = data.len() / dim.max(1);
        let stride = dim.div_ceil(ROW_ALIGN).max(1) * ROW_ALIGN;
        let mut bytes = vec![0i8; n * stride];
        let mut scales = vec![0.0f32; n];
        let mut sums = vec![0i32; n];
        bytes
            .par_chunks_mut(stride)
            .zip(scales.par_iter_mut())
            .zip(sums.par_iter_mut())
            .enumerate()
            .for_each(|(i, ((out, scale), sum))| {
                let row = &data[i * dim..(i + 1) * dim];
                let max = row.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
                let inv = if max > 0.0 { 127.0 / max } else { 0.0 };
                let mut s = 0i32;
                for (o, &x) in out.iter_mut().zip(row) {
                    let q = round_to_i8(x * inv);
                    *o = q;
                    s += i32::from(q);
                }
                *scale = if max > 0.0 { max / 127.0 } else { 0.0 };
                *sum = s;
            });
        I8Rows {
            dim,
            stride,
            data: bytes,
            scales,
            sums,
            kernel,
        }
    }

    pub fn len(&self) -> usize {
        self.scales.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }

    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Row i's bytes including the zero padding.
    pub fn row(&self, i: usize) -> &[i8] {
        &self.data[i * self.stride..(i + 1) * self.stride]
    }

    /// Approximate cosine distance 1 − ⟨x_p, x_q⟩ for every q in `qs`, written to `out`.
    pub fn distances(&self, p: usize, qs: &[u32], out: &mut [f32]) {
        self.raw_dots(self.row(p), qs, out);
        let sp = self.scales[p];
        for (o, &q) in out.iter_mut().zip(qs) {
            *o = (1.0 - sp * self.scales[q as usize] * *o).max(0.0);
        }
    }

    /// Integer dots of a padded query row `a` (length `stride`) with rows `qs`, as f32 (the
    /// integers are exact; the conversion is too up to 2^24, i.e. 127² · 1040 dims).
    pub fn raw_dots(&self, a: &[i8], qs: &[u32], out: &mut [f32]) {
        assert_eq!(a.len(), self.stride);
        assert!(out.len() >= qs.len());
        match self.kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the kernel was detected on (or chosen by tests for) this CPU.
            Kernel::Avx512Vnni => unsafe { x86::raw_dots_vnni(self, a, qs, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Kernel::Avx2 => unsafe { x86::raw_dots_avx2(self, a, qs, out) },
            _ => raw_dots_generic(self, a, qs, out),
        }
    }

    /// Quantizes an arbitrary vector to this matrix's padded layout (max |x| → 127); returns the
    /// bytes and the scale.
    pub fn quantize_query(&self, v: &[f32]) -> (Vec<i8>, f32) {
        let mut out = vec![0i8; self.stride];
        let max = v.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
        let inv = if max > 0.0 { 127.0 / max } else { 0.0 };
        for (o, &x) in out.iter_mut().zip(v) {
            *o = round_to_i8(x * inv);
        }
        (out, max / 127.0)
    }

    pub fn scale(&self, i: usize) -> f32 {
        self.scales[i]
    }
}

/// Rounds half away from zero and saturates to ±127 (`f32::round` is a libm call on x86-64).
#[inline(always)]
fn round_to_i8(v: f32) -> i8 {
    ((v + 0.5f32.copysign(v)) as i32).clamp(-127, 127) as i8
}

#[inline(always)]
fn raw_dots_generic(rows: &I8Rows, a: &[i8], qs: &[u32], out: &mut [f32]) {
    for (o, &q) in out.iter_mut().zip(qs) {
        *o = dot_portable(a, rows.row(q as usize)) as f32;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{I8Rows, ROW_ALIGN, dot_portable, raw_dots_generic};
    use core::arch::x86_64::*;

    #[target_feature(enable = "avx2")]
    pub unsafe fn dot_avx2(a: &[i8], b: &[i8]) -> i32 {
        dot_portable(a, b)
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn raw_dots_avx2(rows: &I8Rows, a: &[i8], qs: &[u32], out: &mut [f32]) {
        raw_dots_generic(rows, a, qs, out)
    }

    /// Any length: full 64-byte blocks, then a masked tail (masked-off bytes load as zero).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn dot_vnni(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len().min(b.len());
        let flip = _mm512_set1_epi8(-128);
        let ones = _mm512_set1_epi8(1);
        let (mut acc, mut sum) = (_mm512_setzero_si512(), _mm512_setzero_si512());
        let mut i = 0;
        while i < n {
            let left = n - i;
            let mask: u64 = if left >= 64 {
                u64::MAX
            } else {
                (1u64 << left) - 1
            };
            // SAFETY: the mask keeps the loads inside both slices.
            let (va, vb) = unsafe {
                (
                    _mm512_maskz_loadu_epi8(mask, a.as_ptr().add(i)),
                    _mm512_maskz_loadu_epi8(mask, b.as_ptr().add(i)),
                )
            };
            acc = _mm512_dpbusd_epi32(acc, _mm512_xor_si512(va, flip), vb);
            sum = _mm512_dpbusd_epi32(sum, ones, vb);
            i += 64;
        }
        _mm512_reduce_add_epi32(acc) - 128 * _mm512_reduce_add_epi32(sum)
    }

    /// Four rows per pass share each load of the (offset) query block.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn raw_dots_vnni(rows: &I8Rows, a: &[i8], qs: &[u32], out: &mut [f32]) {
        let stride = rows.stride;
        debug_assert_eq!(stride % ROW_ALIGN, 0);
        let flip = _mm512_set1_epi8(-128);
        let base = rows.data.as_ptr();
        let ap = a.as_ptr();
        let mut groups = qs.chunks_exact(4);
        let mut slot = 0;
        for g in &mut groups {
            // SAFETY: every q < n, so each row lies inside `rows.data`; offsets < stride.
            unsafe {
                let r = [
                    base.add(g[0] as usize * stride),
                    base.add(g[1] as usize * stride),
                    base.add(g[2] as usize * stride),
                    base.add(g[3] as usize * stride),
                ];
                let mut acc = [_mm512_setzero_si512(); 4];
                let mut off = 0;
                while off < stride {
                    let va = _mm512_xor_si512(_mm512_loadu_si512(ap.add(off).cast()), flip);
                    for t in 0..4 {
                        let vb = _mm512_loadu_si512(r[t].add(off).cast());
                        acc[t] = _mm512_dpbusd_epi32(acc[t], va, vb);
                    }
                    off += ROW_ALIGN;
                }
                for t in 0..4 {
                    let s = _mm512_reduce_add_epi32(acc[t]) - 128 * rows.sums[g[t] as usize];
                    out[slot + t] = s as f32;
                }
            }
            slot += 4;
        }
        for &q in groups.remainder() {
            // SAFETY: as above.
            unsafe {
                let row = base.add(q as usize * stride);
                let mut acc = _mm512_setzero_si512();
                let mut off = 0;
                while off < stride {
                    let va = _mm512_xor_si512(_mm512_loadu_si512(ap.add(off).cast()), flip);
                    let vb = _mm512_loadu_si512(row.add(off).cast());
                    acc = _mm512_dpbusd_epi32(acc, va, vb);
                    off += ROW_ALIGN;
                }
                out[slot] = (_mm512_reduce_add_epi32(acc) - 128 * rows.sums[q as usize]) as f32;
            }
            slot += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernels() -> Vec<Kernel> {
        [Kernel::Portable, Kernel::Avx2, Kernel::Avx512Vnni]
            .into_iter()
            .filter(|k| k.is_supported())
            .collect()
    }

    #[test]
    fn an_unsupported_kernel_falls_back_to_portable() {
        let rows = I8Rows::quantize_with(&[1.0, 0.0], 2, Kernel::Avx512Vnni);
        assert!(rows.kernel().is_supported());
        assert_eq!(rows.len(), 1);
    }

    #[test]
    fn dot_i8_is_exact_for_odd_lengths_and_extremes() {
        let mut rng = fastrand::Rng::with_seed(3);
        for len in [0usize, 1, 7, 63, 64, 65, 130, 385, 1024, 1030] {
            let a: Vec<i8> = (0..len).map(|_| rng.i8(..)).collect();
            let b: Vec<i8> = (0..len).map(|_| rng.i8(..)).collect();
            assert_eq!(dot_i8(&a, &b), dot_portable(&a, &b), "len {len}");
        }
        let a = vec![-128i8; 100];
        assert_eq!(dot_i8(&a, &a), 100 * 128 * 128);
        let b = vec![127i8; 100];
        assert_eq!(dot_i8(&a, &b), -100 * 128 * 127);
    }

    #[test]
    fn every_kernel_gives_the_same_distances_close_to_f32() {
        let mut rng = fastrand::Rng::with_seed(5);
        for dim in [5usize, 64, 100, 384, 1024] {
            let n = 23;
            let mut data: Vec<f32> = (0..n * dim).map(|_| rng.f32() - 0.5).collect();
            for row in data.chunks_exact_mut(dim) {
                super::super::vectors::normalize(row);
            }
            let qs: Vec<u32> = (0..n as u32).rev().collect();
            let mut reference: Option<Vec<f32>> = None;
            for kernel in kernels() {
                let rows = I8Rows::quantize_with(&data, dim, kernel);
                let mut out = vec![0.0f32; n];
                rows.distances(3, &qs, &mut out);
                for (&q, &d) in qs.iter().zip(&out) {
                    let exact = 1.0
                        - super::super::vectors::dot(
                            &data[3 * dim..4 * dim],
                            &data[q as usize * dim..(q as usize + 1) * dim],
                        );
                    assert!(
                        (d - exact.max(0.0)).abs() < 0.02,
                        "dim {dim} q {q}: {d} vs {exact}"
                    );
                }
                match &reference {
                    None => reference = Some(out),
                    Some(r) => assert_eq!(r, &out, "kernel {kernel:?} dim {dim}"),
                }
            }
        }
    }
}
