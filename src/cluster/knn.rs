//! The all-points k-nearest-neighbour graph under cosine distance (1 − dot).
//!
//! Built with NN-descent as pynndescent does it: a forest of random-projection trees gives every
//! point decent first candidates, then rounds of "a neighbour of my neighbour is probably my
//! neighbour" (local joins over sampled new/old candidates) refine the lists until fewer than
//! `delta · n · k` entries change. HNSW-built graphs were measured 10–27× slower for this
//! all-points problem, so there is none here. Every step is deterministic for a seed: random
//! choices come from seeded generators in a fixed order, and parallel work is split into fixed
//! chunks whose results are applied in chunk order.

use super::vectors::{dot, mix_seed};
use rayon::prelude::*;

/// Below this many points the exact graph is cheap and NN-descent's trees would be degenerate.
pub const BRUTE_FORCE_MAX_POINTS: usize = 1000;

/// The k nearest neighbours of every point, excluding the point itself, sorted by distance.
#[derive(Clone, Debug)]
pub struct KnnGraph {
    pub n: usize,
    pub k: usize,
    /// n × k neighbour indices (row-major).
    pub indices: Vec<u32>,
    /// n × k cosine distances, ascending within each row.
    pub distances: Vec<f32>,
}

impl KnnGraph {
    pub fn neighbors(&self, i: usize) -> &[u32] {
        &self.indices[i * self.k..(i + 1) * self.k]
    }
    pub fn neighbor_distances(&self, i: usize) -> &[f32] {
        &self.distances[i * self.k..(i + 1) * self.k]
    }
}

/// Tuning of the NN-descent search (pynndescent's defaults).
#[derive(Clone, Debug)]
pub struct NnDescentParams {
    pub n_trees: usize,
    pub leaf_size: usize,
    pub max_candidates: usize,
    pub max_iterations: usize,
    /// Stop once fewer than `delta · n · k` neighbour entries changed in a round.
    pub delta: f32,
}

impl NnDescentParams {
    pub fn for_size(n: usize, k: usize) -> Self {
        NnDescentParams {
            n_trees: (5 + ((n as f64).sqrt() / 20.0).round() as usize).min(32),
            leaf_size: k.max(10),
            max_candidates: k.clamp(10, 60),
            max_iterations: ((n as f64).log2().round() as usize).max(5),
            delta: 0.001,
        }
    }
}

fn cosine_distance(data: &[f32], dim: usize, i: usize, j: usize) -> f32 {
    let d = 1.0 - dot(&data[i * dim..(i + 1) * dim], &data[j * dim..(j + 1) * dim]);
    d.max(0.0)
}

/// k nearest neighbours, exact or by NN-descent depending on size.
pub fn build_knn(data: &[f32], dim: usize, k: usize, seed: u64) -> KnnGraph {
    let n = data.len() / dim;
    if n <= BRUTE_FORCE_MAX_POINTS {
        brute_force_knn(data, dim, k)
    } else {
        nn_descent(data, dim, k, &NnDescentParams::for_size(n, k), seed)
    }
}

/// Exact k nearest neighbours by comparing every pair (O(n² d): small inputs and tests only).
pub fn brute_force_knn(data: &[f32], dim: usize, k: usize) -> KnnGraph {
    let n = data.len() / dim;
    let k = k.min(n.saturating_sub(1));
    let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut all: Vec<(f32, u32)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| (cosine_distance(data, dim, i, j), j as u32))
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            all.truncate(k);
            (
                all.iter().map(|p| p.1).collect(),
                all.iter().map(|p| p.0).collect(),
            )
        })
        .collect();
    let mut graph = KnnGraph {
        n,
        k,
        indices: Vec::with_capacity(n * k),
        distances: Vec::with_capacity(n * k),
    };
    for (idx, dist) in rows {
        graph.indices.extend(idx);
        graph.distances.extend(dist);
    }
    graph
}

