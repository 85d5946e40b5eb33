//! Per-cluster facts computed in the ORIGINAL embedding space (the reduced space only exists for
//! this sample, while new traces are classified against these centroids): normalized centroid,
//! size, quantiles of the members' cosine distance to it (a per-cluster "no match" threshold) and
//! exemplar members.

use super::vectors::{dot, normalize};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Quantiles of the members' cosine distance (1 − cos) to the centroid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DistanceQuantiles {
    pub p50: f32,
    pub p90: f32,
    pub p95: f32,
    pub p99: f32,
    pub max: f32,
}

/// One cluster of the map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterSummary {
    /// The cluster's label in `ClusterResult::labels` (0-based, largest cluster first).
    pub label: i32,
    pub size: usize,
    /// Unit-length mean of the members' embeddings.
    pub centroid: Vec<f32>,
    pub distance_quantiles: DistanceQuantiles,
    /// Indices of the members nearest the centroid, nearest first.
    pub exemplars: Vec<usize>,
    /// Indices of members spread over the cluster (farthest-point sampling), for variety.
    pub diverse_exemplars: Vec<usize>,
    /// c-TF-IDF keywords with their weights, best first (empty without texts).
    pub keywords: Vec<(String, f32)>,
}

/// Summaries for clusters 0..n_clusters of `labels` (−1 = noise, skipped).
pub fn summarize(
    data: &[f32],
    dim: usize,
    labels: &[i32],
    n_clusters: usize,
    n_exemplars: usize,
    n_diverse: usize,
) -> Vec<ClusterSummary> {
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_clusters];
    for (i, &l) in labels.iter().enumerate() {
        if l >= 0 {
            members[l as usize].push(i);
        }
    }
    members
        .into_par_iter()
        .enumerate()
        .map(|(label, idx)| summarize_one(data, dim, label as i32, &idx, n_exemplars, n_diverse))
        .collect()
}

fn summarize_one(
    data: &[f32],
    dim: usize,
    label: i32,
    members: &[usize],
    n_exemplars: usize,
    n_diverse: usize,
) -> ClusterSummary {
    let row = |i: usize| &data[i * dim..(i + 1) * dim];
    let mut sum = vec![0.0f64; dim];
    for &i in members {
        sum.iter_mut()
            .zip(row(i))
            .for_each(|(s, &x)| *s += f64::from(x));
    }
    let mut centroid: Vec<f32> = sum.iter().map(|&s| s as f32).collect();
    normalize(&mut centroid);
    let mut by_distance: Vec<(f32, usize)> = members
        .iter()
        .map(|&i| ((1.0 - dot(row(i), &centroid)).max(0.0), i))
        .collect();
    by_distance.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let quantile = |q: f64| -> f32 {
        if by_distance.is_empty() {
            return 0.0;
        }
        // Linear interpolation between order statistics (numpy's default).
        let pos = q * (by_distance.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        let frac = (pos - lo as f64) as f32;
        by_distance[lo].0 * (1.0 - frac) + by_distance[hi].0 * frac
    };
    let distance_quantiles = DistanceQuantiles {
        p50: quantile(0.50),
        p90: quantile(0.90),
        p95: quantile(0.95),
        p99: quantile(0.99),
        max: by_distance.last().map_or(0.0, |p| p.0),
    };
    let exemplars: Vec<usize> = by_distance.iter().take(n_exemplars).map(|p| p.1).collect();

    // Farthest-point sampling, started from the most central member: each pick maximizes the
    // distance to everything picked so far.
    let mut diverse = Vec::new();
    if n_diverse > 0 && !by_distance.is_empty() {
        let start = by_distance[0].1;
        let mut min_dist: Vec<f32> = members
            .iter()
            .map(|&i| 1.0 - dot(row(i), row(start)))
            .collect();
        for _ in 0..n_diverse.min(members.len().saturating_sub(1)) {
            let (best, &far) =
                min_dist
                    .iter()
                    .enumerate()
                    .fold((0usize, &f32::NEG_INFINITY), |acc, (k, d)| {
                        if *d > *acc.1 { (k, d) } else { acc }
                    });
            if far <= 0.0 {
                break; // every remaining member duplicates a pick
            }
            let pick = members[best];
            diverse.push(pick);
            for (k, &i) in members.iter().enumerate() {
                let d = 1.0 - dot(row(i), row(pick));
                if d < min_dist[k] {
                    min_dist[k] = d;
                }
            }
        }
    }
    ClusterSummary {
        label,
        size: members.len(),
        centroid,
        distance_quantiles,
        exemplars,
        diverse_exemplars: diverse,
        keywords: Vec::new(),
    }
}
