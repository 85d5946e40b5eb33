//! K-Means: k-means++ seeding, then parallel Lloyd iterations (Euclidean, which on unit vectors
//! ranks like cosine). Used on its own and to make the micro-clusters of agglomerative
//! clustering.

use super::vectors::{dot, mix_seed};
use rayon::prelude::*;

/// Result of a k-means run.
#[derive(Clone, Debug)]
pub struct KmeansFit {
    pub labels: Vec<u32>,
    /// k × dim centres.
    pub centers: Vec<f32>,
    pub sizes: Vec<usize>,
    pub iterations: usize,
}

/// Clusters the rows of `data` (n × dim) into `k` groups (`k` is capped at n).
pub fn kmeans(
    data: &[f32],
    dim: usize,
    k: usize,
    max_iterations: usize,
    tolerance: f32,
    seed: u64,
) -> KmeansFit {
    let n = data.len() / dim;
    let k = k.min(n).max(1);
    let norms: Vec<f32> = data.par_chunks(dim).map(|r| dot(r, r)).collect();
    let mut centers = kmeans_plus_plus(data, dim, &norms, k, seed);
    let mut labels = vec![0u32; n];
    let mut sizes = vec![0usize; k];
    let mut iterations = 0;
    for iteration in 0..max_iterations {
        iterations = iteration + 1;
        assign(data, dim, &norms, &centers, &mut labels);
        let (new_centers, new_sizes) = recompute(data, dim, &labels, k, &centers, &norms);
        let shift = centers
            .chunks_exact(dim)
            .zip(new_centers.chunks_exact(dim))
            .map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>())
            .fold(0.0f32, f32::max)
            .sqrt();
        centers = new_centers;
        sizes = new_sizes;
        if shift <= tolerance {
            break;
        }
    }
    assign(data, dim, &norms, &centers, &mut labels);
    sizes.iter_mut().for_each(|s| *s = 0);
    for &l in &labels {
        sizes[l as usize] += 1;
    }
    KmeansFit {
        labels,
        centers,
        sizes,
        iterations,
    }
}

/// k-means++: each next centre is drawn with probability proportional to the squared distance
/// to the nearest centre chosen so far.
fn kmeans_plus_plus(data: &[f32], dim: usize, norms: &[f32], k: usize, seed: u64) -> Vec<f32> {
    let n = norms.len();
    let mut rng = fastrand::Rng::with_seed(mix_seed(seed, 31, 0));
    let mut centers = Vec::with_capacity(k * dim);
    let first = rng.usize(0..n);
    centers.extend_from_slice(&data[first * dim..(first + 1) * dim]);
    let mut nearest: Vec<f32> = vec![f32::INFINITY; n];
    for c in 1..=k {
        let center = &centers[(c - 1) * dim..c * dim];
        let cn = dot(center, center);
        nearest
            .par_iter_mut()
            .zip(data.par_chunks(dim))
            .zip(norms.par_iter())
            .for_each(|((best, row), &rn)| {
                let d = (rn + cn - 2.0 * dot(row, center)).max(0.0);
                if d < *best {
                    *best = d;
                }
            });
        if c == k {
            break;
        }
        let total: f64 = nearest.iter().map(|&d| f64::from(d)).sum();
        let next = if total > 0.0 {
            let mut target = rng.f64() * total;
            let mut pick = n - 1;
            for (i, &d) in nearest.iter().enumerate() {
                target -= f64::from(d);
                if target <= 0.0 && d > 0.0 {
                    pick = i;
                    break;
                }
            }
            pick
        } else {
            rng.usize(0..n) // all points coincide with centres already chosen
        };
        centers.extend_from_slice(&data[next * dim..(next + 1) * dim]);
    }
    centers
}

fn assign(data: &[f32], dim: usize, norms: &[f32], centers: &[f32], labels: &mut [u32]) {
    let center_norms: Vec<f32> = centers.chunks_exact(dim).map(|c| dot(c, c)).collect();
    labels
        .par_iter_mut()
        .zip(data.par_chunks(dim))
        .zip(norms.par_iter())
        .for_each(|((label, row), &rn)| {
            let mut best = (f32::INFINITY, 0u32);
            for (c, center) in centers.chunks_exact(dim).enumerate() {
                let d = rn + center_norms[c] - 2.0 * dot(row, center);
                if d < best.0 {
                    best = (d, c as u32);
                }
            }
            *label = best.1;
        });
}

/// New centres as member means; an empty cluster takes the point farthest from its centre.
fn recompute(
    data: &[f32],
    dim: usize,
    labels: &[u32],
    k: usize,
    old: &[f32],
    norms: &[f32],
) -> (Vec<f32>, Vec<usize>) {
    // Partial sums per block of rows, then added in block order: rayon's `reduce` combines in
    // an order that depends on work stealing, and float sums in another order can differ in
    // the last bit, so two runs of one seed could disagree.
    let partials: Vec<(Vec<f64>, Vec<usize>)> = data
        .par_chunks(dim * 1024)
        .zip(labels.par_chunks(1024))
        .map(|(rows, ls)| {
            let mut sums = vec![0.0f64; k * dim];
            let mut sizes = vec![0usize; k];
            for (row, &l) in rows.chunks_exact(dim).zip(ls) {
                let s = &mut sums[l as usize * dim..(l as usize + 1) * dim];
                s.iter_mut().zip(row).for_each(|(a, &x)| *a += f64::from(x));
                sizes[l as usize] += 1;
            }
            (sums, sizes)
        })
        .collect();
    let (mut sums, mut sizes) = (vec![0.0f64; k * dim], vec![0usize; k]);
    for (sb, zb) in partials {
        sums.iter_mut().zip(sb).for_each(|(x, y)| *x += y);
        sizes.iter_mut().zip(zb).for_each(|(x, y)| *x += y);
    }
    let mut centers = vec![0.0f32; k * dim];
    let mut taken = Vec::new();
    for c in 0..k {
        if sizes[c] > 0 {
            for d in 0..dim {
                centers[c * dim + d] = (sums[c * dim + d] / sizes[c] as f64) as f32;
            }
        } else {
            // Farthest point from its own centre, not yet used for another empty cluster.
            let far = (0..labels.len())
                .filter(|i| !taken.contains(i))
                .map(|i| {
                    let center = &old[labels[i] as usize * dim..(labels[i] as usize + 1) * dim];
                    let row = &data[i * dim..(i + 1) * dim];
                    (norms[i] + dot(center, center) - 2.0 * dot(row, center), i)
                })
                .fold((f32::NEG_INFINITY, 0), |a, b| if b.0 > a.0 { b } else { a })
                .1;
            taken.push(far);
            centers[c * dim..(c + 1) * dim].copy_from_slice(&data[far * dim..(far + 1) * dim]);
        }
    }
    (centers, sizes)
}
