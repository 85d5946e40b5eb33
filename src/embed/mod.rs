//! Embeddings of facet summaries (never of raw traces): a remote OpenAI-compatible model or the
//! deterministic builtin one.

pub mod builtin;

use crate::model::{ModelConfig, ModelError, OpenAiClient, Provider};
pub use builtin::BuiltinEmbedder;

pub enum Embedder {
    Remote(OpenAiClient),
    Builtin(BuiltinEmbedder),
}

impl Embedder {
    pub fn new(config: &ModelConfig) -> Result<Self, String> {
        match config.provider {
            Provider::Builtin => Ok(Embedder::Builtin(BuiltinEmbedder::new(
                if config.dimensions == 0 {
                    builtin::DEFAULT_DIMENSIONS
                } else {
                    config.dimensions
                },
            ))),
            Provider::Openai => OpenAiClient::new(config).map(Embedder::Remote),
        }
    }

    /// Counts the model's requests into the sidecar's metrics.
    pub fn with_metrics(self, metrics: &crate::model::ModelMetrics) -> Self {
        match self {
            Embedder::Remote(client) => {
                Embedder::Remote(client.with_metrics(metrics, "embeddings"))
            }
            builtin => builtin,
        }
    }

    /// The model id stored with every vector (maps are only comparable within one model).
    pub fn model_id(&self) -> String {
        match self {
            Embedder::Remote(client) => format!("openai:{}", client.model()),
            Embedder::Builtin(e) => format!("builtin:hashed-ngrams-{}", e.dimensions()),
        }
    }

    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ModelError> {
        match self {
            Embedder::Remote(client) => client.embed(texts).await,
            Embedder::Builtin(e) => Ok(texts.iter().map(|t| e.embed(t)).collect()),
        }
    }
}
