//! How the topic map is built: the `clustering` settings a user can put in the YAML file.
//!
//! Every field has a default, so an empty section builds a map with UMAP (5-d, cosine) and
//! HDBSCAN, the combination that recovered topics best in our measurements.

use super::ClusterError;
use serde::{Deserialize, Serialize};

/// Settings for building a topic map from embeddings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Most embeddings used to build one map. Larger inputs are rejected; sample first (the rest
    /// are classified against the map's centroids). Default 50,000.
    pub sample_size: usize,
    /// How embeddings are reduced before clustering: `umap` (default), `pca` or `none`.
    pub reduction: Reduction,
    /// The clustering algorithm: `hdbscan` (default), `kmeans` or `agglomerative`.
    pub algorithm: Algorithm,
    /// What is computed for every cluster (exemplars, keywords).
    pub summary: SummaryConfig,
    /// Also compute 2-D coordinates of every point for a scatter plot. Default true.
    pub layout_2d: bool,
    /// Seed for every random choice: the same input and seed give the same map. Default 42.
    pub seed: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            sample_size: 50_000,
            reduction: Reduction::default(),
            algorithm: Algorithm::default(),
            summary: SummaryConfig::default(),
            layout_2d: true,
            seed: 42,
        }
    }
}

/// Dimension reduction before clustering.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Reduction {
    /// UMAP on the cosine kNN graph (default): keeps local neighbourhoods, so density-based
    /// clustering finds topics of very different sizes.
    Umap(UmapConfig),
    /// Principal component analysis: fast, but merges nearby topics.
    Pca(PcaConfig),
    /// Cluster the raw embeddings (only sensible with `kmeans` or `agglomerative`).
    None,
}

impl Default for Reduction {
    fn default() -> Self {
        Reduction::Umap(UmapConfig::default())
    }
}

/// UMAP parameters (names and defaults as in umap-learn, except `min_dist` 0 for clustering).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UmapConfig {
    /// Neighbours per point, counting the point itself as umap-learn does. Default 15.
    pub n_neighbors: usize,
    /// Dimensions of the reduced space that is clustered. Default 5.
    pub n_components: usize,
    /// How tightly points may pack in the reduced space; 0 suits clustering. Default 0.0.
    pub min_dist: f32,
    /// Scale of the embedded points. Default 1.0.
    pub spread: f32,
    /// SGD epochs. Default: 500 up to 10,000 points (as umap-learn), 100 above. Measured on 50k
    /// points, 100 epochs lose almost no quality (clean ARI 0.998 vs 0.9996 in umap-learn) and
    /// halve the layout, the largest cost; small inputs are cheap, so they get umap-learn's count.
    pub n_epochs: Option<usize>,
    /// Random points pushed away per positive sample. Default 5.
    pub negative_sample_rate: usize,
    /// Initial SGD learning rate. Default 1.0.
    pub learning_rate: f32,
    /// Weight of the repulsive force. Default 1.0.
    pub repulsion_strength: f32,
}

impl UmapConfig {
    /// Epochs used for `n` points (the configured value, or the size-based default).
    pub fn epochs_for(&self, n: usize) -> usize {
        self.n_epochs.unwrap_or(if n <= 10_000 { 500 } else { 100 })
    }
}

impl Default for UmapConfig {
    fn default() -> Self {
        UmapConfig {
            n_neighbors: 15,
            n_components: 5,
            min_dist: 0.0,
            spread: 1.0,
            n_epochs: None,
            negative_sample_rate: 5,
            learning_rate: 1.0,
            repulsion_strength: 1.0,
        }
    }
}

/// PCA parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PcaConfig {
    /// Principal components kept. Default 5.
    pub n_components: usize,
    /// Power iterations of the randomized solver (more = more accurate). Default 3.
    pub power_iterations: usize,
}

impl Default for PcaConfig {
    fn default() -> Self {
        PcaConfig {
            n_components: 5,
            power_iterations: 3,
        }
    }
}

/// Clustering algorithm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Algorithm {
    /// Density-based clustering with a noise label; finds the number of topics itself (default).
    Hdbscan(HdbscanConfig),
    /// K-Means with k-means++ start: exactly `k` clusters, no noise.
    Kmeans(KmeansConfig),
    /// Agglomerative (Ward or average linkage) over k-means micro-clusters: exactly `k`
    /// clusters, no noise.
    Agglomerative(AgglomerativeConfig),
}

impl Default for Algorithm {
    fn default() -> Self {
        Algorithm::Hdbscan(HdbscanConfig::default())
    }
}

