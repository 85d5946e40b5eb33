//! Small dense linear algebra the engine needs: eigen-decomposition of tiny symmetric matrices
//! and orthonormalization of tall n × p blocks (p ≤ ~20). Hand-written because these are a few
//! dozen lines, while a general linear-algebra crate would dominate the build time.

use rayon::prelude::*;

/// Eigen-decomposition of a symmetric p × p matrix (row-major) by cyclic Jacobi rotations.
/// Returns eigenvalues in descending order and the matching eigenvectors as columns of a
/// row-major p × p matrix.
pub fn symmetric_eigen(matrix: &[f64], p: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = matrix.to_vec();
    let mut v = vec![0.0f64; p * p];
    for i in 0..p {
        v[i * p + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..p)
            .flat_map(|i| (0..p).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * p + j] * a[i * p + j])
            .sum();
        let scale: f64 = (0..p).map(|i| a[i * p + i] * a[i * p + i]).sum::<f64>() + off;
        if off <= 1e-30 * scale.max(1e-300) {
            break;
        }
        for i in 0..p {
            for j in i + 1..p {
                let aij = a[i * p + j];
                if aij.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[j * p + j] - a[i * p + i]) / (2.0 * aij);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..p {
                    let (aki, akj) = (a[k * p + i], a[k * p + j]);
                    a[k * p + i] = c * aki - s * akj;
                    a[k * p + j] = s * aki + c * akj;
                }
                for k in 0..p {
                    let (aik, ajk) = (a[i * p + k], a[j * p + k]);
                    a[i * p + k] = c * aik - s * ajk;
                    a[j * p + k] = s * aik + c * ajk;
                }
                for k in 0..p {
                    let (vki, vkj) = (v[k * p + i], v[k * p + j]);
                    v[k * p + i] = c * vki - s * vkj;
                    v[k * p + j] = s * vki + c * vkj;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..p).collect();
    order.sort_by(|&x, &y| a[y * p + y].total_cmp(&a[x * p + x]));
    let values = order.iter().map(|&i| a[i * p + i]).collect();
    let mut vectors = vec![0.0f64; p * p];
    for (new_col, &old_col) in order.iter().enumerate() {
        for r in 0..p {
            vectors[r * p + new_col] = v[r * p + old_col];
        }
    }
    (values, vectors)
}

/// Multiplies a row-major n × p block by a small p × q matrix.
pub fn multiply_small(block: &[f64], p: usize, small: &[f64], q: usize) -> Vec<f64> {
    let n = block.len() / p;
    let mut out = vec![0.0f64; n * q];
    out.par_chunks_mut(q)
        .zip(block.par_chunks(p))
        .for_each(|(o, row)| {
            for (i, &r) in row.iter().enumerate() {
                if r == 0.0 {
                    continue;
                }
                for j in 0..q {
                    o[j] += r * small[i * q + j];
                }
            }
        });
    out
}

/// Makes the columns of a row-major n × p block orthonormal (symmetric orthogonalization via
/// the eigen-decomposition of the Gram matrix). Columns that had collapsed onto the others are
/// refilled from `refill` and orthonormalized again, so the result always has full rank.
pub fn orthonormalize_columns(block: &mut [f64], p: usize, refill: &mut fastrand::Rng) {
    for _attempt in 0..3 {
        let g = symmetric_gram(block, p);
        let (values, vectors) = symmetric_eigen(&g, p);
        let max = values.first().copied().unwrap_or(0.0).max(1e-300);
        let mut transform = vec![0.0f64; p * p];
        let mut degenerate = false;
        for c in 0..p {
            let scale = if values[c] > 1e-12 * max {
                1.0 / values[c].sqrt()
            } else {
                degenerate = true;
                0.0
            };
            for r in 0..p {
                transform[r * p + c] = vectors[r * p + c] * scale;
            }
        }
        let out = multiply_small(block, p, &transform, p);
        block.copy_from_slice(&out);
        if !degenerate {
            return;
        }
        // Refill zero columns with random values and try again.
        for c in 0..p {
            if values[c] <= 1e-12 * max {
                for row in block.chunks_exact_mut(p) {
                    row[c] = refill.f64() - 0.5;
                }
            }
        }
    }
}

/// Full symmetric Gram matrix Bᵀ B.
pub fn symmetric_gram(block: &[f64], p: usize) -> Vec<f64> {
    let upper = block
        .par_chunks(p * 1024)
        .map(|rows| {
            let mut g = vec![0.0f64; p * p];
            for row in rows.chunks_exact(p) {
                for i in 0..p {
                    let ri = row[i];
                    for j in i..p {
                        g[i * p + j] += ri * row[j];
                    }
                }
            }
            g
        })
        // Partial sums are added in chunk order: rayon's reduce groups them by how work was
        // stolen, and a different rounding here changed the spectral start between runs.
        .collect::<Vec<_>>()
        .into_iter()
        .fold(vec![0.0f64; p * p], |mut a, b| {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
            a
        });
    let mut g = upper;
    for i in 0..p {
        for j in 0..i {
            g[i * p + j] = g[j * p + i];
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_recovers_known_eigenpairs() {
        // [[2,1],[1,2]] has eigenvalues 3 and 1 with eigenvectors (1,1)/√2 and (1,−1)/√2.
        let (values, vectors) = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2);
        assert!((values[0] - 3.0).abs() < 1e-12 && (values[1] - 1.0).abs() < 1e-12);
        assert!((vectors[0].abs() - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12);
        assert!((vectors[0] - vectors[2]).abs() < 1e-12);
    }

    #[test]
    fn orthonormalized_columns_have_identity_gram_even_when_rank_deficient() {
        let mut rng = fastrand::Rng::with_seed(3);
        // Third column duplicates the first.
        let mut block: Vec<f64> = (0..100)
            .flat_map(|_| {
                let a = rng.f64();
                [a, rng.f64(), a]
            })
            .collect();
        orthonormalize_columns(&mut block, 3, &mut rng);
        let g = symmetric_gram(&block, 3);
        for i in 0..3 {
            for j in 0..3 {
                let expect = if i == j { 1.0 } else { 0.0 };
                assert!(
                    (g[i * 3 + j] - expect).abs() < 1e-8,
                    "g[{i}][{j}] = {}",
                    g[i * 3 + j]
                );
            }
        }
    }
}
