//! The all-points k-nearest-neighbour graph under cosine distance (1 − dot).
//!
//! Built with NN-descent as pynndescent does it: a forest of random-projection trees gives every
//! point decent first candidates, then rounds of "a neighbour of my neighbour is probably my
//! neighbour" (local joins over sampled new/old candidates) refine the lists until fewer than
//! `delta · n · k` entries change ([`super::nndescent`]). HNSW-built graphs were measured 10–27×
//! slower for this all-points problem, so there is none here. Deterministic for a seed.

pub use super::nndescent::nn_descent;
use super::vectors::dot;
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
