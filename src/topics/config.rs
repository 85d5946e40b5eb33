//! `topics:` — when and how every facet's topic map is (re)built, named and served.

use crate::cluster::ClusterConfig;
use crate::config::types::{Endpoint, HumanDuration};
use serde::{Deserialize, Serialize};

/// `topics:` — automatic topic maps. Once a facet has enough faceted traces, its stored
/// summaries are clustered into topics, the topics are named by `models.naming`, and new traces
/// are classified against the map. The map is rebuilt every `regenerate_every`; topics that
/// continue a previous topic keep its id.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    /// Build topic maps automatically. Default true.
    pub enabled: bool,
    /// How a map is built: reduction, algorithm, sample size, seed (see the clustering docs).
    pub clustering: ClusterConfig,
    /// The first map of a facet is built once this many traces were faceted. Default 400.
    pub min_traces: usize,
    /// … and once the stored summaries hold this many distinct texts. Default 100.
    pub min_unique_summaries: usize,
    /// Rebuild every map this often (or on demand: `tracetopics topics regenerate`). Default `24h`.
    pub regenerate_every: HumanDuration,
    /// Which stored facet summaries feed a map: those of the last `window`. Default `7d`.
    pub window: HumanDuration,
    /// Map versions kept per facet (older ones are deleted). Default 10.
    pub history: usize,
    /// Cosine distance (1 − cos) beyond which a trace is `no_match` whatever its nearest topic.
    /// Unset (default): learned from each map, as the distance within which 99 % of the map's
    /// clustered traces lie from their own topic's centroid, so it suits any embedding model (a
    /// fixed number does not: unrelated texts sit at ~0.2 with e5, ~0.9 with the builtin
    /// n-grams). Set a number to fix it instead (the former default was 0.8).
    pub distance_threshold: Option<f32>,
    /// How each topic's own threshold is set (default: calibrated on the map's sample), always
    /// capped by the global `distance_threshold`.
    pub topic_threshold: TopicThresholdConfig,
    /// How topics are named.
    pub naming: NamingConfig,
    /// The local admin HTTP endpoint (`GET /topics`, `POST /topics/{facet}/regenerate`,
    /// `POST /cluster`) the CLI talks to.
    pub admin: AdminConfig,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            enabled: true,
            clustering: ClusterConfig::default(),
            min_traces: 400,
            min_unique_summaries: 100,
            regenerate_every: HumanDuration::from_secs(24 * 3600),
            window: HumanDuration::from_secs(7 * 24 * 3600),
            history: 10,
            distance_threshold: None,
            topic_threshold: TopicThresholdConfig::default(),
            naming: NamingConfig::default(),
            admin: AdminConfig::default(),
        }
    }
}

/// `topics.topic_threshold:` — the distance from its centroid beyond which a trace is not this
/// topic. `calibrated` (default) learns it from the sample without labels: it separates the
/// topic's members from its *stand-ins*, the members of other topics that would fall to it if
/// their own topic did not exist (what a trace of an unseen intent looks like to it), weighing a
/// missed member `member_weight` times an accepted stand-in. Topics that nothing else falls to,
/// and the `quantile` method, use `quantile of the members' distances × margin`.
/// Either way at least `floor` (when set) and at most `distance_threshold`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicThresholdConfig {
    /// `calibrated` (default) or `quantile`.
    pub method: ThresholdMethod,
    /// How much worse a missed member is than an accepted stand-in (calibrated method). Higher
    /// accepts more of a topic's own traces and rejects fewer unseen ones. Default 5, chosen on
    /// HWU64 intents with e5 embeddings (`bench/calibration.rs`): ~10 % of a seen intent's new
    /// traces fall outside its topic and ~40 % of an unseen intent's are rejected; 3 rejects
    /// more of both, 8 fewer.
    pub member_weight: f32,
    /// `p50`, `p90`, `p95` (default), `p99` or `max` of the members' distance to the centroid.
    pub quantile: ThresholdQuantile,
    /// Multiplies the quantile, so members slightly beyond it still match. Default 1.2.
    pub margin: f32,
    /// The smallest threshold a topic gets, as a cosine distance. Unset by default: a fixed
    /// number means different things per embedding model (the former default 0.1 let most e5
    /// topics accept their neighbours' traces).
    pub floor: Option<f32>,
}

