use crate::config::types::HumanDuration;
use serde::{Deserialize, Serialize};

/// `assembler:` — how spans are grouped into whole traces before the pipeline sees them.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AssemblerConfig {
    /// A trace is complete once no span of it arrived for this long. Default `30s` (the
    /// Collector's tail-sampling `decision_wait`).
    #[serde(default = "default_idle_wait")]
    pub idle_wait: HumanDuration,
    /// If set, a trace is complete this long after its root span arrived (root spans are sent
    /// when they end), or after `idle_wait`, whichever comes first. Useful when children of a
    /// root are all exported before the root. Unset by default.
    #[serde(default)]
    pub wait_after_root: Option<HumanDuration>,
    /// A trace is released at this age (since its first span) even if spans keep arriving.
    /// Default `5m`.
    #[serde(default = "default_max_trace_age")]
    pub max_trace_age: HumanDuration,
    /// Most traces buffered at once. When full, receivers push back with a retryable error
    /// (gRPC UNAVAILABLE with RetryInfo, HTTP 503 with Retry-After); nothing is dropped.
    /// Default 50000.
    #[serde(default = "default_max_traces")]
    pub max_traces: usize,
    /// A trace that reaches this many spans is released at once; its later spans pass through
    /// as late spans. Default 10000.
    #[serde(default = "default_max_spans_per_trace")]
    pub max_spans_per_trace: usize,
    /// How many released trace ids are remembered so their late spans are recognised and
    /// passed on at once instead of starting a new trace. Default 100000.
    #[serde(default = "default_released_memory")]
    pub remember_released_traces: usize,
}

impl Default for AssemblerConfig {
    fn default() -> Self {
        Self {
            idle_wait: default_idle_wait(),
            wait_after_root: None,
            max_trace_age: default_max_trace_age(),
            max_traces: default_max_traces(),
            max_spans_per_trace: default_max_spans_per_trace(),
            remember_released_traces: default_released_memory(),
        }
    }
}

fn default_idle_wait() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_max_trace_age() -> HumanDuration {
    HumanDuration::from_secs(300)
}
fn default_max_traces() -> usize {
    50_000
}
fn default_max_spans_per_trace() -> usize {
    10_000
}
fn default_released_memory() -> usize {
    100_000
}