/// Fixed-size max-heaps of (distance, index, is-new) per point, stored flat.
struct NeighborHeaps {
    k: usize,
    indices: Vec<i32>,
    distances: Vec<f32>,
    is_new: Vec<bool>,
}

impl NeighborHeaps {
    fn new(n: usize, k: usize) -> Self {
        NeighborHeaps {
            k,
            indices: vec![-1; n * k],
            distances: vec![f32::INFINITY; n * k],
            is_new: vec![false; n * k],
        }
    }

    fn worst(&self, i: usize) -> f32 {
        self.distances[i * self.k]
    }

    /// Inserts `j` into `i`'s list if it is closer than the current worst and not present yet.
    fn push(&mut self, i: usize, j: u32, d: f32) -> bool {
        let k = self.k;
        let base = i * k;
        if d >= self.distances[base] {
            return false;
        }
        if self.indices[base..base + k].contains(&(j as i32)) {
            return false;
        }
        sift_down_replace(
            &mut self.distances[base..base + k],
            &mut self.indices[base..base + k],
            Some(&mut self.is_new[base..base + k]),
            d,
            j as i32,
        );
        true
    }
}

/// Replaces the root of a max-heap and restores the heap property; a new entry is flagged new.
fn sift_down_replace(
    keys: &mut [f32],
    values: &mut [i32],
    mut flags: Option<&mut [bool]>,
    key: f32,
    value: i32,
) {
    let len = keys.len();
    let mut pos = 0;
    loop {
        let left = 2 * pos + 1;
        if left >= len {
            break;
        }
        let right = left + 1;
        let child = if right < len && keys[right] > keys[left] {
            right
        } else {
            left
        };
        if keys[child] <= key {
            break;
        }
        keys[pos] = keys[child];
        values[pos] = values[child];
        if let Some(f) = flags.as_deref_mut() {
            f[pos] = f[child];
        }
        pos = child;
    }
    keys[pos] = key;
    values[pos] = value;
    if let Some(f) = flags {
        f[pos] = true;
    }
}

/// Candidate lists of bounded size; when full, the entries with the largest random priority are
/// dropped, which samples candidates uniformly.
struct CandidateHeaps {
    cap: usize,
    indices: Vec<i32>,
    priorities: Vec<f32>,
}

impl CandidateHeaps {
    fn new(n: usize, cap: usize) -> Self {
        CandidateHeaps {
            cap,
            indices: vec![-1; n * cap],
            priorities: vec![f32::INFINITY; n * cap],
        }
    }

    fn push(&mut self, i: usize, j: u32, priority: f32) {
        let base = i * self.cap;
        if priority >= self.priorities[base] {
            return;
        }
        if self.indices[base..base + self.cap].contains(&(j as i32)) {
            return;
        }
        sift_down_replace(
            &mut self.priorities[base..base + self.cap],
            &mut self.indices[base..base + self.cap],
            None,
            priority,
            j as i32,
        );
    }

    fn row(&self, i: usize) -> impl Iterator<Item = u32> + '_ {
        self.indices[i * self.cap..(i + 1) * self.cap]
            .iter()
            .filter(|&&j| j >= 0)
            .map(|&j| j as u32)
    }
}

/// A proposed neighbour pair found by a local join or a tree leaf.
type Update = (u32, u32, f32);

