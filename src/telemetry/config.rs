use crate::config::types::{Endpoint, HumanDuration};
use serde::{Deserialize, Serialize};

/// `telemetry:` — the sidecar's own metrics and logs.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub logs: LogsConfig,
}

/// `telemetry.metrics:` — Prometheus `/metrics`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port` serving `GET /metrics`. Default `localhost:8888`.
    #[serde(default = "default_metrics_endpoint")]
    pub endpoint: Endpoint,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            endpoint: default_metrics_endpoint(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogEncoding {
    #[default]
    Console,
    Json,
}

/// `telemetry.logs:` — structured logs on stderr. `RUST_LOG`, when set, overrides `level`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    /// `error`, `warn`, `info` (default), `debug`, `trace`, or a full filter such as
    /// `info,tracetopics::export=debug`.
    #[serde(default = "default_level")]
    pub level: String,
    /// `console` (default) or `json`.
    #[serde(default)]
    pub encoding: LogEncoding,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            level: default_level(),
            encoding: LogEncoding::Console,
        }
    }
}

/// `health_check:` — `GET /` answers 200 while the sidecar accepts data, 503 while it drains.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Default `localhost:13133`.
    #[serde(default = "default_health_endpoint")]
    pub endpoint: Endpoint,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        Self {
            endpoint: default_health_endpoint(),
        }
    }
}

/// `service:` — process lifecycle.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// On SIGTERM/SIGINT the whole shutdown fits in this long: receivers stop, buffered traces
    /// are released, the queue drains; a stage still busy at the deadline (a looping plugin) is
    /// abandoned, and what is left stays in the redb file for the next start. Default `10s`.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: HumanDuration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            shutdown_timeout: default_shutdown_timeout(),
        }
    }
}

fn default_metrics_endpoint() -> Endpoint {
    Endpoint::new("localhost", 8888)
}
fn default_health_endpoint() -> Endpoint {
    Endpoint::new("localhost", 13133)
}
fn default_level() -> String {
    "info".into()
}
fn default_shutdown_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
