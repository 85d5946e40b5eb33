//! HDBSCAN through the `hdbscan-rs` crate (dual-tree Borůvka, labels matching scikit-learn's;
//! measured 1.3 s on 50k × 5), behind a small adapter that converts our contiguous `f32`
//! layout and handles the inputs the crate rejects.

use super::ClusterError;
use super::config::{ClusterSelection, HdbscanConfig};
use hdbscan_rs::{ClusterSelectionMethod, Hdbscan, HdbscanParams, Metric};

/// Labels per point, −1 for noise.
pub fn hdbscan(data: &[f32], dim: usize, cfg: &HdbscanConfig) -> Result<Vec<i32>, ClusterError> {
    let n = data.len() / dim;
    let min_cluster_size = cfg.min_cluster_size_for(n);
    let min_samples = cfg.min_samples_for(n);
    // Too few points to form even one cluster: everything is noise (the crate would error).
    if n < min_cluster_size || n < min_samples.max(2) {
        return Ok(vec![-1; n]);
    }
    let array = ndarray::Array2::from_shape_fn((n, dim), |(i, j)| f64::from(data[i * dim + j]));
    let params = HdbscanParams {
        min_cluster_size,
        min_samples: Some(min_samples),
        metric: Metric::Euclidean,
        cluster_selection_epsilon: cfg.cluster_selection_epsilon,
        cluster_selection_method: match cfg.cluster_selection {
            ClusterSelection::Eom => ClusterSelectionMethod::Eom,
            ClusterSelection::Leaf => ClusterSelectionMethod::Leaf,
        },
        ..HdbscanParams::default()
    };
    Hdbscan::new(params)
        .fit_predict(&array.view())
        .map_err(|e| ClusterError::Clustering(format!("HDBSCAN: {e}")))
}