/// Approximate k nearest neighbours by NN-descent seeded with a random-projection forest.
pub fn nn_descent(
    data: &[f32],
    dim: usize,
    k: usize,
    params: &NnDescentParams,
    seed: u64,
) -> KnnGraph {
    let n = data.len() / dim;
    let k = k.min(n.saturating_sub(1));
    let mut heaps = NeighborHeaps::new(n, k);

    // 1. Forest start: every pair inside a leaf is a candidate.
    let leaves_per_tree: Vec<Vec<Vec<u32>>> = (0..params.n_trees)
        .into_par_iter()
        .map(|t| rp_tree_leaves(data, dim, params.leaf_size, mix_seed(seed, 1, t as u64)))
        .collect();
    for leaves in &leaves_per_tree {
        let updates: Vec<Vec<Update>> = leaves
            .par_iter()
            .map(|leaf| {
                let mut out = Vec::with_capacity(leaf.len() * leaf.len() / 2);
                for (a, &p) in leaf.iter().enumerate() {
                    for &q in &leaf[a + 1..] {
                        out.push((p, q, cosine_distance(data, dim, p as usize, q as usize)));
                    }
                }
                out
            })
            .collect();
        apply_updates(&mut heaps, &updates);
    }
    drop(leaves_per_tree);
    // Points that no leaf paired up (tiny leaves) still need k entries to start from.
    let mut rng = fastrand::Rng::with_seed(mix_seed(seed, 2, 0));
    for i in 0..n {
        let mut tries = 0;
        while heaps.worst(i).is_infinite() && tries < 4 * k {
            let j = rng.usize(0..n);
            if j != i {
                heaps.push(i, j as u32, cosine_distance(data, dim, i, j));
            }
            tries += 1;
        }
    }

    // 2. NN-descent rounds.
    let threshold = (params.delta as f64 * n as f64 * k as f64) as usize;
    for round in 0..params.max_iterations {
        let mut rng = fastrand::Rng::with_seed(mix_seed(seed, 3, round as u64));
        let mut new_candidates = CandidateHeaps::new(n, params.max_candidates);
        let mut old_candidates = CandidateHeaps::new(n, params.max_candidates);
        for i in 0..n {
            for slot in 0..k {
                let j = heaps.indices[i * k + slot];
                if j < 0 {
                    continue;
                }
                let priority = rng.f32();
                let target = if heaps.is_new[i * k + slot] {
                    &mut new_candidates
                } else {
                    &mut old_candidates
                };
                target.push(i, j as u32, priority);
                target.push(j as usize, i as u32, priority);
            }
        }
        // Entries sampled as new candidates have now been "seen": later rounds treat them as old.
        for i in 0..n {
            for slot in 0..k {
                let j = heaps.indices[i * k + slot];
                if j >= 0
                    && heaps.is_new[i * k + slot]
                    && new_candidates.row(i).any(|c| c as i32 == j)
                {
                    heaps.is_new[i * k + slot] = false;
                }
            }
        }

        const CHUNK: usize = 256;
        let heaps_ref = &heaps;
        let (new_ref, old_ref) = (&new_candidates, &old_candidates);
        let updates: Vec<Vec<Update>> = (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .map(|chunk| {
                let mut out = Vec::new();
                let mut new_row = Vec::with_capacity(params.max_candidates);
                let mut old_row = Vec::with_capacity(params.max_candidates);
                for i in chunk * CHUNK..((chunk + 1) * CHUNK).min(n) {
                    new_row.clear();
                    new_row.extend(new_ref.row(i));
                    old_row.clear();
                    old_row.extend(old_ref.row(i));
                    for (a, &p) in new_row.iter().enumerate() {
                        let (pu, p_worst) = (p as usize, heaps_ref.worst(p as usize));
                        for &q in new_row[a + 1..].iter().chain(old_row.iter()) {
                            if p == q {
                                continue;
                            }
                            let d = cosine_distance(data, dim, pu, q as usize);
                            if d < p_worst || d < heaps_ref.worst(q as usize) {
                                out.push((p, q, d));
                            }
                        }
                    }
                }
                out
            })
            .collect();
        let changed = apply_updates(&mut heaps, &updates);
        tracing::debug!(round, changed, "nn-descent round");
        if changed <= threshold {
            break;
        }
    }

    // 3. Sorted rows.
    let mut graph = KnnGraph {
        n,
        k,
        indices: vec![0; n * k],
        distances: vec![0.0; n * k],
    };
    graph
        .indices
        .par_chunks_mut(k.max(1))
        .zip(graph.distances.par_chunks_mut(k.max(1)))
        .enumerate()
        .for_each(|(i, (idx_row, dist_row))| {
            let mut row: Vec<(f32, i32)> = (0..k)
                .map(|s| (heaps.distances[i * k + s], heaps.indices[i * k + s]))
                .collect();
            row.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for (s, (d, j)) in row.into_iter().enumerate() {
                // A slot can only stay empty when n ≤ k, which build_knn rules out.
                idx_row[s] = j.max(0) as u32;
                dist_row[s] = if d.is_finite() { d } else { 2.0 };
            }
        });
    graph
}

/// Applies proposed pairs in a fixed order (so the result does not depend on thread timing) and
/// returns how many list entries changed.
fn apply_updates(heaps: &mut NeighborHeaps, updates: &[Vec<Update>]) -> usize {
    let mut changed = 0;
    for chunk in updates {
        for &(p, q, d) in chunk {
            changed += usize::from(heaps.push(p as usize, q, d));
            changed += usize::from(heaps.push(q as usize, p, d));
        }
    }
    changed
}

/// Splits the points recursively by random hyperplanes through the origin (angular trees: the
/// normal is the difference of two random unit points) until leaves hold ≤ `leaf_size` points.
fn rp_tree_leaves(data: &[f32], dim: usize, leaf_size: usize, seed: u64) -> Vec<Vec<u32>> {
    let n = data.len() / dim;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut leaves = Vec::new();
    let mut stack = vec![(0usize, n)];
    let mut normal = vec![0.0f32; dim];
    let mut side = Vec::new();
    while let Some((start, end)) = stack.pop() {
        let len = end - start;
        if len <= leaf_size {
            leaves.push(order[start..end].to_vec());
            continue;
        }
        let a = order[start + rng.usize(0..len)] as usize;
        let mut b = order[start + rng.usize(0..len)] as usize;
        if a == b {
            b = order[start + (rng.usize(0..len - 1) + 1 + (a % len)) % len] as usize;
        }
        let (pa, pb) = (&data[a * dim..(a + 1) * dim], &data[b * dim..(b + 1) * dim]);
        for ((nrm, x), y) in normal.iter_mut().zip(pa).zip(pb) {
            *nrm = x - y;
        }
        side.clear();
        side.extend(order[start..end].iter().map(|&i| {
            let m = dot(&data[i as usize * dim..(i as usize + 1) * dim], &normal);
            if m > 1e-8 {
                true
            } else if m < -1e-8 {
                false
            } else {
                rng.bool()
            }
        }));
        let mut left_count = side.iter().filter(|&&s| s).count();
        // Identical or symmetric points: fall back to a random split so the recursion ends.
        if left_count == 0 || left_count == len {
            for s in side.iter_mut() {
                *s = rng.bool();
            }
            left_count = side.iter().filter(|&&s| s).count();
            if left_count == 0 || left_count == len {
                side.iter_mut()
                    .enumerate()
                    .for_each(|(i, s)| *s = i < len / 2);
                left_count = len / 2;
            }
        }
        // Stable partition of the slice by side.
        let slice = &mut order[start..end];
        let mut left: Vec<u32> = Vec::with_capacity(left_count);
        let mut right: Vec<u32> = Vec::with_capacity(len - left_count);
        for (&i, &s) in slice.iter().zip(&side) {
            if s { left.push(i) } else { right.push(i) }
        }
        slice[..left_count].copy_from_slice(&left);
        slice[left_count..].copy_from_slice(&right);
        stack.push((start + left_count, end));
        stack.push((start, start + left_count));
    }
    leaves
}

/// Share of true neighbours found, averaged over points (for tests and the benchmark).
pub fn recall(approx: &KnnGraph, exact: &KnnGraph) -> f64 {
    let mut hits = 0usize;
    for i in 0..exact.n {
        let truth = exact.neighbors(i);
        hits += approx
            .neighbors(i)
            .iter()
            .filter(|j| truth.contains(j))
            .count();
    }
    hits as f64 / (exact.n * exact.k).max(1) as f64
}
