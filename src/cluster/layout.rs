//! UMAP's layout optimization (umap-learn's `optimize_layout_euclidean`): stochastic gradient
//! descent where each edge is sampled in proportion to its weight, every positive sample pulls
//! its endpoints together under the low-dimensional curve 1 / (1 + a·d^(2b)), and
//! `negative_sample_rate` random points push the head away; gradients are clipped at 4 and the
//! learning rate decays linearly to zero.
//!
//! # Why the earlier Rust prototype left 6.8 % noise (Python: 0.7 %)
//! The prototype used `umap-rs` 0.4.5, whose Euclidean SGD divides both gradients by
//! `a·d^(2b)·d² + 1` instead of umap-learn's `a·d^(2b) + 1` (an extra factor d² in
//! `optimize_layout_euclidean.rs`). That is the force balance of a different curve: beyond
//! d² ≈ 1, where clusters form, attraction and repulsion both collapse, so rim points are not
//! pulled in and end up in a sparse halo that HDBSCAN calls noise. Measured with this kernel on
//! the benchmark data (50k × 384, 100 epochs): umap-learn's denominator gives 1.1 % noise and
//! clean ARI 1.000; umap-rs's denominator gives 10.2 % and 0.743; with its 2 negative samples as
//! well, 3.1 % and 0.963 (close to the prototype's 6.8 % / 0.958). The kernel below is
//! umap-learn's.
//!
//! # Two kernels
//! Up to [`SEQUENTIAL_MAX_POINTS`] the layout is umap-learn's kernel on one thread
//! ([`optimize_layout_sequential`]): each sampled edge moves both ends. Measured against
//! umap-learn on real intent embeddings, the parallel kernel below (head-only updates, attraction
//! doubled) made clusters less compact and lost 0.12–0.17 ARI over clustered points; small
//! inputs are where the map has few points per topic and this matters most, and where one
//! thread is fast enough (500 epochs on 10k points ≈ seconds). Larger inputs keep the parallel
//! kernel (measured on 50k generated points: clean ARI 1.000).
//!
//! # Deterministic parallelism
//! umap-learn runs Hogwild (racy) SGD, so two runs differ. Here each epoch reads the other
//! endpoints from a snapshot of the previous epoch and only writes the head point, so threads
//! never touch the same memory; vertices are processed in fixed chunks and every head draws its
//! negative samples from a generator seeded by (seed, epoch, vertex). Same seed → bit-identical
//! layout, whatever the thread count. Because the tail is not moved (umap-learn's `move_other`), and every edge appears in
//! both directions, the attraction is applied twice per sample to keep umap-learn's 2 : 5 ratio
//! of attraction to repulsion per vertex.

use super::fuzzy::FuzzyGraph;
use super::vectors::{has_avx2_fma, mix_seed, squared_distance};
use rayon::prelude::*;

/// Vertices per work unit. Fixed (not derived from the thread count) so results are identical
/// on any machine.
const CHUNK: usize = 256;
pub(super) const GRADIENT_CLIP: f32 = 4.0;
/// Attraction applied per positive sample: 2, one for each direction umap-learn moves.
pub(super) const ATTRACTION_REPEAT: f32 = 2.0;
/// Negative samples evaluated together (see `process_chunk`).
pub(super) const NEGATIVE_BATCH: usize = 8;

/// Parameters of one layout run.
#[derive(Clone, Debug)]
pub struct LayoutParams {
    pub n_epochs: usize,
    pub negative_sample_rate: usize,
    pub learning_rate: f32,
    pub repulsion_strength: f32,
    pub a: f32,
    pub b: f32,
    pub seed: u64,
}

/// Up to this many points the layout runs umap-learn's own sequential kernel
/// ([`optimize_layout_sequential`]); above it, the parallel kernel.
pub const SEQUENTIAL_MAX_POINTS: usize = 10_000;

/// Optimizes `embedding` (n × dim, row-major) in place; `progress` gets the share of epochs done.
pub fn optimize_layout(
    graph: &FuzzyGraph,
    embedding: &mut [f32],
    dim: usize,
    params: &LayoutParams,
    progress: &mut dyn FnMut(f32),
) {
    if graph.n <= SEQUENTIAL_MAX_POINTS {
        optimize_layout_sequential(graph, embedding, dim, params, progress)
    } else {
        optimize_layout_with(graph, embedding, dim, params, progress, has_avx2_fma())
    }
}

