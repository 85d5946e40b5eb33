use crate::config::types::{HumanDuration, Secret};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `exporters:` — where spans go after the sidecar.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExportersConfig {
    #[serde(default)]
    pub otlp: OtlpExporterConfig,
}

/// The wire protocol of the downstream OTLP endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportProtocol {
    #[default]
    Grpc,
    Http,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    None,
}

/// `exporters.otlp:` — the downstream collector or backend.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpExporterConfig {
    /// `grpc`: `host:port` or `http://host:port` (plaintext), `https://host:port` (TLS).
    /// `http`: base URL such as `http://collector:4318` or `https://otlp.example.com`
    /// (`/v1/traces` is appended; `https://` uses TLS). Default `localhost:14317` (not 4317, which is this
    /// sidecar's own receiver).
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    /// `grpc` (default) or `http` (OTLP/HTTP protobuf).
    #[serde(default)]
    pub protocol: ExportProtocol,
    /// Deadline of one export request. Default `5s`.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// `gzip` (default) or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// Extra request headers (gRPC metadata), e.g. `authorization: "Bearer ${env:TOKEN}"`.
    /// Values are never logged.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    #[serde(default)]
    pub retry_on_failure: RetryConfig,
    #[serde(default)]
    pub sending_queue: SendingQueueConfig,
    #[serde(default)]
    pub batch: BatchConfig,
    /// Verification of an `https://` endpoint: `ca_file`, `insecure_skip_verify` (OTLP/HTTP
    /// only).
    #[serde(default)]
    pub tls: crate::config::tls::ClientTlsConfig,
}

impl Default for OtlpExporterConfig {
    fn default() -> Self {
        Self {
            endpoint: default_endpoint(),
            protocol: ExportProtocol::Grpc,
            timeout: default_timeout(),
            compression: Compression::Gzip,
            headers: BTreeMap::new(),
            retry_on_failure: RetryConfig::default(),
            sending_queue: SendingQueueConfig::default(),
            batch: BatchConfig::default(),
            tls: Default::default(),
        }
    }
}

/// `retry_on_failure:` — exponential back-off for retryable errors. A server's RetryInfo or
/// Retry-After takes precedence over the computed delay, up to `max_interval`: a longer one is
/// cut to it and retried, so it cannot use up `max_elapsed_time` at once.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Default true. When false a retryable failure is treated like a permanent one.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// First delay. Default `5s`.
    #[serde(default = "default_initial_interval")]
    pub initial_interval: HumanDuration,
    /// Delay cap. Default `30s`.
    #[serde(default = "default_max_interval")]
    pub max_interval: HumanDuration,
    /// Give up on a batch after retrying this long; its spans are counted as send failures.
    /// Default `0`: retry until delivered, because the queue is persistent and the sidecar's
    /// promise is that no span is lost (the Collector defaults to `300s`).
    #[serde(default)]
    pub max_elapsed_time: HumanDuration,
    /// Default 1.5.
    #[serde(default = "default_multiplier")]
    pub multiplier: f64,
    /// Jitter as a fraction of the delay. Default 0.5.
    #[serde(default = "default_randomization")]
    pub randomization_factor: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            initial_interval: default_initial_interval(),
            max_interval: default_max_interval(),
            max_elapsed_time: HumanDuration::default(),
            multiplier: default_multiplier(),
            randomization_factor: default_randomization(),
        }
    }
}

/// `sending_queue:` — the persistent queue (in the `storage.path` redb file) between the
/// assembler and the downstream. A span stays in it until the downstream acknowledged it, so it
/// survives crashes and restarts.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SendingQueueConfig {
    /// Concurrent export requests. Default 4.
    #[serde(default = "default_consumers")]
    pub num_consumers: usize,
    /// Capacity in spans (buffered in the assembler plus waiting for export). When full,
    /// receivers push back with a retryable error. Default 500000.
    #[serde(default = "default_queue_size")]
    pub queue_size: u64,
}

impl Default for SendingQueueConfig {
    fn default() -> Self {
        Self {
            num_consumers: default_consumers(),
            queue_size: default_queue_size(),
        }
    }
}

/// `batch:` — how spans are grouped into export requests.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// A request is sent once this many spans are queued. Default 8192.
    #[serde(default = "default_batch_size")]
    pub send_batch_size: usize,
    /// Upper bound of one request in bytes (before compression). Default 4 MiB, which fits
    /// the default gRPC receive limit downstream. A single trace larger than this is sent in
    /// several requests, cut between the requests it arrived in.
    #[serde(default = "default_batch_bytes")]
    pub send_batch_max_bytes: usize,
    /// A smaller batch is sent after waiting this long. Default `200ms`.
    #[serde(default = "default_batch_timeout")]
    pub timeout: HumanDuration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            send_batch_size: default_batch_size(),
            send_batch_max_bytes: default_batch_bytes(),
            timeout: default_batch_timeout(),
        }
    }
}

fn default_endpoint() -> String {
    "localhost:14317".into()
}
fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn yes() -> bool {
    true
}
fn default_initial_interval() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_max_interval() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_multiplier() -> f64 {
    1.5
}
fn default_randomization() -> f64 {
    0.5
}
fn default_consumers() -> usize {
    4
}
fn default_queue_size() -> u64 {
    500_000
}
fn default_batch_size() -> usize {
    8192
}
fn default_batch_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_batch_timeout() -> HumanDuration {
    HumanDuration::from_millis(200)
}
