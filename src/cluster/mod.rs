//! The topic engine: turns a sample of facet embeddings into a topic map.
//!
//! Pipeline (each step a module): validate and normalize the input ([`vectors`]) → reduce
//! ([`umap`]: kNN graph by NN-descent, fuzzy graph, spectral start, SGD layout; or [`pca`]; or
//! nothing) → cluster ([`density`] HDBSCAN, [`kmeans`], [`agglomerative`]) → per-cluster
//! summaries in the original space ([`summary`], [`ctfidf`]) and 2-D coordinates for a scatter
//! plot. [`identity`] matches a rebuilt map to the previous one; [`metrics`] and [`synthetic`]
//! serve tests and the benchmark.

pub mod agglomerative;
pub mod config;
pub mod ctfidf;
pub mod density;
pub mod fuzzy;
pub mod identity;
pub mod kmeans;
pub mod knn;
pub mod layout;
mod layout_simd;
mod linalg;
pub mod metrics;
mod nndescent;
pub mod pca;
pub mod quantized;
mod rptree;
pub mod spectral;
pub mod summary;
pub mod synthetic;
pub mod umap;
pub mod vectors;

pub use config::{
    AgglomerativeConfig, Algorithm, ClusterConfig, ClusterSelection, HdbscanConfig, KmeansConfig,
    Linkage, PcaConfig, Reduction, SummaryConfig, UmapConfig,
};
pub use identity::{ClusterSnapshot, MatchOutcome, MatchParams, match_clusters, stability_score};
pub use metrics::{adjusted_rand_index, clean_adjusted_rand_index, normalized_mutual_info};
pub use summary::{ClusterSummary, DistanceQuantiles};

use serde::Serialize;
use std::time::Instant;

/// Why a map could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no embeddings given")]
    EmptyInput,
    #[error("buffer of {len} floats is not a whole number of {dim}-dimensional embeddings")]
    DimensionMismatch { len: usize, dim: usize },
    #[error("embedding {row} contains NaN or an infinite value")]
    NonFiniteValue { row: usize },
    #[error("embedding {row} is all zeros and has no direction")]
    ZeroVector { row: usize },
    #[error("{n} embeddings exceed sample_size {sample_size}: sample them first")]
    TooManyPoints { n: usize, sample_size: usize },
    #[error("{texts} texts given for {vectors} embeddings: they must be aligned one to one")]
    TextCountMismatch { texts: usize, vectors: usize },
    #[error("invalid clustering configuration: {0}")]
    InvalidConfig(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("clustering failed: {0}")]
    Clustering(String),
}

/// Steps reported to the progress callback and timed in [`ClusterResult::timings`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Input checks and normalization.
    Validate,
    /// k-nearest-neighbour graph (NN-descent).
    Knn,
    /// UMAP fuzzy graph and spectral start.
    Graph,
    /// UMAP SGD layout in the clustering dimensions.
    Layout,
    /// PCA reduction.
    Pca,
    /// The clustering algorithm itself.
    Cluster,
    /// Centroids, distance quantiles and exemplars.
    Summaries,
    /// c-TF-IDF keywords.
    Keywords,
    /// 2-D coordinates for a scatter plot.
    Layout2d,
}

/// Wall time of one stage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageTiming {
    pub stage: Stage,
    pub seconds: f64,
}

/// A built topic map.
#[derive(Clone, Debug)]
pub struct ClusterResult {
    /// Cluster per input point: 0.. (largest cluster first), −1 for noise.
    pub labels: Vec<i32>,
    /// One summary per cluster, indexed by label.
    pub clusters: Vec<ClusterSummary>,
    /// 2-D scatter-plot coordinates per point (when `layout_2d` is on).
    pub coords_2d: Option<Vec<[f32; 2]>>,
    /// The reduced vectors that were clustered (n × `reduced_dim`).
    pub reduced: Vec<f32>,
    pub reduced_dim: usize,
    pub timings: Vec<StageTiming>,
    /// Share of points labelled noise.
    pub noise_share: f32,
}

