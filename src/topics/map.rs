//! The topic map: what one regeneration of one facet produced, and what every new trace of that
//! facet is classified against. Cluster ids are stable across regenerations (see `identity`);
//! names and descriptions may drift.

use crate::cluster::ClusterConfig;
use serde::{Deserialize, Serialize};

/// One topic (cluster) of a map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Topic {
    /// Stable id: a cluster matched to one of the previous map keeps that cluster's id.
    pub id: u32,
    /// Short name (≤ 6 words), from the naming model or, offline, from the top keywords.
    pub name: String,
    /// One sentence.
    pub description: String,
    /// False while the name is the keyword fallback and naming is still to be retried.
    pub named: bool,
    /// c-TF-IDF keywords, best first.
    pub keywords: Vec<String>,
    /// Unit-length centroid in the embedding space (not the reduced space).
    #[serde(skip)]
    pub centroid: Vec<f32>,
    /// Cosine distance (1 − cos) beyond which a trace is not this topic, from the members'
    /// distance quantiles.
    pub threshold: f32,
    /// Members in the sample the map was built from.
    pub size: usize,
    /// `size` over the sample size (noise included).
    pub share: f32,
    /// Member summaries nearest the centroid, then diverse ones.
    pub exemplars: Vec<String>,
}

/// How a regeneration related to the previous map, by stable topic id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MapChanges {
    pub previous_version: u64,
    /// Ids carried over from the previous map.
    pub kept: Vec<u32>,
    /// (new id, previous id it split from).
    pub split: Vec<(u32, u32)>,
    /// (previous id, id it merged into).
    pub merged: Vec<(u32, u32)>,
    /// Ids that did not exist before.
    pub new: Vec<u32>,
    /// Previous ids with no successor.
    pub retired: Vec<u32>,
    /// How alike the two maps group the traces both samples share: the adjusted Rand index of
    /// their topic assignments (noise counted as one group). 1 = the same grouping, 0 = no more
    /// alike than chance; `None` when the samples share fewer than two traces.
    pub stability: Option<f64>,
}

/// One regeneration of one facet's topics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicMap {
    pub facet: String,
    /// 1, 2, … per facet.
    pub version: u64,
    pub created_ms: u64,
    /// The embedding model the centroids live in; a trace embedded by another model is not
    /// classified against this map.
    pub embedding_model: String,
    pub dim: usize,
    /// The clustering settings used.
    pub params: ClusterConfig,
    /// Facet records clustered (the sample).
    pub sample: usize,
    /// Share of the sample no topic speaks for: left as noise by the clustering and not within
    /// any topic's threshold either.
    pub noise_share: f32,
    /// Share the clustering left as noise, before noise points within a topic's threshold were
    /// given that topic (`None` for maps built before outlier reassignment existed).
    #[serde(default)]
    pub noise_before_reassignment: Option<f32>,
    /// Global cosine distance beyond which a trace is `no_match` whatever the topic (configured,
    /// or learned from the sample: see `topics.distance_threshold`).
    pub distance_threshold: f32,
    pub topics: Vec<Topic>,
    /// None for a facet's first map.
    pub changes: Option<MapChanges>,
}