/// HDBSCAN parameters (as in scikit-learn / hdbscan).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HdbscanConfig {
    /// Smallest group of traces that counts as a topic. Default: 1 % of the sample, at least 10
    /// and at most 100 (10 up to 1,000 summaries, 50 at 5,000, 100 from 10,000). A fixed size
    /// cannot serve 800 and 50,000 summaries alike: as the sample grows, one intent breaks into
    /// ever more small dense pockets (phrasings), each big enough to pass a fixed size. Tuned on
    /// the HWU64 intent corpus (e5-small embeddings, 64 intents): at 11k utterances
    /// `min_cluster_size` 10 gave 211 topics and ARI 0.17, 100 gave 39 topics and ARI 0.46
    /// (50: 0.43); on a 30-per-intent subsample (1,920) 1 % and 10 scored alike (0.44). On
    /// generated traffic (12 intents × 16 phrasings, 4,000 traces) 1 % gave 41 topics, 0.5 %
    /// 120, a fixed 10 about 190. The cap keeps topics of a few hundred traces at 50,000 (the
    /// cluster benchmark's smallest topic, 268 traces, vanished at 1 % = 500). Traffic with more
    /// than ~100 equally common intents should set this explicitly (e.g. 10).
    pub min_cluster_size: Option<usize>,
    /// Neighbours used to estimate density; higher = more points called noise. Default 5 (never
    /// above `min_cluster_size`). Tying it to `min_cluster_size`, as HDBSCAN does, made large
    /// minimum sizes call 10–17 % of the traces noise; 5 kept the topics and halved the noise on
    /// HWU64 (9.5 % vs 13.8 % at `min_cluster_size` 50).
    pub min_samples: Option<usize>,
    /// `eom` (excess of mass, default: fewer, larger topics) or `leaf` (finest topics).
    pub cluster_selection: ClusterSelection,
    /// Clusters closer than this (in the reduced space) are merged. Default 0.0.
    pub cluster_selection_epsilon: f64,
}

impl HdbscanConfig {
    /// `min_cluster_size` for a sample of `n` points: the configured value, or the size-based
    /// default.
    pub fn min_cluster_size_for(&self, n: usize) -> usize {
        self.min_cluster_size
            .unwrap_or_else(|| default_min_cluster_size(n))
    }

    /// `min_samples` for a sample of `n` points: the configured value, or the size-based default
    /// (never above the cluster size in use).
    pub fn min_samples_for(&self, n: usize) -> usize {
        let size = self.min_cluster_size_for(n);
        self.min_samples
            .unwrap_or_else(|| default_min_samples(size))
            .min(size.max(1))
            .max(1)
    }
}

/// The default `min_cluster_size` for a sample of `n` points: 1 % of it, within 10..=100.
pub fn default_min_cluster_size(n: usize) -> usize {
    (n / 100).clamp(10, 100)
}

/// The default `min_samples`: 5, or `min_cluster_size` when that is smaller.
pub fn default_min_samples(min_cluster_size: usize) -> usize {
    5.min(min_cluster_size)
}

impl Default for HdbscanConfig {
    fn default() -> Self {
        HdbscanConfig {
            min_cluster_size: None,
            min_samples: None,
            cluster_selection: ClusterSelection::Eom,
            cluster_selection_epsilon: 0.0,
        }
    }
}

/// How HDBSCAN picks clusters from its hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterSelection {
    /// Excess of mass.
    Eom,
    /// Leaves of the condensed tree.
    Leaf,
}

/// K-Means parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KmeansConfig {
    /// Number of clusters (at least 2). Default 40.
    pub k: usize,
    /// Most Lloyd iterations. Default 100.
    pub max_iterations: usize,
    /// Stop when no centre moves more than this (Euclidean, in the clustered space). Default 1e-4.
    pub tolerance: f32,
}

impl Default for KmeansConfig {
    fn default() -> Self {
        KmeansConfig {
            k: 40,
            max_iterations: 100,
            tolerance: 1e-4,
        }
    }
}

/// Agglomerative clustering parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgglomerativeConfig {
    /// Number of clusters (at least 2). Default 40.
    pub k: usize,
    /// `ward` (default: compact clusters) or `average`.
    pub linkage: Linkage,
    /// K-means micro-clusters that are merged (never an n² matrix of all points). Default 500.
    pub micro_clusters: usize,
}

impl Default for AgglomerativeConfig {
    fn default() -> Self {
        AgglomerativeConfig {
            k: 40,
            linkage: Linkage::Ward,
            micro_clusters: 500,
        }
    }
}