/// Per-edge schedule: epochs between positive samples (−1: never sampled) and the initial
/// (next positive, next negative) epochs.
fn edge_schedule(graph: &FuzzyGraph, params: &LayoutParams) -> (Vec<f32>, Vec<(f32, f32)>) {
    let max_weight = graph.weights.iter().fold(0.0f32, |m, &w| m.max(w));
    // Edges too weak to be sampled even once are dropped (as umap-learn does).
    let min_weight = max_weight / params.n_epochs as f32;
    let epochs_per_sample: Vec<f32> = graph
        .weights
        .iter()
        .map(|&w| {
            if w >= min_weight && w > 0.0 {
                max_weight / w
            } else {
                -1.0
            }
        })
        .collect();
    let neg_rate = params.negative_sample_rate as f32;
    let schedule = epochs_per_sample
        .iter()
        .map(|&e| {
            (
                e,
                if neg_rate > 0.0 {
                    e / neg_rate
                } else {
                    f32::INFINITY
                },
            )
        })
        .collect();
    (epochs_per_sample, schedule)
}

/// umap-learn's `optimize_layout_euclidean` step for step, on one thread: every sampled edge
/// moves both of its ends (`move_other`), and each update sees the positions left by the one
/// before. Measured on real intent embeddings (HWU64, 30 utterances per intent, e5-small;
/// umap-learn's own graph and start, HDBSCAN `min_cluster_size` 10): the parallel kernel, which
/// only moves the head and applies the attraction twice, reached ARI 0.45–0.50 over clustered
/// points against umap-learn's 0.62–0.64; this kernel 0.62. Reading other points from a
/// per-epoch snapshot cost nothing (0.624), so the loss is the head-only update.
/// Deterministic for a seed: one generator per (seed, epoch, head), as in the parallel kernel.
pub fn optimize_layout_sequential(
    graph: &FuzzyGraph,
    embedding: &mut [f32],
    dim: usize,
    params: &LayoutParams,
    progress: &mut dyn FnMut(f32),
) {
    let n = graph.n;
    if n == 0 || params.n_epochs == 0 {
        return;
    }
    let (epochs_per_sample, mut schedule) = edge_schedule(graph, params);
    let (a, b) = (params.a, params.b);
    let gamma = params.repulsion_strength;
    let neg_rate = params.negative_sample_rate as f32;
    let mut current = vec![0.0f32; dim];
    for epoch in 0..params.n_epochs {
        let alpha = params.learning_rate * (1.0 - epoch as f32 / params.n_epochs as f32);
        let epoch_f = epoch as f32;
        let seed = mix_seed(params.seed, epoch as u64, 0);
        for i in 0..n {
            let mut rng = fastrand::Rng::with_seed(mix_seed(seed, i as u64, 1));
            current.copy_from_slice(&embedding[i * dim..(i + 1) * dim]);
            for e in graph.row_offsets[i]..graph.row_offsets[i + 1] {
                let every = epochs_per_sample[e];
                let sched = &mut schedule[e];
                if every <= 0.0 || sched.0 > epoch_f {
                    continue;
                }
                let j = graph.columns[e] as usize;
                let other = &mut embedding[j * dim..(j + 1) * dim];
                let d2 = squared_distance(&current, other);
                let pull = if d2 > 0.0 {
                    let d2b = fast_pow(d2, b);
                    -2.0 * a * b * d2b / (d2 * (a * d2b + 1.0))
                } else {
                    0.0
                };
                for (c, o) in current.iter_mut().zip(other.iter_mut()) {
                    let g = clip(pull * (*c - *o)) * alpha;
                    *c += g;
                    *o -= g;
                }
                sched.0 += every;
                if neg_rate <= 0.0 {
                    continue;
                }
                let every_negative = every / neg_rate;
                let n_neg = ((epoch_f - sched.1) / every_negative).max(0.0) as usize;
                for _ in 0..n_neg {
                    let k = rng.usize(0..n);
                    if k == i {
                        continue;
                    }
                    let other = &embedding[k * dim..(k + 1) * dim];
                    let d2 = squared_distance(&current, other);
                    if d2 <= 0.0 {
                        continue;
                    }
                    let coeff = 2.0 * gamma * b / ((0.001 + d2) * (a * fast_pow(d2, b) + 1.0));
                    for (c, o) in current.iter_mut().zip(other) {
                        *c += clip(coeff * (*c - *o)) * alpha;
                    }
                }
                sched.1 += n_neg as f32 * every_negative;
            }
            embedding[i * dim..(i + 1) * dim].copy_from_slice(&current);
        }
        progress((epoch + 1) as f32 / params.n_epochs as f32);
    }
}

