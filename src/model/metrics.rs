//! Every HTTP request to a model endpoint, counted: by role (`facets`, `naming`,
//! `embeddings`) and outcome, with tokens and a latency histogram, plus the structured-output
//! mode each chat endpoint uses. Registered once in the sidecar's registry; a client built
//! without them (CLI, tests) counts into a private, unexported set.

use super::errors::ModelError;
use super::structured::StructuredOutput;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabel {
    pub role: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabel {
    pub role: &'static str,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabel {
    pub role: &'static str,
    pub mode: &'static str,
}

type SecondsHistogram = Family<CallLabel, Histogram, fn() -> Histogram>;

fn seconds_histogram() -> Histogram {
    // 50 ms … ~100 s: embeddings are fast, a small local chat model takes seconds.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.05, 2.0, 12,
    ))
}

/// Model-call metrics; clones share the same series.
#[derive(Clone)]
pub struct ModelMetrics {
    pub calls: Family<CallLabel, Counter>,
    pub tokens: Family<TokenLabel, Counter>,
    pub seconds: SecondsHistogram,
    pub structured_output: Family<ModeLabel, Gauge>,
}

impl Default for ModelMetrics {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            tokens: Family::default(),
            seconds: Family::new_with_constructor(seconds_histogram),
            structured_output: Family::default(),
        }
    }
}

/// The outcome label of one request.
pub fn outcome(result: &Result<(), &ModelError>) -> &'static str {
    match result {
        Ok(()) => "ok",
        Err(ModelError::Http { .. }) => "http_error",
        Err(ModelError::Transport { timeout: true, .. }) => "timeout",
        Err(ModelError::Transport { .. }) => "connect",
        Err(ModelError::Garbage(_)) => "unusable",
        Err(ModelError::CircuitOpen(_)) => "circuit_open",
        Err(ModelError::Invalid(_)) => "invalid",
    }
}

impl ModelMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "tracetopics_model_requests",
            "HTTP requests to model endpoints (every attempt, retries included), by role (facets, naming, embeddings) and outcome (ok, unusable, http_error, timeout, connect, circuit_open)",
            self.calls.clone(),
        );
        registry.register(
            "tracetopics_model_tokens",
            "Tokens model endpoints reported, by role and kind (prompt, completion)",
            self.tokens.clone(),
        );
        registry.register(
            "tracetopics_model_request_seconds",
            "Latency of requests to model endpoints, by role and outcome",
            self.seconds.clone(),
        );
        registry.register(
            "tracetopics_model_structured_output",
            "1 for the way each chat endpoint is asked for JSON (json_schema, json_object, instructions), 0 for the others",
            self.structured_output.clone(),
        );
    }

    pub fn record(&self, role: &'static str, outcome: &'static str, elapsed: Option<Duration>) {
        let label = CallLabel { role, outcome };
        self.calls.get_or_create(&label).inc();
        if let Some(elapsed) = elapsed {
            self.seconds
                .get_or_create(&label)
                .observe(elapsed.as_secs_f64());
        }
    }

    pub fn add_tokens(&self, role: &'static str, prompt: u64, completion: u64) {
        for (kind, n) in [("prompt", prompt), ("completion", completion)] {
            if n > 0 {
                self.tokens
                    .get_or_create(&TokenLabel { role, kind })
                    .inc_by(n);
            }
        }
    }

    pub fn set_mode(&self, role: &'static str, mode: StructuredOutput) {
        for m in StructuredOutput::MODES {
            self.structured_output
                .get_or_create(&ModeLabel {
                    role,
                    mode: m.as_str(),
                })
                .set(i64::from(m == mode));
        }
    }
}
