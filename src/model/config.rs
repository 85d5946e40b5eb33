use crate::config::types::{HumanDuration, Secret};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One model endpoint under `models:` — an OpenAI-compatible HTTP server (vLLM, llama.cpp
/// server, Ollama, TGI, Baseten, OpenAI) or the built-in offline provider.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `openai` (any OpenAI-compatible `/chat/completions` and `/embeddings` server) or
    /// `builtin` (deterministic offline models for development and demos; see README).
    #[serde(default)]
    pub provider: Provider,
    /// Base URL including the version prefix, e.g. `http://localhost:8000/v1` or
    /// `https://api.openai.com/v1` (TLS, verified against the system's root certificates).
    #[serde(default)]
    pub base_url: String,
    /// The model name sent in each request.
    #[serde(default)]
    pub model: String,
    /// Bearer token, e.g. `${env:OPENAI_API_KEY}`. Never logged.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// Extra request headers. Values are never logged.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Deadline of one request. Default `60s`.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Requests in flight at once. Default 4.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// Requests started per minute; 0 = unlimited. Default 0.
    #[serde(default)]
    pub requests_per_minute: u32,
    /// Prompt tokens sent per minute (estimated before sending); 0 = unlimited. Default 0.
    #[serde(default)]
    pub tokens_per_minute: u32,
    /// Retries after a retryable failure (429, 5xx, timeouts, garbage). Default 4.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// First back-off; doubles per retry (with jitter) up to `max_backoff`. A server's
    /// `Retry-After` wins. Default `500ms`.
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff: HumanDuration,
    /// Default `30s`.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: HumanDuration,
    /// After this many consecutive failed calls the circuit opens: calls fail at once for
    /// `circuit_open_for`, then one probe is let through. Default 5.
    #[serde(default = "default_circuit_failures")]
    pub circuit_failures: u32,
    /// Default `30s`.
    #[serde(default = "default_circuit_open_for")]
    pub circuit_open_for: HumanDuration,
    /// Embedding models: texts per `/embeddings` request. Default 64.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Embedding models: the expected vector dimension; 0 = take the first answer's. A reply of
    /// another dimension is an error. Default 0.
    #[serde(default)]
    pub dimensions: usize,
    /// Chat models: `false` never sends a `response_format` (the same as `structured_output:
    /// instructions`). Default true.
    #[serde(default = "yes")]
    pub json_schema: bool,
    /// Chat models: how requests ask for JSON. `auto` (default) detects what the endpoint
    /// accepts — `json_schema` (OpenAI, vLLM, Ollama, llama.cpp server), then `json_object` with
    /// a `schema` (llama-cpp-python), then `instructions` only — stepping down when a request is
    /// refused (HTTP 400/415/422/500/501), remembering the answer for the endpoint, logging it
    /// once and exporting it as `tracetopics_model_structured_output`. A fixed value is used as
    /// is. Strict instructions and a tolerant parser (fenced JSON is fine) are used either way.
    #[serde(default)]
    pub structured_output: super::structured::StructuredOutput,
    /// Verification of `https://` servers: `ca_file` (a private CA, trusted besides the
    /// system's roots), `insecure_skip_verify` (testing only).
    #[serde(default)]
    pub tls: crate::config::tls::ClientTlsConfig,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    #[default]
    Builtin,
    Openai,
}

impl Default for ModelConfig {
    fn default() -> Self {
        serde_yaml_ng::from_str("{}").expect("defaults deserialize")
    }
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_concurrency() -> usize {
    4
}
fn default_retries() -> u32 {
    4
}
fn default_initial_backoff() -> HumanDuration {
    HumanDuration::from_millis(500)
}
fn default_max_backoff() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_circuit_failures() -> u32 {
    5
}
fn default_circuit_open_for() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_batch() -> usize {
    64
}
fn yes() -> bool {
    true
}
