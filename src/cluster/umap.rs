//! UMAP reduction, assembled from its parts: fuzzy graph over the kNN lists ([`super::fuzzy`]),
//! spectral start ([`super::spectral`], PCA as fallback), SGD layout ([`super::layout`]). The
//! graph is kept in [`UmapState`] so the 2-D scatter-plot layout reuses it.

use super::config::{ClusterConfig, Reduction, UmapConfig};
use super::fuzzy::{FuzzyGraph, find_ab_params, fuzzy_simplicial_set};
use super::knn::KnnGraph;
use super::layout::{LayoutParams, optimize_layout};
use super::spectral::{scale_start, spectral_embedding};
use super::vectors::mix_seed;

/// What the clustering layout and the 2-D layout share.
pub struct UmapState {
    pub graph: FuzzyGraph,
    /// Start coordinates, n × `start_dim` (spectral, or PCA when the spectrum is unavailable).
    pub start: Vec<f32>,
    pub start_dim: usize,
    pub a: f32,
    pub b: f32,
}

/// Builds the fuzzy graph and the start of the clustering layout.
pub fn prepare(data: &[f32], dim: usize, knn: &KnnGraph, cfg: &UmapConfig, seed: u64) -> UmapState {
    let n = knn.n;
    let graph = fuzzy_simplicial_set(knn, cfg.n_neighbors.min(n));
    let start_dim = cfg.n_components;
    let start = match spectral_embedding(&graph, start_dim, seed) {
        Some(s) => s,
        None => {
            tracing::debug!("spectral start unavailable; starting from PCA");
            let comps = start_dim.min(dim);
            let scores = super::pca::pca(data, dim, comps, 2, seed);
            let mut start = vec![0.0f32; n * start_dim];
            for i in 0..n {
                start[i * start_dim..i * start_dim + comps]
                    .copy_from_slice(&scores[i * comps..(i + 1) * comps]);
            }
            start
        }
    };
    let (a, b) = find_ab_params(cfg.spread, cfg.min_dist);
    UmapState {
        graph,
        start,
        start_dim,
        a,
        b,
    }
}

/// Copies the first `components` columns of an n × `from_dim` matrix.
fn columns(matrix: &[f32], from_dim: usize, components: usize) -> Vec<f32> {
    matrix
        .chunks_exact(from_dim)
        .flat_map(|row| row[..components].iter().copied())
        .collect()
}

fn run(
    state: &UmapState,
    cfg: &UmapConfig,
    mut embedding: Vec<f32>,
    components: usize,
    n_epochs: usize,
    seed: u64,
    progress: &mut dyn FnMut(f32),
) -> Vec<f32> {
    scale_start(&mut embedding, components, seed);
    let params = LayoutParams {
        n_epochs,
        negative_sample_rate: cfg.negative_sample_rate,
        learning_rate: cfg.learning_rate,
        repulsion_strength: cfg.repulsion_strength,
        a: state.a,
        b: state.b,
        seed,
    };
    optimize_layout(&state.graph, &mut embedding, components, &params, progress);
    embedding
}

/// The layout that is clustered: n × `n_components`.
pub fn layout(
    state: &UmapState,
    cfg: &UmapConfig,
    seed: u64,
    progress: &mut dyn FnMut(f32),
) -> Vec<f32> {
    let start = columns(&state.start, state.start_dim, cfg.n_components);
    let epochs = cfg.epochs_for(state.graph.n);
    run(state, cfg, start, cfg.n_components, epochs, seed, progress)
}

/// Epochs of the 2-D layout: it starts from the finished clustering layout, so it only needs
/// to unfold that into the plane (measured: 2.7 s of 16 s at 50k points with 100 epochs from the
/// spectral start). Measured at 50k × 1024, HDBSCAN run on the 2-D layout itself as a check of
/// the picture: 50 epochs 0.61 s, clean ARI 0.9998, 1.5 % noise; 30 epochs 0.41 s, 0.9992,
/// 2.4 %; 20 epochs 0.9939, 4.2 %.
const EPOCHS_2D: usize = 30;

/// A 2-D layout of the same graph for scatter plots, started from the principal plane of the
/// clustering layout (`reduced`, n × `reduced_dim`), so clusters begin where they ended there.
pub fn layout_2d(
    state: &UmapState,
    reduced: &[f32],
    reduced_dim: usize,
    cfg: &ClusterConfig,
    progress: &mut dyn FnMut(f32),
) -> Vec<[f32; 2]> {
    let umap = match &cfg.reduction {
        Reduction::Umap(u) => u.clone(),
        _ => UmapConfig::default(),
    };
    let seed = mix_seed(cfg.seed, 2, 2);
    let start = match reduced_dim {
        0 | 1 => reduced.iter().flat_map(|&x| [x, 0.0]).collect(),
        2 => reduced.to_vec(),
        _ => super::pca::pca(reduced, reduced_dim, 2, 2, seed),
    };
    let epochs = umap.epochs_for(state.graph.n).min(EPOCHS_2D);
    let flat = run(state, &umap, start, 2, epochs, seed, progress);
    flat.chunks_exact(2).map(|c| [c[0], c[1]]).collect()
}
