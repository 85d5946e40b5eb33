use crate::config::tls::ServerTlsConfig;
use crate::config::types::{Endpoint, HumanDuration};
use serde::{Deserialize, Serialize};

/// `receivers:` — where spans come in.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiversConfig {
    /// The OTLP receiver (gRPC and HTTP), as in the OpenTelemetry Collector.
    #[serde(default)]
    pub otlp: OtlpReceiverConfig,
}

/// `receivers.otlp:`
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpReceiverConfig {
    #[serde(default)]
    pub protocols: ProtocolsConfig,
}

/// `receivers.otlp.protocols:` — a protocol runs when its block is present (an empty `grpc:` block
/// enables it with defaults). With no `protocols:` at all, both run.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolsConfig {
    #[serde(default, deserialize_with = "empty_block_enables")]
    pub grpc: Option<GrpcReceiverConfig>,
    #[serde(default, deserialize_with = "empty_block_enables")]
    pub http: Option<HttpReceiverConfig>,
}

impl Default for ProtocolsConfig {
    fn default() -> Self {
        Self {
            grpc: Some(GrpcReceiverConfig::default()),
            http: Some(HttpReceiverConfig::default()),
        }
    }
}

/// `grpc:` with nothing after it is YAML null; the Collector reads it as "on, with defaults".
fn empty_block_enables<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(
        Option::<T>::deserialize(deserializer)?.unwrap_or_default(),
    ))
}

/// `receivers.otlp.protocols.grpc:` — OTLP/gRPC `TraceService/Export`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcReceiverConfig {
    /// `host:port` to listen on. Default `localhost:4317`; use `0.0.0.0:4317` in a container.
    #[serde(default = "default_grpc_endpoint")]
    pub endpoint: Endpoint,
    /// Largest request accepted, in MiB, measured after decompression. Larger requests get
    /// RESOURCE_EXHAUSTED. Default 4 (the Collector's default).
    #[serde(default = "default_grpc_max_mib")]
    pub max_recv_msg_size_mib: u64,
    /// Accept gzip-compressed requests and compress responses for clients that accept gzip.
    /// Default true; OTLP requires servers to accept gzip, so turn it off only for debugging.
    #[serde(default = "yes")]
    pub gzip: bool,
    /// Serve TLS: `cert_file` and `key_file` (PEM). Default: plaintext.
    #[serde(default)]
    pub tls: Option<ServerTlsConfig>,
}

impl Default for GrpcReceiverConfig {
    fn default() -> Self {
        Self {
            endpoint: default_grpc_endpoint(),
            max_recv_msg_size_mib: default_grpc_max_mib(),
            gzip: true,
            tls: None,
        }
    }
}

/// `receivers.otlp.protocols.http:` — OTLP/HTTP `POST /v1/traces`, protobuf and JSON.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpReceiverConfig {
    /// `host:port` to listen on. Default `localhost:4318`.
    #[serde(default = "default_http_endpoint")]
    pub endpoint: Endpoint,
    /// Largest request body accepted, in bytes, measured after gzip decompression; larger
    /// bodies get HTTP 413. Default 20 MiB (the Collector's default).
    #[serde(default = "default_http_max_body")]
    pub max_request_body_size: u64,
    /// A client must send a request's whole header within this long, or its connection is
    /// closed. It is also how long an idle keep-alive connection stays open. Default 30s; `0`
    /// turns it off (as the Collector's `read_header_timeout`).
    #[serde(default = "default_read_header_timeout")]
    pub read_header_timeout: HumanDuration,
    /// A request's whole body must arrive within this long after its header; a slower client
    /// gets HTTP 408 and its connection is closed (it keeps the data and may retry). Default
    /// 60s; `0` turns it off.
    #[serde(default = "default_read_timeout")]
    pub read_timeout: HumanDuration,
    /// Most connections open at once; one more is closed as soon as it is accepted (clients
    /// retry). Default 1024.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Serve HTTPS: `cert_file` and `key_file` (PEM). Default: plaintext.
    #[serde(default)]
    pub tls: Option<ServerTlsConfig>,
}

impl Default for HttpReceiverConfig {
    fn default() -> Self {
        Self {
            endpoint: default_http_endpoint(),
            max_request_body_size: default_http_max_body(),
            read_header_timeout: default_read_header_timeout(),
            read_timeout: default_read_timeout(),
            max_connections: default_max_connections(),
            tls: None,
        }
    }
}

fn default_grpc_endpoint() -> Endpoint {
    Endpoint::new("localhost", 4317)
}
fn default_http_endpoint() -> Endpoint {
    Endpoint::new("localhost", 4318)
}
fn default_grpc_max_mib() -> u64 {
    4
}
fn default_http_max_body() -> u64 {
    20 * 1024 * 1024
}
fn default_read_header_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_read_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_max_connections() -> u32 {
    1024
}
fn yes() -> bool {
    true
}
