//! One regeneration of one facet's map: stored summaries → deterministic sample → clusters →
//! topics with ids carried over from the previous map → `MapChanges`. Naming, storing and
//! publishing are separate steps (see `naming` and `automation`), so this part is pure CPU work
//! over a read transaction and can run on a blocking thread.

use super::calibrate;
use super::config::TopicsConfig;
use super::{MapChanges, Topic, TopicMap};
use crate::cluster::vectors::mix_seed;
use crate::cluster::{
    ClusterConfig, ClusterError, ClusterSnapshot, ClusterSummary, MatchParams, Stage,
    build_clusters, match_clusters, stability_score,
};
use crate::facet::FacetSpec;
use crate::store::StoreError;
use crate::store::facets::FacetRecord;
use crate::store::topics::{self as topic_store, Membership};
use redb::Database;
use std::collections::{HashMap, HashSet};

/// Why a map was not built. None of these is a bug: the automation logs it, counts it, and
/// tries again later.
#[derive(Debug, thiserror::Error)]
pub enum RegenerateError {
    #[error("{found} usable summaries of facet `{facet}` in the window; at least {needed} needed")]
    TooFewFacets {
        facet: String,
        found: usize,
        needed: usize,
    },
    #[error(
        "facet `{facet}` has {records} summaries in the window but none with an embedding of the current model `{model}`"
    )]
    NoEmbeddings {
        facet: String,
        records: usize,
        model: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("clustering failed: {0}")]
    Cluster(#[from] ClusterError),
}

/// Which stored summaries feed a map (the automation's map, or an ad-hoc `cluster` run).
#[derive(Clone, Debug, Default)]
pub struct SampleFilter {
    pub since_ms: u64,
    /// The embedding model the vectors must come from (vectors of two models do not mix).
    pub embedding_model: String,
    /// (field, value) pairs that must all match: `service_name`, `root_span_name`, `user_id`,
    /// `session_id`.
    pub fields: Vec<(String, String)>,
    /// A labelled facet: its sample texts (keywords, exemplars, distinct count) are the reasons
    /// after the label, the text its vectors embed.
    pub labelled: Option<FacetSpec>,
}

impl SampleFilter {
    fn accepts(&self, r: &FacetRecord) -> bool {
        self.fields.iter().all(|(key, value)| {
            let field = match key.as_str() {
                "service_name" => r.service_name.as_deref(),
                "root_span_name" => Some(r.root_span_name.as_str()),
                "user_id" => r.user_id.as_deref(),
                "session_id" => r.session_id.as_deref(),
                _ => None,
            };
            field == Some(value.as_str())
        })
    }
}

/// The filter fields `SampleFilter` understands.
pub const FILTER_FIELDS: [&str; 4] = ["service_name", "root_span_name", "user_id", "session_id"];

/// Summaries chosen for clustering, in a deterministic order.
pub struct Sample {
    pub trace_ids: Vec<[u8; 16]>,
    pub texts: Vec<String>,
    pub vectors: Vec<f32>,
    pub dim: usize,
    /// Usable records before sampling.
    pub available: usize,
}

/// Deterministic per-trace rank: the same trace always sorts the same way, so a regeneration on
/// mostly the same data draws mostly the same sample.
fn sample_rank(trace_id: &[u8; 16], seed: u64) -> u64 {
    let a = u64::from_le_bytes(trace_id[..8].try_into().expect("8 bytes"));
    let b = u64::from_le_bytes(trace_id[8..].try_into().expect("8 bytes"));
    mix_seed(seed, a, b)
}