/// As [`optimize_layout`], with the SIMD kernels on or off (tests run both).
fn optimize_layout_with(
    graph: &FuzzyGraph,
    embedding: &mut [f32],
    dim: usize,
    params: &LayoutParams,
    progress: &mut dyn FnMut(f32),
    fast: bool,
) {
    let n = graph.n;
    if n == 0 || params.n_epochs == 0 {
        return;
    }
    let neg_rate = params.negative_sample_rate as f32;
    // Per edge: epoch of next positive sample, epoch of next negative sampling.
    let (epochs_per_sample, mut schedule) = edge_schedule(graph, params);

    let (a, b) = (params.a, params.b);
    let gamma = params.repulsion_strength;
    let mut snapshot = embedding.to_vec();
    for epoch in 0..params.n_epochs {
        snapshot.copy_from_slice(embedding);
        let alpha = params.learning_rate * (1.0 - epoch as f32 / params.n_epochs as f32);
        let epoch_f = epoch as f32;

        // Pair each vertex chunk with its edges' schedule (edges are stored by head vertex).
        let mut work = Vec::with_capacity(n.div_ceil(CHUNK));
        let mut emb_rest: &mut [f32] = embedding;
        let mut sched_rest: &mut [(f32, f32)] = &mut schedule;
        for chunk in 0..n.div_ceil(CHUNK) {
            let (v0, v1) = (chunk * CHUNK, ((chunk + 1) * CHUNK).min(n));
            let edges = graph.row_offsets[v1] - graph.row_offsets[v0];
            let (e, er) = std::mem::take(&mut emb_rest).split_at_mut((v1 - v0) * dim);
            let (s, sr) = std::mem::take(&mut sched_rest).split_at_mut(edges);
            emb_rest = er;
            sched_rest = sr;
            work.push((chunk, e, s));
        }
        let ctx = EpochContext {
            graph,
            snapshot: &snapshot,
            epochs_per_sample: &epochs_per_sample,
            dim,
            epoch: epoch_f,
            alpha,
            a,
            b,
            gamma,
            neg_rate,
            seed: mix_seed(params.seed, epoch as u64, 0),
        };
        work.into_par_iter()
            .for_each(|(chunk, emb_chunk, sched_chunk)| {
                if fast {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: has_avx2_fma() checked the CPU features.
                    unsafe {
                        if dim <= super::layout_simd::MAX_DIM {
                            super::layout_simd::process_chunk(
                                &ctx,
                                chunk,
                                CHUNK,
                                emb_chunk,
                                sched_chunk,
                            )
                        } else {
                            process_chunk_avx2(&ctx, chunk, emb_chunk, sched_chunk)
                        }
                    };
                } else {
                    process_chunk(&ctx, chunk, emb_chunk, sched_chunk);
                }
            });
        progress((epoch + 1) as f32 / params.n_epochs as f32);
    }
}

/// What every chunk of one epoch reads.
pub(super) struct EpochContext<'a> {
    pub graph: &'a FuzzyGraph,
    pub snapshot: &'a [f32],
    pub epochs_per_sample: &'a [f32],
    pub dim: usize,
    pub epoch: f32,
    pub alpha: f32,
    pub a: f32,
    pub b: f32,
    pub gamma: f32,
    pub neg_rate: f32,
    pub seed: u64,
}

/// The same kernel compiled for AVX2+FMA (hardware floor and fused multiply-add in the pow
/// approximation); chosen at run time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn process_chunk_avx2(
    ctx: &EpochContext<'_>,
    chunk: usize,
    emb: &mut [f32],
    sched: &mut [(f32, f32)],
) {
    process_chunk(ctx, chunk, emb, sched)
}

