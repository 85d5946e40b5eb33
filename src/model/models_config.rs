use super::config::ModelConfig;
use serde::{Deserialize, Serialize};

/// `models:` — the endpoints each stage uses. Every one defaults to the offline `builtin`
/// provider, so the sidecar runs without any model server (see README: offline mode).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    /// The chat model that answers the facets (one call per trace).
    #[serde(default)]
    pub facets: ModelConfig,
    /// The embedding model for facet summaries.
    #[serde(default)]
    pub embeddings: ModelConfig,
    /// The chat model that names topics (one call per batch of topics, at each regeneration).
    #[serde(default)]
    pub naming: ModelConfig,
}