impl ClusterResult {
    pub fn n_clusters(&self) -> usize {
        self.clusters.len()
    }

    pub fn total_seconds(&self) -> f64 {
        self.timings.iter().map(|t| t.seconds).sum()
    }
}

/// Builds a topic map from `vectors` (n × `dim`, row-major, ideally L2-normalized; rows that are
/// not are normalized, NaN or zero rows are rejected). `texts`, when given, are aligned with the
/// vectors and feed the keywords. `progress` receives (stage, share done in 0..=1).
pub fn build_clusters(
    vectors: &[f32],
    dim: usize,
    texts: Option<&[String]>,
    cfg: &ClusterConfig,
    progress: &dyn Fn(Stage, f32),
) -> Result<ClusterResult, ClusterError> {
    cfg.validate()?;
    let mut timings = Vec::new();
    let mut clock = StageClock::new(progress);

    clock.start(Stage::Validate);
    let data = vectors::validate_and_normalize(vectors, dim)?;
    let n = data.len() / dim;
    if n == 0 {
        return Err(ClusterError::EmptyInput);
    }
    if n > cfg.sample_size {
        return Err(ClusterError::TooManyPoints {
            n,
            sample_size: cfg.sample_size,
        });
    }
    if let Some(t) = texts
        && t.len() != n
    {
        return Err(ClusterError::TextCountMismatch {
            texts: t.len(),
            vectors: n,
        });
    }
    timings.push(clock.stop());

    let identical = data.chunks_exact(dim).all(|row| row == &data[..dim]);
    let (reduced, reduced_dim, mut coords_2d, umap_state) = if identical {
        // Nothing to reduce: every point is the same; one cluster (or noise, below).
        (
            vec![0.0f32; n],
            1,
            cfg.layout_2d.then(|| vec![[0.0f32; 2]; n]),
            None,
        )
    } else {
        reduce(&data, dim, cfg, &mut clock, &mut timings)?
    };

    clock.start(Stage::Cluster);
    let raw_labels = if identical {
        let enough = match &cfg.algorithm {
            Algorithm::Hdbscan(h) => n >= h.min_cluster_size_for(n),
            _ => true,
        };
        vec![if enough { 0 } else { -1 }; n]
    } else {
        match &cfg.algorithm {
            Algorithm::Hdbscan(h) => density::hdbscan(&reduced, reduced_dim, h)?,
            Algorithm::Kmeans(k) => kmeans::kmeans(
                &reduced,
                reduced_dim,
                k.k,
                k.max_iterations,
                k.tolerance,
                cfg.seed,
            )
            .labels
            .into_iter()
            .map(|l| l as i32)
            .collect(),
            Algorithm::Agglomerative(a) => agglomerative::agglomerative(
                &reduced,
                reduced_dim,
                a.k,
                a.micro_clusters,
                a.linkage,
                cfg.seed,
            ),
        }
    };
    let (labels, n_clusters) = relabel_by_size(&raw_labels);
    timings.push(clock.stop());

    clock.start(Stage::Summaries);
    let mut clusters = summary::summarize(
        &data,
        dim,
        &labels,
        n_clusters,
        cfg.summary.exemplars,
        cfg.summary.diverse_exemplars,
    );
    timings.push(clock.stop());

    if let Some(texts) = texts {
        clock.start(Stage::Keywords);
        let keywords = ctfidf::class_keywords(texts, &labels, n_clusters, cfg.summary.keywords);
        for (cluster, kw) in clusters.iter_mut().zip(keywords) {
            cluster.keywords = kw;
        }
        timings.push(clock.stop());
    }

    if cfg.layout_2d && coords_2d.is_none() {
        clock.start(Stage::Layout2d);
        coords_2d = Some(match &umap_state {
            Some(state) => {
                umap::layout_2d(state, &reduced, reduced_dim, cfg, &mut |f| clock.report(f))
            }
            None => {
                let flat = pca::pca(&data, dim, 2, 2, cfg.seed);
                flat.chunks_exact(2).map(|c| [c[0], c[1]]).collect()
            }
        });
        timings.push(clock.stop());
    }

    let noise = labels.iter().filter(|&&l| l < 0).count();
    Ok(ClusterResult {
        labels,
        clusters,
        coords_2d,
        reduced,
        reduced_dim,
        timings,
        noise_share: noise as f32 / n as f32,
    })
}