/// Linkage criterion of agglomerative clustering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Linkage {
    /// Merge the pair that least increases within-cluster variance.
    Ward,
    /// Merge the pair with the smallest mean distance between their centres.
    Average,
}

/// What is computed per cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SummaryConfig {
    /// Members nearest the centroid listed as exemplars. Default 5.
    pub exemplars: usize,
    /// Extra exemplars chosen to be far from each other (farthest-point sampling). Default 3.
    pub diverse_exemplars: usize,
    /// c-TF-IDF keywords per cluster (needs texts). Default 10.
    pub keywords: usize,
}

impl Default for SummaryConfig {
    fn default() -> Self {
        SummaryConfig {
            exemplars: 5,
            diverse_exemplars: 3,
            keywords: 10,
        }
    }
}

impl ClusterConfig {
    /// Checks parameter ranges; the error names the offending setting.
    pub fn validate(&self) -> Result<(), ClusterError> {
        let bad = |msg: String| Err(ClusterError::InvalidConfig(msg));
        if self.sample_size < 2 {
            return bad(format!(
                "sample_size must be at least 2, got {}",
                self.sample_size
            ));
        }
        match &self.reduction {
            Reduction::Umap(u) => {
                if u.n_neighbors < 2 {
                    return bad(format!(
                        "reduction.n_neighbors must be at least 2, got {}",
                        u.n_neighbors
                    ));
                }
                if u.n_components < 1 {
                    return bad("reduction.n_components must be at least 1".into());
                }
                if !(u.min_dist >= 0.0 && u.spread > 0.0 && u.min_dist <= u.spread) {
                    return bad(format!(
                        "reduction.min_dist must be in [0, spread] and spread > 0, got min_dist {} spread {}",
                        u.min_dist, u.spread
                    ));
                }
                if u.n_epochs == Some(0) {
                    return bad("reduction.n_epochs must be at least 1".into());
                }
                if !(u.learning_rate > 0.0 && u.repulsion_strength >= 0.0) {
                    return bad(
                        "reduction.learning_rate must be > 0 and repulsion_strength ≥ 0".into(),
                    );
                }
            }
            Reduction::Pca(p) => {
                if p.n_components < 1 {
                    return bad("reduction.n_components must be at least 1".into());
                }
            }
            Reduction::None => {}
        }
        match &self.algorithm {
            Algorithm::Hdbscan(h) => {
                if let Some(size) = h.min_cluster_size
                    && size < 2
                {
                    return bad(format!(
                        "algorithm.min_cluster_size must be at least 2, got {size}"
                    ));
                }
                if h.min_samples == Some(0) {
                    return bad("algorithm.min_samples must be at least 1".into());
                }
                if !(h.cluster_selection_epsilon >= 0.0) {
                    return bad("algorithm.cluster_selection_epsilon must be ≥ 0".into());
                }
            }
            Algorithm::Kmeans(k) => {
                if k.k < 2 {
                    return bad(format!("algorithm.k must be at least 2, got {}", k.k));
                }
                if k.max_iterations < 1 {
                    return bad("algorithm.max_iterations must be at least 1".into());
                }
            }
            Algorithm::Agglomerative(a) => {
                if a.k < 2 {
                    return bad(format!("algorithm.k must be at least 2, got {}", a.k));
                }
                if a.micro_clusters < a.k {
                    return bad(format!(
                        "algorithm.micro_clusters ({}) must be at least k ({})",
                        a.micro_clusters, a.k
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hdbscan_defaults_scale_with_the_sample_and_explicit_values_win() {
        let h = HdbscanConfig::default();
        assert_eq!(h.min_cluster_size_for(300), 10);
        assert_eq!(h.min_cluster_size_for(5_000), 50);
        assert_eq!(h.min_cluster_size_for(50_000), 100);
        assert_eq!(h.min_samples_for(50_000), 5);
        let fixed = HdbscanConfig {
            min_cluster_size: Some(3),
            min_samples: None,
            ..HdbscanConfig::default()
        };
        assert_eq!(fixed.min_cluster_size_for(50_000), 3);
        assert_eq!(
            fixed.min_samples_for(50_000),
            3,
            "never above the cluster size"
        );
        let parsed: HdbscanConfig = serde_yaml_ng::from_str("min_cluster_size: 15").unwrap();
        assert_eq!(parsed.min_cluster_size, Some(15));
        assert!(
            ClusterConfig {
                algorithm: Algorithm::Hdbscan(HdbscanConfig {
                    min_cluster_size: Some(1),
                    ..HdbscanConfig::default()
                }),
                ..ClusterConfig::default()
            }
            .validate()
            .is_err()
        );
    }
}