impl Default for TopicThresholdConfig {
    fn default() -> Self {
        TopicThresholdConfig {
            method: ThresholdMethod::Calibrated,
            member_weight: 5.0,
            quantile: ThresholdQuantile::P95,
            margin: 1.2,
            floor: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdMethod {
    /// Members against stand-ins (see `TopicThresholdConfig`).
    #[default]
    Calibrated,
    /// The members' distance quantile × margin.
    Quantile,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdQuantile {
    P50,
    P90,
    P95,
    P99,
    Max,
}

impl TopicThresholdConfig {
    /// `quantile × margin` of a topic with these member-distance quantiles (no floor or cap).
    pub fn quantile_threshold(&self, q: &crate::cluster::DistanceQuantiles) -> f32 {
        let base = match self.quantile {
            ThresholdQuantile::P50 => q.p50,
            ThresholdQuantile::P90 => q.p90,
            ThresholdQuantile::P95 => q.p95,
            ThresholdQuantile::P99 => q.p99,
            ThresholdQuantile::Max => q.max,
        };
        base * self.margin
    }

    /// The quantile rule with its floor and the global cap.
    pub fn threshold(&self, q: &crate::cluster::DistanceQuantiles, global: f32) -> f32 {
        self.quantile_threshold(q)
            .max(self.floor.unwrap_or(0.0))
            .min(global)
    }
}

/// `topics.naming:` — one call to `models.naming` names several topics at once, each shown with
/// its keywords, its most typical summaries, and summaries of its nearest neighbours as contrast.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamingConfig {
    /// Topics named per model call. Default 15.
    pub batch_size: usize,
    /// Summaries shown per topic. Default 5.
    pub exemplars: usize,
    /// Summaries of each topic's nearest other topic shown as contrast. Default 2.
    pub contrast_exemplars: usize,
}

impl Default for NamingConfig {
    fn default() -> Self {
        NamingConfig {
            batch_size: 15,
            exemplars: 5,
            contrast_exemplars: 2,
        }
    }
}

/// `topics.admin:` — local control endpoint. It has no authentication: keep it on localhost.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Default `127.0.0.1:13134` (loopback only).
    pub endpoint: Endpoint,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            endpoint: Endpoint::new("127.0.0.1", 13134),
        }
    }
}

impl TopicsConfig {
    /// Problems as (YAML path under `topics.`, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut bad =
            |path: &str, message: &str| out.push((format!("topics.{path}"), message.into()));
        if let Err(e) = self.clustering.validate() {
            bad("clustering", &e.to_string());
        }
        if self.min_traces == 0 {
            bad("min_traces", "must be at least 1");
        }
        if self.min_unique_summaries < 2 {
            bad("min_unique_summaries", "must be at least 2");
        }
        if self.regenerate_every.get() < std::time::Duration::from_secs(60) {
            bad("regenerate_every", "must be at least 1m");
        }
        if self.window.get().is_zero() {
            bad("window", "must be greater than 0");
        }
        if self.history == 0 {
            bad("history", "must be at least 1");
        }
        if let Some(t) = self.distance_threshold
            && !(t > 0.0 && t <= 2.0)
        {
            bad("distance_threshold", "must be in (0, 2] (cosine distance)");
        }
        if !(self.topic_threshold.margin > 0.0) {
            bad("topic_threshold.margin", "must be greater than 0");
        }
        if !(self.topic_threshold.member_weight > 0.0
            && self.topic_threshold.member_weight.is_finite())
        {
            bad(
                "topic_threshold.member_weight",
                "must be a number greater than 0",
            );
        }
        if let Some(floor) = self.topic_threshold.floor
            && !(0.0..=2.0).contains(&floor)
        {
            bad(
                "topic_threshold.floor",
                "must be in [0, 2] (cosine distance)",
            );
        }
        if !(1..=50).contains(&self.naming.batch_size) {
            bad("naming.batch_size", "must be between 1 and 50");
        }
        if self.naming.exemplars == 0 {
            bad("naming.exemplars", "must be at least 1");
        }
        out
    }
}
