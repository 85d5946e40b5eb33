//! UMAP's fuzzy simplicial set: the kNN graph turned into a symmetric weighted graph, and the
//! low-dimensional similarity curve 1 / (1 + a·d^(2b)) fitted to `min_dist` / `spread`.
//!
//! Follows umap-learn 0.5: per point, rho = distance to the nearest neighbour and sigma chosen
//! by binary search so the memberships sum to log2(n_neighbors); memberships
//! exp(−(d − rho)/sigma); then the fuzzy union W + Wᵀ − W∘Wᵀ.

use super::knn::KnnGraph;
use rayon::prelude::*;

const SMOOTH_K_TOLERANCE: f32 = 1e-5;
const MIN_K_DIST_SCALE: f32 = 1e-3;
const SIGMA_SEARCH_STEPS: usize = 64;

/// A symmetric sparse graph in CSR form, without self loops.
#[derive(Clone, Debug)]
pub struct FuzzyGraph {
    pub n: usize,
    pub row_offsets: Vec<usize>,
    pub columns: Vec<u32>,
    pub weights: Vec<f32>,
}

impl FuzzyGraph {
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let range = self.row_offsets[i]..self.row_offsets[i + 1];
        (&self.columns[range.clone()], &self.weights[range])
    }

    pub fn edge_count(&self) -> usize {
        self.columns.len()
    }
}

/// (sigma, rho) for one point's sorted neighbour distances, `k_target` = n_neighbors (which in
/// umap-learn counts the point itself, hence log2 of it while the row holds k − 1 distances).
pub fn smooth_knn_dist(distances: &[f32], n_neighbors: usize, mean_all: f32) -> (f32, f32) {
    let target = (n_neighbors as f32).log2();
    let rho = distances.iter().copied().find(|&d| d > 0.0).unwrap_or(0.0);
    let (mut lo, mut hi, mut mid) = (0.0f32, f32::INFINITY, 1.0f32);
    for _ in 0..SIGMA_SEARCH_STEPS {
        let psum: f32 = distances
            .iter()
            .map(|&d| {
                let excess = d - rho;
                if excess > 0.0 {
                    (-excess / mid).exp()
                } else {
                    1.0
                }
            })
            .sum();
        if (psum - target).abs() < SMOOTH_K_TOLERANCE {
            break;
        }
        if psum > target {
            hi = mid;
            mid = (lo + hi) / 2.0;
        } else {
            lo = mid;
            mid = if hi.is_infinite() {
                mid * 2.0
            } else {
                (lo + hi) / 2.0
            };
        }
    }
    let mean_row = distances.iter().sum::<f32>() / distances.len().max(1) as f32;
    let floor = MIN_K_DIST_SCALE * if rho > 0.0 { mean_row } else { mean_all };
    (mid.max(floor), rho)
}

/// Builds the symmetric fuzzy graph from the kNN lists.
pub fn fuzzy_simplicial_set(knn: &KnnGraph, n_neighbors: usize) -> FuzzyGraph {
    let (n, k) = (knn.n, knn.k);
    let mean_all = knn.distances.iter().sum::<f32>() / knn.distances.len().max(1) as f32;
    // Directed memberships, row i = i's view of its neighbours.
    let directed: Vec<f32> = (0..n)
        .into_par_iter()
        .flat_map_iter(|i| {
            let dists = knn.neighbor_distances(i);
            let (sigma, rho) = smooth_knn_dist(dists, n_neighbors, mean_all);
            dists.iter().map(move |&d| {
                if d - rho <= 0.0 || sigma == 0.0 {
                    1.0
                } else {
                    (-(d - rho) / sigma).exp()
                }
            })
        })
        .collect();

    // Fuzzy union: every directed edge contributes to both (i, j) and (j, i); where both
    // directions exist the weights combine as a + b − ab.
    let mut entries: Vec<(u32, u32, f32)> = Vec::with_capacity(2 * n * k);
    for i in 0..n {
        for (slot, &j) in knn.neighbors(i).iter().enumerate() {
            if j as usize == i {
                continue;
            }
            let w = directed[i * k + slot];
            entries.push((i as u32, j, w));
            entries.push((j, i as u32, w));
        }
    }
    entries.par_sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then(a.2.total_cmp(&b.2)));

    let mut graph = FuzzyGraph {
        n,
        row_offsets: vec![0; n + 1],
        columns: Vec::with_capacity(entries.len()),
        weights: Vec::with_capacity(entries.len()),
    };
    let mut idx = 0;
    while idx < entries.len() {
        let (r, c, w) = entries[idx];
        let mut weight = w;
        if idx + 1 < entries.len() && entries[idx + 1].0 == r && entries[idx + 1].1 == c {
            let other = entries[idx + 1].2;
            weight = w + other - w * other;
            idx += 1;
        }
        // (Exact duplicates beyond a pair cannot occur: each directed list holds j once.)
        idx += 1;
        if weight > 0.0 {
            graph.columns.push(c);
            graph.weights.push(weight);
            graph.row_offsets[r as usize + 1] += 1;
        }
    }
    for i in 0..n {
        graph.row_offsets[i + 1] += graph.row_offsets[i];
    }
    graph
}