/// One epoch of SGD for the head vertices of one chunk.
#[inline(always)]
fn process_chunk(
    ctx: &EpochContext<'_>,
    chunk: usize,
    emb_chunk: &mut [f32],
    sched_chunk: &mut [(f32, f32)],
) {
    let EpochContext {
        graph,
        snapshot,
        epochs_per_sample,
        dim,
        epoch,
        alpha,
        a,
        b,
        gamma,
        neg_rate,
        seed,
    } = *ctx;
    let n = graph.n;
    let v0 = chunk * CHUNK;
    let edge_base = graph.row_offsets[v0];
    let mut current = vec![0.0f32; dim];
    for (local, head) in emb_chunk.chunks_exact_mut(dim).enumerate() {
        let i = v0 + local;
        // One generator per head and epoch (the SIMD kernel interleaves heads).
        let mut rng = fastrand::Rng::with_seed(mix_seed(seed, i as u64, 1));
        let cur = &mut current[..];
        cur.copy_from_slice(head);
        for e in graph.row_offsets[i]..graph.row_offsets[i + 1] {
            let sched = &mut sched_chunk[e - edge_base];
            let every = epochs_per_sample[e];
            if every <= 0.0 || sched.0 > epoch {
                continue;
            }
            let j = graph.columns[e] as usize;
            let other = &snapshot[j * dim..(j + 1) * dim];
            let d2 = squared_distance(cur, other);
            let pull = if d2 > 0.0 {
                let d2b = fast_pow(d2, b);
                -2.0 * a * b * d2b / (d2 * (a * d2b + 1.0))
            } else {
                0.0
            };
            sched.0 += every;
            let every_negative = every / neg_rate;
            let n_neg = if neg_rate > 0.0 {
                ((epoch - sched.1) / every_negative).max(0.0) as usize
            } else {
                0
            };
            // The attraction and the negative samples of one positive sample are evaluated
            // against the same head position and their (individually clipped) gradients summed.
            // Applying them one by one made every sample wait for the previous update (a long
            // dependency chain); independent samples let the CPU overlap them. The first batch
            // shares its 8 slots with the attraction (as the SIMD kernel's lane 0).
            let mut remaining = n_neg;
            let mut first = true;
            while first || remaining > 0 {
                let batch = remaining.min(NEGATIVE_BATCH - usize::from(first));
                remaining -= batch;
                // Unused slots point at the head itself and are masked out below, so the
                // coefficient loop has a fixed length and no branches (it vectorizes).
                let mut picks = [i; NEGATIVE_BATCH];
                for pick in picks.iter_mut().take(batch) {
                    *pick = rng.usize(0..n);
                }
                let mut d2s = [0.0f32; NEGATIVE_BATCH];
                for (d2, &k) in d2s.iter_mut().zip(&picks) {
                    *d2 = squared_distance(cur, &snapshot[k * dim..(k + 1) * dim]);
                }
                let mut coeffs = [0.0f32; NEGATIVE_BATCH];
                for s in 0..NEGATIVE_BATCH {
                    let d2 = d2s[s];
                    let d2b = fast_pow(d2.max(f32::MIN_POSITIVE), b);
                    let coeff = 2.0 * gamma * b / ((0.001 + d2) * (a * d2b + 1.0));
                    let valid = picks[s] != i && d2 > 0.0;
                    coeffs[s] = if valid { coeff } else { 0.0 };
                }
                for (d, c) in cur.iter_mut().enumerate() {
                    let mut step = 0.0f32;
                    if first {
                        step += ATTRACTION_REPEAT * clip(pull * (*c - other[d]));
                    }
                    for s in 0..batch {
                        let o = snapshot[picks[s] * dim + d];
                        step += clip(coeffs[s] * (*c - o));
                    }
                    *c += step * alpha;
                }
                first = false;
            }
            if neg_rate > 0.0 {
                sched.1 += n_neg as f32 * every_negative;
            }
        }
        head.copy_from_slice(cur);
    }
}

#[inline(always)]
fn clip(v: f32) -> f32 {
    v.clamp(-GRADIENT_CLIP, GRADIENT_CLIP)
}

/// x^p for x > 0 via 2^(p·log2 x) with polynomial log2/exp2 (relative error ≈ 2e-5).
/// `powf` was the largest single cost of the SGD; this precision is far below the SGD's noise.
#[inline(always)]
pub fn fast_pow(x: f32, p: f32) -> f32 {
    fast_exp2(p * fast_log2(x))
}