type Reduced = (
    Vec<f32>,
    usize,
    Option<Vec<[f32; 2]>>,
    Option<umap::UmapState>,
);

fn reduce(
    data: &[f32],
    dim: usize,
    cfg: &ClusterConfig,
    clock: &mut StageClock<'_>,
    timings: &mut Vec<StageTiming>,
) -> Result<Reduced, ClusterError> {
    Ok(match &cfg.reduction {
        Reduction::Umap(u) => {
            clock.start(Stage::Knn);
            let n = data.len() / dim;
            let k = (u.n_neighbors - 1).min(n - 1);
            let knn = knn::build_knn(data, dim, k, cfg.seed);
            timings.push(clock.stop());

            clock.start(Stage::Graph);
            let state = umap::prepare(data, dim, &knn, u, cfg.seed);
            drop(knn);
            timings.push(clock.stop());

            clock.start(Stage::Layout);
            let reduced = umap::layout(&state, u, cfg.seed, &mut |f| clock.report(f));
            timings.push(clock.stop());
            (reduced, u.n_components, None, Some(state))
        }
        Reduction::Pca(p) => {
            clock.start(Stage::Pca);
            let reduced = pca::pca(
                data,
                dim,
                p.n_components.min(dim),
                p.power_iterations,
                cfg.seed,
            );
            timings.push(clock.stop());
            let coords = (cfg.layout_2d && p.n_components >= 2).then(|| {
                reduced
                    .chunks_exact(p.n_components.min(dim))
                    .map(|r| [r[0], r[1]])
                    .collect()
            });
            (reduced, p.n_components.min(dim), coords, None)
        }
        Reduction::None => (data.to_vec(), dim, None, None),
    })
}

/// Renumbers clusters 0.. by decreasing size (ties by first appearance); noise stays −1.
fn relabel_by_size(raw: &[i32]) -> (Vec<i32>, usize) {
    let mut counts: std::collections::HashMap<i32, (usize, usize)> =
        std::collections::HashMap::new();
    for (i, &l) in raw.iter().enumerate() {
        if l >= 0 {
            let e = counts.entry(l).or_insert((0, i));
            e.0 += 1;
        }
    }
    let mut order: Vec<(i32, usize, usize)> = counts
        .into_iter()
        .map(|(l, (c, first))| (l, c, first))
        .collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
    let map: std::collections::HashMap<i32, i32> = order
        .iter()
        .enumerate()
        .map(|(new, &(old, _, _))| (old, new as i32))
        .collect();
    (
        raw.iter()
            .map(|l| map.get(l).copied().unwrap_or(-1))
            .collect(),
        order.len(),
    )
}

/// Times stages and forwards progress.
struct StageClock<'a> {
    progress: &'a dyn Fn(Stage, f32),
    current: Option<(Stage, Instant)>,
}

impl<'a> StageClock<'a> {
    fn new(progress: &'a dyn Fn(Stage, f32)) -> Self {
        StageClock {
            progress,
            current: None,
        }
    }

    fn start(&mut self, stage: Stage) {
        (self.progress)(stage, 0.0);
        self.current = Some((stage, Instant::now()));
    }

    fn report(&self, done: f32) {
        if let Some((stage, _)) = self.current {
            (self.progress)(stage, done.clamp(0.0, 1.0));
        }
    }

    fn stop(&mut self) -> StageTiming {
        let (stage, started) = self.current.take().expect("a stage was started");
        (self.progress)(stage, 1.0);
        let timing = StageTiming {
            stage,
            seconds: started.elapsed().as_secs_f64(),
        };
        tracing::debug!(?stage, seconds = timing.seconds, "topic engine stage done");
        timing
    }
}
