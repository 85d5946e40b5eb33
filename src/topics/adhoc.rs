//! Ad-hoc clustering (`tracetopics cluster`, `POST /cluster`): a filtered subset of stored
//! summaries clustered with the map settings (optionally another algorithm), named, and returned
//! as a ranked report. Never stored and never published.

use super::TopicMap;
use super::naming::{Namer, name_topics};
use super::regenerate::{FILTER_FIELDS, SampleFilter, cluster_sample, load_sample};
use crate::cluster::{AgglomerativeConfig, Algorithm, KmeansConfig, Stage};
use crate::config::Config;
use crate::config::types::HumanDuration;
use redb::Database;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::collections::HashSet;

/// What to cluster: the CLI's options as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterRequest {
    pub facet: String,
    /// Summaries of the last `since`. Default `24h`.
    pub since: HumanDuration,
    /// Trace fields that must match: `service_name`, `root_span_name`, `user_id`, `session_id`.
    pub filters: BTreeMap<String, String>,
    /// `hdbscan`, `kmeans` or `agglomerative`; default: the `topics.clustering` algorithm.
    pub algorithm: Option<String>,
    /// Clusters for `kmeans` / `agglomerative`.
    pub k: Option<usize>,
    /// Summaries shown per topic in the report. Default 3.
    pub samples: usize,
}

impl Default for ClusterRequest {
    fn default() -> Self {
        ClusterRequest {
            facet: String::new(),
            since: HumanDuration::from_secs(24 * 3600),
            filters: BTreeMap::new(),
            algorithm: None,
            k: None,
            samples: 3,
        }
    }
}

/// One topic of the report, ranked by share.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportTopic {
    pub rank: usize,
    pub name: String,
    pub named: bool,
    pub share: f32,
    pub size: usize,
    pub keywords: Vec<String>,
    pub samples: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterReport {
    pub facet: String,
    /// Summaries that matched the filters.
    pub matched: usize,
    /// Summaries clustered (at most `topics.clustering.sample_size`).
    pub sample: usize,
    /// Share of the sample no topic speaks for (after outlier reassignment).
    pub noise_share: f32,
    /// Share the clustering left as noise, before outlier reassignment.
    #[serde(default)]
    pub noise_before_reassignment: Option<f32>,
    pub topics: Vec<ReportTopic>,
}

/// Checks the request against the configuration; returns the clustering settings to use.
pub fn plan(
    config: &Config,
    request: &ClusterRequest,
) -> Result<crate::cluster::ClusterConfig, String> {
    if request.facet.trim().is_empty() {
        return Err("give the facet to cluster (--facet NAME)".into());
    }
    for key in request.filters.keys() {
        if !FILTER_FIELDS.contains(&key.as_str()) {
            return Err(format!(
                "cannot filter on `{key}`; use one of {}",
                FILTER_FIELDS.join(", ")
            ));
        }
    }
    let mut clustering = config.topics.clustering.clone();
    clustering.layout_2d = false;
    // `--k` alone means k-means.
    let algorithm = request.algorithm.as_deref().or(request.k.map(|_| "kmeans"));
    match algorithm {
        None => {}
        Some("hdbscan") => {
            if request.k.is_some() {
                return Err("--k applies to kmeans and agglomerative, not hdbscan".into());
            }
            if !matches!(clustering.algorithm, Algorithm::Hdbscan(_)) {
                clustering.algorithm = Algorithm::default();
            }
        }
        Some("kmeans") => {
            clustering.algorithm = Algorithm::Kmeans(KmeansConfig {
                k: request.k.unwrap_or(KmeansConfig::default().k),
                ..KmeansConfig::default()
            })
        }
        Some("agglomerative") => {
            clustering.algorithm = Algorithm::Agglomerative(AgglomerativeConfig {
                k: request.k.unwrap_or(AgglomerativeConfig::default().k),
                ..AgglomerativeConfig::default()
            })
        }
        Some(other) => {
            return Err(format!(
                "unknown algorithm `{other}`; use hdbscan, kmeans or agglomerative"
            ));
        }
    }
    clustering.validate().map_err(|e| e.to_string())?;
    Ok(clustering)
}

