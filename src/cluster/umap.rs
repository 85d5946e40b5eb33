//! UMAP reduction, assembled from its parts: fuzzy graph over the kNN lists ([`super::fuzzy`]),
//! spectral start ([`super::spectral`], PCA as fallback), SGD layout ([`super::layout`]). The
//! graph and the start are kept in [`UmapState`] so the 2-D scatter-plot layout reuses them.

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

/// Builds the fuzzy graph and a start with `max(n_components, extra_components)` columns.
pub fn prepare(
    data: &[f32],
    dim: usize,
    knn: &KnnGraph,
    cfg: &UmapConfig,
    extra_components: usize,
    seed: u64,
) -> UmapState {
    let n = knn.n;
    let graph = fuzzy_simplicial_set(knn, cfg.n_neighbors.min(n));
    let start_dim = cfg.n_components.max(extra_components);
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

fn run(
    state: &UmapState,
    cfg: &UmapConfig,
    components: usize,
    n_epochs: usize,
    seed: u64,
    progress: &mut dyn FnMut(f32),
) -> Vec<f32> {
    let n = state.graph.n;
    let mut embedding = vec![0.0f32; n * components];
    for i in 0..n {
        embedding[i * components..(i + 1) * components]
            .copy_from_slice(&state.start[i * state.start_dim..i * state.start_dim + components]);
    }
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
    run(
        state,
        cfg,
        cfg.n_components,
        cfg.epochs_for(state.graph.n),
        seed,
        progress,
    )
}

/// A 2-D layout of the same graph for scatter plots.
pub fn layout_2d(
    state: &UmapState,
    cfg: &ClusterConfig,
    progress: &mut dyn FnMut(f32),
) -> Vec<[f32; 2]> {
    let umap = match &cfg.reduction {
        Reduction::Umap(u) => u.clone(),
        _ => UmapConfig::default(),
    };
    // A picture needs less polish than the clustered layout: at most 100 epochs.
    let epochs = umap.epochs_for(state.graph.n).min(100);
    let flat = run(state, &umap, 2, epochs, mix_seed(cfg.seed, 2, 2), progress);
    flat.chunks_exact(2).map(|c| [c[0], c[1]]).collect()
}
