//! Agreement between two labelings: adjusted Rand index and normalized mutual information (as
//! scikit-learn defines them), plus "clean ARI", the benchmark's headline quality figure.

use std::collections::HashMap;

/// Contingency counts of two equally long labelings.
fn contingency(
    a: &[i32],
    b: &[i32],
) -> (
    HashMap<(i32, i32), u64>,
    HashMap<i32, u64>,
    HashMap<i32, u64>,
) {
    assert_eq!(a.len(), b.len(), "labelings must have the same length");
    let mut joint = HashMap::new();
    let mut rows = HashMap::new();
    let mut cols = HashMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *joint.entry((x, y)).or_insert(0) += 1;
        *rows.entry(x).or_insert(0) += 1;
        *cols.entry(y).or_insert(0) += 1;
    }
    (joint, rows, cols)
}

fn pairs(x: u64) -> f64 {
    let x = x as f64;
    x * (x - 1.0) / 2.0
}

/// Adjusted Rand index: 1 for identical partitions (up to renaming), ≈ 0 for random ones.
/// Every label value, −1 included, is treated as a cluster.
pub fn adjusted_rand_index(a: &[i32], b: &[i32]) -> f64 {
    let n = a.len() as u64;
    if n < 2 {
        return 1.0;
    }
    let (joint, rows, cols) = contingency(a, b);
    let index: f64 = joint.values().map(|&c| pairs(c)).sum();
    let sum_rows: f64 = rows.values().map(|&c| pairs(c)).sum();
    let sum_cols: f64 = cols.values().map(|&c| pairs(c)).sum();
    let expected = sum_rows * sum_cols / pairs(n);
    let max = 0.5 * (sum_rows + sum_cols);
    if (max - expected).abs() < f64::EPSILON {
        // Both labelings put everything in one cluster (or each point alone): identical.
        return 1.0;
    }
    (index - expected) / (max - expected)
}

/// Normalized mutual information with the arithmetic-mean normalization (scikit-learn's
/// default): 1 for identical partitions, 0 for independent ones.
pub fn normalized_mutual_info(a: &[i32], b: &[i32]) -> f64 {
    let n = a.len() as f64;
    if a.is_empty() {
        return 1.0;
    }
    let (joint, rows, cols) = contingency(a, b);
    let entropy = |m: &HashMap<i32, u64>| -> f64 {
        m.values()
            .map(|&c| {
                let p = c as f64 / n;
                -p * p.ln()
            })
            .sum()
    };
    let (ha, hb) = (entropy(&rows), entropy(&cols));
    if ha == 0.0 && hb == 0.0 {
        return 1.0;
    }
    let mi: f64 = joint
        .iter()
        .map(|(&(x, y), &c)| {
            let pxy = c as f64 / n;
            let px = rows[&x] as f64 / n;
            let py = cols[&y] as f64 / n;
            pxy * (pxy / (px * py)).ln()
        })
        .sum();
    let denom = 0.5 * (ha + hb);
    if denom <= 0.0 {
        0.0
    } else {
        (mi / denom).clamp(0.0, 1.0)
    }
}

/// ARI restricted to the points that truly belong to a topic (`truth` ≠ −1), with predicted
/// noise kept as one extra label, so calling real members noise is penalised.
pub fn clean_adjusted_rand_index(truth: &[i32], predicted: &[i32]) -> f64 {
    let (t, p): (Vec<i32>, Vec<i32>) = truth
        .iter()
        .zip(predicted)
        .filter(|(t, _)| **t != -1)
        .map(|(&t, &p)| (t, p))
        .unzip();
    adjusted_rand_index(&t, &p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ari_and_nmi_on_known_labelings() {
        let a = [0, 0, 1, 1, 2, 2];
        let renamed = [5, 5, 3, 3, 9, 9];
        assert!((adjusted_rand_index(&a, &renamed) - 1.0).abs() < 1e-12);
        assert!((normalized_mutual_info(&a, &renamed) - 1.0).abs() < 1e-12);
        // scikit-learn: adjusted_rand_score([0,0,1,1],[0,0,1,2]) = 0.5714285714
        assert!((adjusted_rand_index(&[0, 0, 1, 1], &[0, 0, 1, 2]) - 0.571_428_571_4).abs() < 1e-9);
        // normalized_mutual_info_score([0,0,1,1],[0,0,1,2]) = 0.8
        assert!((normalized_mutual_info(&[0, 0, 1, 1], &[0, 0, 1, 2]) - 0.8).abs() < 1e-9);
        // Independent labelings: ARI below zero here, NMI zero.
        assert!(adjusted_rand_index(&[0, 0, 1, 1], &[0, 1, 0, 1]) < 0.0);
        assert!(normalized_mutual_info(&[0, 0, 1, 1], &[0, 1, 0, 1]).abs() < 1e-12);
    }

    #[test]
    fn clean_ari_ignores_true_noise_but_penalises_predicted_noise() {
        let truth = [0, 0, 0, 1, 1, 1, -1, -1];
        let perfect = [4, 4, 4, 7, 7, 7, 4, 7];
        assert!((clean_adjusted_rand_index(&truth, &perfect) - 1.0).abs() < 1e-12);
        let lossy = [4, 4, -1, 7, 7, 7, -1, -1];
        assert!(clean_adjusted_rand_index(&truth, &lossy) < 0.9);
    }
}