/// Fits a and b of 1 / (1 + a·x^(2b)) to the target curve (1 below `min_dist`, then
/// exp(−(x − min_dist)/spread)) by least squares on 300 points in [0, 3·spread], as umap-learn's
/// `find_ab_params` does with scipy's curve_fit (Levenberg–Marquardt from a = b = 1).
pub fn find_ab_params(spread: f32, min_dist: f32) -> (f32, f32) {
    let (spread, min_dist) = (f64::from(spread), f64::from(min_dist));
    let xs: Vec<f64> = (0..300).map(|i| 3.0 * spread * i as f64 / 299.0).collect();
    let ys: Vec<f64> = xs
        .iter()
        .map(|&x| {
            if x < min_dist {
                1.0
            } else {
                (-(x - min_dist) / spread).exp()
            }
        })
        .collect();
    let residual_sum = |a: f64, b: f64| -> f64 {
        xs.iter()
            .zip(&ys)
            .map(|(&x, &y)| {
                let r = 1.0 / (1.0 + a * x.powf(2.0 * b)) - y;
                r * r
            })
            .sum()
    };
    let (mut a, mut b, mut lambda) = (1.0f64, 1.0f64, 1e-3f64);
    let mut cost = residual_sum(a, b);
    for _ in 0..500 {
        // Normal equations JᵀJ δ = −Jᵀr for the two parameters.
        let (mut jaa, mut jab, mut jbb, mut ga, mut gb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&x, &y) in xs.iter().zip(&ys) {
            if x <= 0.0 {
                continue; // f = 1 at x = 0 for any a, b: no gradient.
            }
            let x2b = x.powf(2.0 * b);
            let denom = 1.0 + a * x2b;
            let f = 1.0 / denom;
            let r = f - y;
            let da = -x2b / (denom * denom);
            let db = -a * x2b * 2.0 * x.ln() / (denom * denom);
            jaa += da * da;
            jab += da * db;
            jbb += db * db;
            ga += da * r;
            gb += db * r;
        }
        let (maa, mbb) = (jaa * (1.0 + lambda), jbb * (1.0 + lambda));
        let det = maa * mbb - jab * jab;
        if det.abs() < 1e-300 {
            break;
        }
        let step_a = -(mbb * ga - jab * gb) / det;
        let step_b = -(maa * gb - jab * ga) / det;
        let (na, nb) = (a + step_a, b + step_b);
        let new_cost = if na > 0.0 && nb > 0.0 {
            residual_sum(na, nb)
        } else {
            f64::INFINITY
        };
        if new_cost < cost {
            let converged = (cost - new_cost) < 1e-15 * cost.max(1e-30)
                || (step_a.abs() < 1e-12 && step_b.abs() < 1e-12);
            a = na;
            b = nb;
            cost = new_cost;
            lambda = (lambda / 10.0).max(1e-12);
            if converged {
                break;
            }
        } else {
            lambda *= 10.0;
            if lambda > 1e12 {
                break;
            }
        }
    }
    (a as f32, b as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ab_fit_matches_umap_learn_for_min_dist_zero_and_default() {
        let (a, b) = find_ab_params(1.0, 0.0);
        assert!((a - 1.929).abs() < 0.01, "a = {a}");
        assert!((b - 0.7915).abs() < 0.005, "b = {b}");
        // umap-learn's default min_dist 0.1 gives a ≈ 1.577, b ≈ 0.895.
        let (a, b) = find_ab_params(1.0, 0.1);
        assert!((a - 1.577).abs() < 0.01, "a = {a}");
        assert!((b - 0.8951).abs() < 0.005, "b = {b}");
    }

    #[test]
    fn sigma_search_hits_log2_k_and_rho_is_nearest_distance() {
        let dists = [
            0.1f32, 0.15, 0.2, 0.22, 0.3, 0.31, 0.35, 0.4, 0.41, 0.45, 0.5, 0.52, 0.6, 0.61,
        ];
        let (sigma, rho) = smooth_knn_dist(&dists, 15, 0.3);
        assert_eq!(rho, 0.1);
        let total: f32 = dists
            .iter()
            .map(|&d| (-(d - rho).max(0.0) / sigma).exp())
            .sum();
        assert!((total - 15f32.log2()).abs() < 1e-3, "sum {total}");
    }

    #[test]
    fn union_is_symmetric_and_combines_both_directions() {
        // 0 and 1 see each other; 2 sees 0 but 0 does not list 2.
        let knn = KnnGraph {
            n: 3,
            k: 1,
            indices: vec![1, 0, 0],
            distances: vec![0.1, 0.1, 0.3],
        };
        let g = fuzzy_simplicial_set(&knn, 2);
        for i in 0..3 {
            let (cols, ws) = g.row(i);
            for (&j, &w) in cols.iter().zip(ws) {
                let (back_cols, back_ws) = g.row(j as usize);
                let pos = back_cols.iter().position(|&c| c as usize == i).unwrap();
                assert_eq!(back_ws[pos], w);
            }
        }
        // Nearest neighbours always get membership 1, and 1 ∪ 1 stays 1.
        assert_eq!(g.row(0).1[0], 1.0);
        assert_eq!(g.row(2).0, &[0]);
    }
}