/// Reads the usable summaries of `facet` (not excluded, embedded by the filter's model) and
/// keeps at most `sample_size`, chosen and ordered by a hash of the trace id.
pub fn load_sample(
    db: &Database,
    facet: &str,
    filter: &SampleFilter,
    sample_size: usize,
    seed: u64,
) -> Result<Sample, RegenerateError> {
    // Records are visited in sample order; only the first `sample_size` usable ones are kept.
    let (mut in_window, mut available) = (0usize, 0usize);
    let mut usable: Vec<FacetRecord> = Vec::new();
    topic_store::visit_ranked(
        db,
        facet,
        filter.since_ms,
        |trace| sample_rank(trace, seed),
        |r| {
            // A labelled answer without a reason carries no vector: its label is its topic.
            if r.excluded || r.embedding.is_empty() {
                return;
            }
            in_window += 1;
            if r.embedding_model != filter.embedding_model || !filter.accepts(&r) {
                return;
            }
            available += 1;
            if usable.len() < sample_size {
                usable.push(r);
            }
        },
    )?;
    if usable.is_empty() && in_window > 0 && filter.fields.is_empty() {
        return Err(RegenerateError::NoEmbeddings {
            facet: facet.into(),
            records: in_window,
            model: filter.embedding_model.clone(),
        });
    }
    // One model gives one dimension; a stray record of another (a reconfigured dimension) is
    // left out rather than failing the map.
    let dim = most_common_dim(&usable);
    usable.retain(|r| r.embedding.len() == dim);
    let mut sample = Sample {
        trace_ids: Vec::with_capacity(usable.len()),
        texts: Vec::with_capacity(usable.len()),
        vectors: Vec::with_capacity(usable.len() * dim),
        dim,
        available,
    };
    for r in usable {
        sample.trace_ids.push(r.trace_id);
        sample.vectors.extend_from_slice(&r.embedding);
        let text = match &filter.labelled {
            Some(spec) => spec.clustered_text(&r.text).unwrap_or(r.text),
            None => r.text,
        };
        sample.texts.push(text);
    }
    Ok(sample)
}

fn most_common_dim(records: &[FacetRecord]) -> usize {
    let mut counts: HashMap<usize, usize> = HashMap::new();
    for r in records {
        *counts.entry(r.embedding.len()).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|&(dim, n)| (n, dim))
        .map_or(0, |(dim, _)| dim)
}

/// A clustered sample: unnamed topics with provisional ids 0.. and every sample point's topic.
#[derive(Debug)]
pub struct Clustered {
    pub topics: Vec<Topic>,
    /// Topic index per sample point, −1 = noise (after outlier reassignment).
    pub labels: Vec<i32>,
    /// Share of the sample the clustering left as noise, before reassignment.
    pub noise_before: f32,
    /// … and after (the share no topic speaks for).
    pub noise_share: f32,
    /// The map's global no-match distance (configured, or learned from the sample).
    pub distance_threshold: f32,
}

/// Clusters a sample into unnamed topics with provisional ids 0.. (largest cluster first),
/// calibrates every topic's threshold on the sample (see `calibrate`), then gives each noise
/// point the topic it would be classified into, if any. Every topic starts with its keyword
/// name (`named == false`).
pub fn cluster_sample(
    sample: &Sample,
    clustering: &ClusterConfig,
    config: &TopicsConfig,
    progress: &dyn Fn(Stage, f32),
) -> Result<Clustered, RegenerateError> {
    let result = build_clusters(
        &sample.vectors,
        sample.dim,
        Some(&sample.texts),
        clustering,
        progress,
    )?;
    let n = sample.texts.len().max(1);
    let data = crate::cluster::vectors::validate_and_normalize(&sample.vectors, sample.dim)?;
    let centroids: Vec<&[f32]> = result
        .clusters
        .iter()
        .map(|c| c.centroid.as_slice())
        .collect();
    let mut labels = result.labels;
    let distances = calibrate::point_distances(&data, sample.dim, &labels, &centroids);
    let quantiles: Vec<_> = result
        .clusters
        .iter()
        .map(|c| c.distance_quantiles.clone())
        .collect();
    let calibration = calibrate::calibrate(&distances, &labels, &quantiles, config);
    let reassigned = calibrate::reassign_outliers(&mut labels, &distances, &calibration);
    let mut sizes = vec![0usize; result.clusters.len()];
    for &l in labels.iter().filter(|&&l| l >= 0) {
        sizes[l as usize] += 1;
    }
    let topics = result
        .clusters
        .iter()
        .zip(&calibration.thresholds)
        .zip(&sizes)
        .map(|((c, &threshold), &size)| topic_of(c, &sample.texts, threshold, size, n))
        .collect();
    Ok(Clustered {
        topics,
        labels,
        noise_before: reassigned.noise_before as f32 / n as f32,
        noise_share: reassigned.noise_after as f32 / n as f32,
        distance_threshold: calibration.distance_threshold,
    })
}

