//! PCA by randomized subspace iteration over the contiguous buffer (Halko et al.): a few passes
//! of (X − μ)ᵀ(X − μ) applied to a small random block, then an exact eigen-decomposition of the
//! projected problem. Each pass is two streaming sweeps over the data with the SIMD dot product,
//! so no n × d copy or dense SVD library is needed.

use super::linalg::{orthonormalize_columns, symmetric_eigen};
use super::vectors::{dot, gaussian, mix_seed};
use rayon::prelude::*;

const OVERSAMPLING: usize = 8;

/// Projects the rows of `data` (n × dim) onto their top `n_components` principal axes; returns
/// the n × n_components scores.
pub fn pca(
    data: &[f32],
    dim: usize,
    n_components: usize,
    power_iterations: usize,
    seed: u64,
) -> Vec<f32> {
    let n = data.len() / dim;
    let l = (n_components + OVERSAMPLING).min(dim).min(n.max(1));
    let mean: Vec<f32> = {
        let sums = data
            .par_chunks(dim * 1024)
            .map(|rows| {
                let mut s = vec![0.0f64; dim];
                for row in rows.chunks_exact(dim) {
                    s.iter_mut().zip(row).for_each(|(a, &x)| *a += f64::from(x));
                }
                s
            })
            .reduce(
                || vec![0.0f64; dim],
                |mut a, b| {
                    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                    a
                },
            );
        sums.iter().map(|s| (s / n.max(1) as f64) as f32).collect()
    };

    // Q: dim × l, stored as l rows of length dim (so projections are dot products).
    let mut rng = fastrand::Rng::with_seed(mix_seed(seed, 21, 0));
    let mut q_rows: Vec<f32> = (0..l * dim).map(|_| gaussian(&mut rng)).collect();
    orthonormalize_rows_f32(&mut q_rows, dim, l, &mut rng);

    for _ in 0..power_iterations {
        let y = project(data, dim, &mean, &q_rows, l);
        // Z = (X − μ)ᵀ Y, as l rows of length dim.
        let z = data
            .par_chunks(dim * 512)
            .zip(y.par_chunks(l * 512))
            .map(|(rows, ys)| {
                let mut z = vec![0.0f32; l * dim];
                for (row, yr) in rows.chunks_exact(dim).zip(ys.chunks_exact(l)) {
                    for c in 0..l {
                        let w = yr[c];
                        let zc = &mut z[c * dim..(c + 1) * dim];
                        for ((acc, &x), &m) in zc.iter_mut().zip(row).zip(&mean) {
                            *acc += w * (x - m);
                        }
                    }
                }
                z
            })
            .reduce(
                || vec![0.0f32; l * dim],
                |mut a, b| {
                    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                    a
                },
            );
        q_rows = z;
        orthonormalize_rows_f32(&mut q_rows, dim, l, &mut rng);
    }

    // Exact PCA inside span(Q): eigenvectors of YᵀY give the rotation onto principal axes.
    let y = project(data, dim, &mean, &q_rows, l);
    let mut g = vec![0.0f64; l * l];
    for row in y.chunks_exact(l) {
        for i in 0..l {
            for j in 0..l {
                g[i * l + j] += f64::from(row[i]) * f64::from(row[j]);
            }
        }
    }
    let (_, vectors) = symmetric_eigen(&g, l);
    let k = n_components.min(l);
    let mut out = vec![0.0f32; n * n_components];
    out.par_chunks_mut(n_components)
        .zip(y.par_chunks(l))
        .for_each(|(o, yr)| {
            for c in 0..k {
                o[c] = (0..l)
                    .map(|r| f64::from(yr[r]) * vectors[r * l + c])
                    .sum::<f64>() as f32;
            }
        });
    out
}

/// Y = (X − μ) Q, n × l.
fn project(data: &[f32], dim: usize, mean: &[f32], q_rows: &[f32], l: usize) -> Vec<f32> {
    let mean_proj: Vec<f32> = q_rows.chunks_exact(dim).map(|q| dot(mean, q)).collect();
    let n = data.len() / dim;
    let mut y = vec![0.0f32; n * l];
    y.par_chunks_mut(l)
        .zip(data.par_chunks(dim))
        .for_each(|(yr, row)| {
            for (c, q) in q_rows.chunks_exact(dim).enumerate() {
                yr[c] = dot(row, q) - mean_proj[c];
            }
        });
    y
}

/// Orthonormalizes l vectors of length `dim` stored as rows (via the f64 column routine on the
/// transposed block).
fn orthonormalize_rows_f32(rows: &mut [f32], dim: usize, l: usize, rng: &mut fastrand::Rng) {
    let mut block = vec![0.0f64; dim * l];
    for c in 0..l {
        for r in 0..dim {
            block[r * l + c] = f64::from(rows[c * dim + r]);
        }
    }
    orthonormalize_columns(&mut block, l, rng);
    for c in 0..l {
        for r in 0..dim {
            rows[c * dim + r] = block[r * l + c] as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_component_follows_the_direction_of_largest_spread() {
        // Points spread along (1, 1, 0, 0) with small noise elsewhere.
        let mut rng = fastrand::Rng::with_seed(5);
        let dim = 4;
        let mut data = Vec::new();
        let mut along = Vec::new();
        for _ in 0..400 {
            let t = gaussian(&mut rng) * 3.0;
            along.push(t);
            data.extend([
                t + 0.1 * gaussian(&mut rng),
                t,
                0.1 * gaussian(&mut rng),
                0.05,
            ]);
        }
        let scores = pca(&data, dim, 2, 2, 1);
        let first: Vec<f32> = scores.chunks_exact(2).map(|r| r[0]).collect();
        let (mut sxy, mut sxx, mut syy) = (0.0f32, 0.0f32, 0.0f32);
        for (a, b) in first.iter().zip(&along) {
            sxy += a * b;
            sxx += a * a;
            syy += b * b;
        }
        let corr = sxy / (sxx * syy).sqrt();
        assert!(corr.abs() > 0.99, "correlation {corr}");
    }
}
