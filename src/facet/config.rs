use crate::config::types::HumanDuration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `facets:` — what is asked of every trace, in one model call.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FacetsConfig {
    /// Built-in facets to extract: any of `task`, `sentiment`, `issues`. Default all three.
    #[serde(default = "default_builtin")]
    pub builtin: Vec<String>,
    /// Your own facets, asked in the same call.
    #[serde(default)]
    pub custom: Vec<CustomFacet>,
    /// Share of traces faceted, chosen deterministically by trace id. Default 1.0.
    #[serde(default = "one")]
    pub sampling_rate: f64,
    /// Only traces whose attribute (resource or root span, e.g. `service.name`) has one of
    /// these values are faceted. Empty = all.
    #[serde(default)]
    pub include: BTreeMap<String, Vec<String>>,
    /// Traces whose attribute has one of these values are never faceted (e.g. sensitive routes).
    #[serde(default)]
    pub exclude: BTreeMap<String, Vec<String>>,
    /// Traces whose preprocessed text is shorter than this many characters are not faceted.
    /// Default 20.
    #[serde(default = "default_min_chars")]
    pub min_content_chars: usize,
    /// Most facet calls in flight at once. Default 4.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// First wait before a trace whose facet call failed (model down, garbage after retries)
    /// is tried again; doubles per failure up to 5 minutes. Default `5s`.
    #[serde(default = "default_retry_backoff")]
    pub retry_backoff: HumanDuration,
    /// Facet records older than this are deleted. Default `30d`.
    #[serde(default = "default_retention")]
    pub retention: HumanDuration,
    /// Answers remembered by (text, prompt version) so a re-released trace whose conversation
    /// did not change costs no second call. Default 10000.
    #[serde(default = "default_cache")]
    pub cache_entries: usize,
}

/// A facet of your own.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustomFacet {
    /// Stable identifier: used in attribute names and stored records. Lowercase, `_` allowed.
    pub name: String,
    /// The question, e.g. `Which product area is this about?`.
    pub prompt: String,
    /// Fixed labels: the answer is `LABEL: one sentence`.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// Case-insensitive regex: matching answers are stored but not clustered (e.g. `^NONE`).
    #[serde(default)]
    pub exclude: Option<String>,
    /// `default` or a plugin under `preprocess.plugins`. Default: `preprocess.preprocessor`.
    #[serde(default)]
    pub preprocessor: Option<String>,
    /// Share of traces this facet is asked for. Default 1.0.
    #[serde(default = "one")]
    pub sampling_rate: f64,
    /// `false` pauses the facet without losing its history. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl Default for FacetsConfig {
    fn default() -> Self {
        serde_yaml_ng::from_str("{}").expect("defaults deserialize")
    }
}

fn default_builtin() -> Vec<String> {
    vec!["task".into(), "sentiment".into(), "issues".into()]
}
fn one() -> f64 {
    1.0
}
fn yes() -> bool {
    true
}
fn default_min_chars() -> usize {
    20
}
fn default_workers() -> usize {
    4
}
fn default_retry_backoff() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_retention() -> HumanDuration {
    HumanDuration::from_secs(30 * 24 * 3600)
}
fn default_cache() -> usize {
    10_000
}