fn topic_of(c: &ClusterSummary, texts: &[String], threshold: f32, size: usize, n: usize) -> Topic {
    let keywords: Vec<String> = c.keywords.iter().map(|(k, _)| k.clone()).collect();
    let mut exemplars: Vec<String> = Vec::new();
    for &i in c.exemplars.iter().chain(&c.diverse_exemplars) {
        if !exemplars.contains(&texts[i]) {
            exemplars.push(texts[i].clone());
        }
    }
    let name = super::naming::keyword_name(&keywords, &exemplars);
    Topic {
        id: c.label as u32,
        description: String::new(),
        name,
        named: false,
        keywords,
        centroid: c.centroid.clone(),
        threshold,
        size,
        share: size as f32 / n as f32,
        exemplars,
    }
}

/// A built, not yet named or stored, map and the sample membership to store with it.
#[derive(Debug)]
pub struct Regenerated {
    pub map: TopicMap,
    pub members: Vec<Membership>,
}

/// Builds the next map of `facet` from the store, matched to the newest stored map (`labelled`:
/// the facet's spec when its answers are labels, so the map works on their reasons).
pub fn regenerate(
    db: &Database,
    facet: &str,
    config: &TopicsConfig,
    embedding_model: &str,
    labelled: Option<&FacetSpec>,
    now_ms: u64,
    progress: &dyn Fn(Stage, f32),
) -> Result<Regenerated, RegenerateError> {
    let filter = SampleFilter {
        since_ms: now_ms.saturating_sub(config.window.get().as_millis() as u64),
        embedding_model: embedding_model.into(),
        fields: Vec::new(),
        labelled: labelled.cloned(),
    };
    let mut clustering = config.clustering.clone();
    // The scatter plot is for interactive runs; the automated map does not need it.
    clustering.layout_2d = false;
    let sample = load_sample(db, facet, &filter, clustering.sample_size, clustering.seed)?;
    let needed = config.min_unique_summaries.max(2);
    let unique = sample.texts.iter().collect::<HashSet<_>>().len();
    if unique < needed {
        return Err(RegenerateError::TooFewFacets {
            facet: facet.into(),
            found: unique,
            needed,
        });
    }
    let Clustered {
        mut topics,
        labels,
        noise_before,
        noise_share,
        distance_threshold,
    } = cluster_sample(&sample, &clustering, config, progress)?;

    let previous = topic_store::latest(db, facet)?;
    let previous_members = match &previous {
        Some(p) => topic_store::members(db, facet, p.version)?,
        None => Vec::new(),
    };
    let next_id = topic_store::next_topic_id(db, facet)?;
    let provisional: Vec<i32> = labels.clone();
    let changes = assign_ids(
        &mut topics,
        &sample.trace_ids,
        &provisional,
        previous.as_ref().filter(|p| {
            // Centroids of another model or dimension are not comparable: start afresh.
            p.embedding_model == embedding_model && p.dim == sample.dim
        }),
        &previous_members,
        next_id,
    );
    let id_of: Vec<u32> = topics.iter().map(|t| t.id).collect();
    let members: Vec<Membership> = sample
        .trace_ids
        .iter()
        .zip(&labels)
        .map(|(&trace, &l)| (trace, if l < 0 { -1 } else { id_of[l as usize] as i32 }))
        .collect();
    let changes = previous.as_ref().map(|p| {
        let mut c = changes;
        c.previous_version = p.version;
        c.stability = stability_score(&previous_members, &members);
        c
    });
    if let Some(p) = &previous {
        carry_names(&mut topics, p);
    }
    Ok(Regenerated {
        map: TopicMap {
            facet: facet.into(),
            version: previous.as_ref().map_or(1, |p| p.version + 1),
            created_ms: now_ms,
            embedding_model: embedding_model.into(),
            dim: sample.dim,
            params: clustering,
            sample: sample.texts.len(),
            noise_share,
            noise_before_reassignment: Some(noise_before),
            distance_threshold,
            topics,
            changes,
        },
        members,
    })
}