/// log2 for positive normal floats: exponent plus a degree-5 fit of log2 on the mantissa.
#[inline(always)]
fn fast_log2(x: f32) -> f32 {
    let bits = x.max(f32::MIN_POSITIVE).to_bits();
    let exponent = ((bits >> 23) & 0xff) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000) - 1.5; // mantissa − 1.5
    let poly = 0.584_950_76
        + m * (0.961_803_4
            + m * (-0.319_757_7 + m * (0.142_005_48 + m * (-0.079_976_21 + m * 0.043_004_96))));
    exponent as f32 + poly
}

/// 2^y: integer part into the exponent bits, degree-4 fit of 2^f on the fraction.
#[inline(always)]
fn fast_exp2(y: f32) -> f32 {
    let y = y.clamp(-125.0, 125.0);
    // Truncation of a positive number is its floor (avoids a libm call without SSE4.1).
    let whole = (y + 126.0) as i32 - 126;
    let f = y - whole as f32 - 0.5; // fraction − 0.5
    let poly = std::f32::consts::SQRT_2
        + f * (0.980_221_2 + f * (0.339_727_3 + f * (0.079_085_6 + f * 0.013_670_31)));
    poly * f32::from_bits(((whole + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_pow_is_close_to_powf() {
        for &x in &[1e-6f32, 0.01, 0.3, 1.0, 1.7, 12.0, 400.0, 9e4] {
            for &p in &[0.7915f32, -0.2085, 1.5] {
                let exact = x.powf(p);
                let approx = fast_pow(x, p);
                assert!(
                    ((approx - exact) / exact).abs() < 1e-4,
                    "{x}^{p}: {approx} vs {exact}"
                );
                assert!(approx.is_finite() && approx > 0.0);
            }
        }
    }

    /// Three cliques (weakly linked) from a random start: both kernels, in 2 and 5 dims, pull
    /// each clique together and keep the cliques apart; same seed → identical layout.
    #[test]
    fn both_kernels_separate_cliques_and_are_deterministic() {
        let (size, blocks) = (25, 3);
        let n = size * blocks;
        let mut graph = FuzzyGraph {
            n,
            row_offsets: vec![0],
            columns: Vec::new(),
            weights: Vec::new(),
        };
        for i in 0..n {
            let block = i / size;
            for j in 0..n {
                let w = if j / size == block { 1.0 } else { 0.02 };
                if j != i && (j / size == block || (i + j) % 17 == 0) {
                    graph.columns.push(j as u32);
                    graph.weights.push(w);
                }
            }
            graph.row_offsets.push(graph.columns.len());
        }
        for dim in [2usize, 5] {
            // Kernel 0: portable parallel, 1: SIMD parallel (when available), 2: sequential.
            for kernel in [0, usize::from(has_avx2_fma()), 2] {
                let fast = kernel == 1;
                let run = || {
                    let mut rng = fastrand::Rng::with_seed(9);
                    let mut emb: Vec<f32> = (0..n * dim).map(|_| 10.0 * rng.f32()).collect();
                    let params = LayoutParams {
                        n_epochs: 60,
                        negative_sample_rate: 5,
                        learning_rate: 1.0,
                        repulsion_strength: 1.0,
                        a: 1.577,
                        b: 0.895,
                        seed: 3,
                    };
                    if kernel == 2 {
                        optimize_layout_sequential(&graph, &mut emb, dim, &params, &mut |_| {});
                    } else {
                        optimize_layout_with(&graph, &mut emb, dim, &params, &mut |_| {}, fast);
                    }
                    emb
                };
                let emb = run();
                assert_eq!(emb, run(), "dim {dim} kernel {kernel}: deterministic");
                let dist = |i: usize, j: usize| {
                    squared_distance(&emb[i * dim..(i + 1) * dim], &emb[j * dim..(j + 1) * dim])
                        .sqrt()
                };
                let (mut within, mut between) = (0.0f32, f32::INFINITY);
                for i in 0..n {
                    for j in 0..n {
                        if i / size == j / size {
                            within = within.max(dist(i, j));
                        } else {
                            between = between.min(dist(i, j));
                        }
                    }
                }
                assert!(
                    emb.iter().all(|v| v.is_finite()) && within < between,
                    "dim {dim} kernel {kernel}: widest clique {within}, closest pair apart {between}"
                );
            }
        }
    }
}