/// Samples and clusters (CPU-heavy; run it off the async runtime). The map is unnamed (keyword
/// names) and has version 0.
pub fn cluster(
    db: &Database,
    config: &Config,
    request: &ClusterRequest,
    now_ms: u64,
    progress: &dyn Fn(&str, f32),
) -> Result<(TopicMap, usize), String> {
    let clustering = plan(config, request)?;
    let embedding_model = crate::embed::Embedder::new(&config.models.embeddings)?.model_id();
    let filter = SampleFilter {
        since_ms: now_ms.saturating_sub(request.since.get().as_millis() as u64),
        embedding_model: embedding_model.clone(),
        fields: request
            .filters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        labelled: super::labels::labelled_specs(config)
            .into_iter()
            .find(|s| s.name == request.facet),
    };
    progress("reading summaries", 0.0);
    let sample = load_sample(
        db,
        &request.facet,
        &filter,
        clustering.sample_size,
        clustering.seed,
    )
    .map_err(|e| e.to_string())?;
    let unique = sample.texts.iter().collect::<HashSet<_>>().len();
    if unique < 2 {
        return Err(format!(
            "{} summaries of facet `{}` in the last {} match; at least 2 distinct ones are needed",
            sample.texts.len(),
            request.facet,
            humantime::format_duration(request.since.get())
        ));
    }
    let clustered = cluster_sample(&sample, &clustering, &config.topics, &|stage, done| {
        progress(stage_name(stage), done)
    })
    .map_err(|e| e.to_string())?;
    let map = TopicMap {
        facet: request.facet.clone(),
        version: 0,
        created_ms: now_ms,
        embedding_model,
        dim: sample.dim,
        params: clustering,
        sample: sample.texts.len(),
        noise_share: clustered.noise_share,
        noise_before_reassignment: Some(clustered.noise_before),
        distance_threshold: clustered.distance_threshold,
        topics: clustered.topics,
        changes: None,
    };
    Ok((map, sample.available))
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Validate => "checking vectors",
        Stage::Knn => "neighbour graph",
        Stage::Graph => "fuzzy graph",
        Stage::Layout => "UMAP layout",
        Stage::Pca => "PCA",
        Stage::Cluster => "clustering",
        Stage::Summaries => "cluster summaries",
        Stage::Keywords => "keywords",
        Stage::Layout2d => "2-D layout",
    }
}

/// Names the ad-hoc topics with `models.naming` (keyword names if it fails).
pub async fn name(config: &Config, map: &mut TopicMap) -> Result<(), String> {
    let namer = Namer::new(&config.models.naming)?;
    name_topics(&namer, map, &config.topics.naming, None).await;
    Ok(())
}

/// The ranked report of a named ad-hoc map.
pub fn report(map: &TopicMap, matched: usize, samples: usize) -> ClusterReport {
    let mut topics: Vec<&super::Topic> = map.topics.iter().collect();
    topics.sort_by(|a, b| b.size.cmp(&a.size).then(a.id.cmp(&b.id)));
    ClusterReport {
        facet: map.facet.clone(),
        matched,
        sample: map.sample,
        noise_share: map.noise_share,
        noise_before_reassignment: map.noise_before_reassignment,
        topics: topics
            .iter()
            .enumerate()
            .map(|(i, t)| ReportTopic {
                rank: i + 1,
                name: t.name.clone(),
                named: t.named,
                share: t.share,
                size: t.size,
                keywords: t.keywords.iter().take(5).cloned().collect(),
                samples: t.exemplars.iter().take(samples).cloned().collect(),
            })
            .collect(),
    }
}

/// The report as a text table: rank, share, size, name, keywords, then sample summaries.
pub fn render(report: &ClusterReport) -> String {
    let mut out = format!(
        "facet `{}`: {} summaries matched, {} clustered, {} topics, {:.1}% noise",
        report.facet,
        report.matched,
        report.sample,
        report.topics.len(),
        report.noise_share * 100.0
    );
    if let Some(before) = report.noise_before_reassignment {
        out.push_str(&format!(
            " ({:.1}% before outlier reassignment)",
            before * 100.0
        ));
    }
    out.push_str("\n\n");
    out.push_str(&format!(
        "{:>4}  {:>6}  {:>6}  {:<40}  {}\n",
        "#", "share", "size", "name", "keywords"
    ));
    for t in &report.topics {
        out.push_str(&format!(
            "{:>4}  {:>5.1}%  {:>6}  {:<40}  {}\n",
            t.rank,
            t.share * 100.0,
            t.size,
            truncate(&t.name, 40),
            t.keywords.join(", ")
        ));
        for s in &t.samples {
            out.push_str(&format!("{:>20}  - {}\n", "", truncate(s, 100)));
        }
    }
    out
}

pub fn truncate(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}
