//! Model endpoints: the OpenAI-compatible HTTP client every remote model goes through, its
//! limits and retry rules, and (see `builtin`) the offline provider.

pub mod client;
pub mod config;
pub mod errors;
pub mod limits;
pub mod metrics;
pub mod models_config;
pub mod structured;

pub use client::{ChatReply, ChatRequest, OpenAiClient};
pub use config::{ModelConfig, Provider};
pub use errors::ModelError;
pub use metrics::ModelMetrics;
pub use models_config::ModelsConfig;
pub use structured::StructuredOutput;