/// Gives every topic its stable id: the previous id when it continues a previous topic
/// (centroid similarity and member overlap, one to one), otherwise a fresh id from `next_id`.
/// `labels` are the topics' provisional indices per sample trace.
fn assign_ids(
    topics: &mut [Topic],
    trace_ids: &[[u8; 16]],
    labels: &[i32],
    previous: Option<&TopicMap>,
    previous_members: &[Membership],
    next_id: u32,
) -> MapChanges {
    let mut current_members: Vec<Vec<[u8; 16]>> = vec![Vec::new(); topics.len()];
    for (trace, &l) in trace_ids.iter().zip(labels) {
        if l >= 0 {
            current_members[l as usize].push(*trace);
        }
    }
    let (previous_topics, previous_by_topic) = match previous {
        Some(p) => {
            let mut by_topic: Vec<Vec<[u8; 16]>> = vec![Vec::new(); p.topics.len()];
            let index: HashMap<i32, usize> = p
                .topics
                .iter()
                .enumerate()
                .map(|(i, t)| (t.id as i32, i))
                .collect();
            for (trace, id) in previous_members {
                if let Some(&i) = index.get(id) {
                    by_topic[i].push(*trace);
                }
            }
            (p.topics.as_slice(), by_topic)
        }
        None => (&[][..], Vec::new()),
    };
    let before: Vec<ClusterSnapshot<'_, [u8; 16]>> = previous_topics
        .iter()
        .zip(&previous_by_topic)
        .map(|(t, m)| ClusterSnapshot {
            centroid: &t.centroid,
            members: m,
        })
        .collect();
    let now: Vec<ClusterSnapshot<'_, [u8; 16]>> = topics
        .iter()
        .zip(&current_members)
        .map(|(t, m)| ClusterSnapshot {
            centroid: &t.centroid,
            members: m,
        })
        .collect();
    let outcome = match_clusters(&before, &now, &MatchParams::default());
    let mut next = next_id.max(previous_topics.iter().map(|t| t.id + 1).max().unwrap_or(0));
    let mut ids = vec![0u32; topics.len()];
    for (current, id) in ids.iter_mut().enumerate() {
        *id = match outcome.kept_previous(current) {
            Some(p) => previous_topics[p].id,
            None => {
                next += 1;
                next - 1
            }
        };
    }
    for (topic, &id) in topics.iter_mut().zip(&ids) {
        topic.id = id;
    }
    let mut changes = MapChanges {
        kept: outcome.kept.iter().map(|k| ids[k.current]).collect(),
        split: outcome
            .splits
            .iter()
            .map(|s| (ids[s.current], previous_topics[s.from_previous].id))
            .collect(),
        merged: outcome
            .merges
            .iter()
            .map(|m| (previous_topics[m.previous].id, ids[m.into_current]))
            .collect(),
        new: outcome.new.iter().map(|&c| ids[c]).collect(),
        retired: outcome
            .retired
            .iter()
            .map(|&p| previous_topics[p].id)
            .collect(),
        ..Default::default()
    };
    changes.kept.sort_unstable();
    changes.new.sort_unstable();
    changes.retired.sort_unstable();
    changes
}

/// A kept topic starts with its previous name, so a failed naming call leaves it named.
fn carry_names(topics: &mut [Topic], previous: &TopicMap) {
    for topic in topics {
        if let Some(p) = previous.topics.iter().find(|p| p.id == topic.id) {
            topic.name = p.name.clone();
            topic.description = p.description.clone();
            topic.named = p.named;
        }
    }
}

#[cfg(test)]
#[path = "regenerate_tests.rs"]
mod tests;
