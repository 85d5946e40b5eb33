use crate::classify::enrich::Target;
use crate::config::types::HumanDuration;
use serde::{Deserialize, Serialize};

/// `classify:` — how each faceted trace gets its topics and how they reach its spans.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifyConfig {
    /// Which spans carry the `tracetopics.*` attributes: `root` (default: the trace's root
    /// span, or this service's top spans when the root lives upstream), `all`, or `none`
    /// (topics are still stored and counted; spans leave as they came, without waiting).
    #[serde(default)]
    pub enrich: EnrichMode,
    /// Longest a released trace's spans wait for their facets and topics. Past it they are
    /// exported without them (`tracetopics_enrichment_traces{reason="timeout"}`); the facet
    /// work still finishes, for the topic maps. Most traces leave as soon as their topics are
    /// known, or at once when there is nothing to add. Default `10s`.
    #[serde(default = "default_delay")]
    pub max_enrichment_delay: HumanDuration,
    /// A facet summary longer than this many characters is cut on the span (`…` appended).
    /// Default 256.
    #[serde(default = "default_summary_chars")]
    pub summary_max_chars: usize,
    /// Enriched traces remembered so their late spans get the same attributes. Default 10000.
    #[serde(default = "default_late_memory")]
    pub late_span_memory: usize,
    /// After a new topic map, stored facets this recent are classified again against it.
    /// Default `7d`.
    #[serde(default = "default_backfill_window")]
    pub backfill_window: HumanDuration,
    /// Emit one OTLP log record (`tracetopics.reclassified`) per trace whose topic changed in a
    /// backfill, so downstream stores can update. Default false.
    #[serde(default)]
    pub emit_reclassified: bool,
}

/// Which spans get the topic attributes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EnrichMode {
    #[default]
    Root,
    All,
    None,
}

impl EnrichMode {
    /// The spans of a held trace that get the attributes; `None` when spans do not wait.
    pub fn target(self) -> Option<Target> {
        match self {
            EnrichMode::Root => Some(Target::LocalRoots),
            EnrichMode::All => Some(Target::All),
            EnrichMode::None => None,
        }
    }
}

impl Default for ClassifyConfig {
    fn default() -> Self {
        serde_yaml_ng::from_str("{}").expect("defaults deserialize")
    }
}

fn default_delay() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_summary_chars() -> usize {
    256
}
fn default_late_memory() -> usize {
    10_000
}
fn default_backfill_window() -> HumanDuration {
    HumanDuration::from_secs(7 * 24 * 3600)
}
