//! OTLP clients to the downstream: gRPC (tonic) and HTTP/protobuf (reqwest). Both send an
//! already-encoded `ExportTraceServiceRequest` (or `ExportLogsServiceRequest`) — queue records
//! are concatenated `TracesData` (`LogsData`) bytes, which is the same wire format — so exporting
//! never decodes or re-encodes a span.

use super::config::{Compression, OtlpExporterConfig};
use super::retry::SendError;
use super::target::ExportTarget;
use crate::core::Signal;
use crate::core::retry::parse_retry_after;
use bytes::{BufMut, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use std::io::Write;
use std::time::Duration;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};

const TRACES_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const LOGS_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// What the downstream said to a delivered request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Spans (log records) the downstream rejected through partial success (not to be retried).
    pub rejected_spans: u64,
    pub message: String,
}

#[derive(Clone)]
pub enum OtlpClient {
    Grpc {
        channel: tonic::transport::Channel,
        url: String,
        metadata: tonic::metadata::MetadataMap,
        gzip: bool,
        timeout: Duration,
    },
    Http {
        client: reqwest::Client,
        url: String,
        logs_url: String,
        headers: reqwest::header::HeaderMap,
        gzip: bool,
    },
}

impl OtlpClient {
    pub fn new(config: &OtlpExporterConfig) -> Result<Self, String> {
        let gzip = config.compression == Compression::Gzip;
        let timeout = config.timeout.get();
        match ExportTarget::from_config(config)? {
            ExportTarget::Grpc(url) => {
                let mut endpoint = tonic::transport::Endpoint::from_shared(url.clone())
                    .map_err(|e| e.to_string())?
                    .connect_timeout(timeout)
                    .timeout(timeout);
                if url.starts_with("https://") {
                    endpoint = endpoint
                        .tls_config(config.tls.grpc()?)
                        .map_err(|e| format!("TLS: {e}"))?;
                }
                let channel = endpoint.connect_lazy();
                let mut metadata = tonic::metadata::MetadataMap::new();
                for (name, value) in &config.headers {
                    let key = tonic::metadata::MetadataKey::from_bytes(
                        name.to_ascii_lowercase().as_bytes(),
                    )
                    .map_err(|_| format!("header `{name}` is not valid gRPC metadata"))?;
                    let value = value
                        .expose()
                        .parse()
                        .map_err(|_| format!("header `{name}` has an invalid value"))?;
                    metadata.insert(key, value);
                }
                Ok(OtlpClient::Grpc {
                    channel,
                    url,
                    metadata,
                    gzip,
                    timeout,
                })
            }
            ExportTarget::Http(url) => {
                let headers = crate::config::types::secret_headers(&config.headers)?;
                let client = config
                    .tls
                    .client_builder()?
                    .timeout(timeout)
                    .connect_timeout(timeout)
                    .user_agent(concat!("tracetopics/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| e.to_string())?;
                // The logs path sits beside the traces path, as in the Collector's otlphttp.
                let logs_url = match url.strip_suffix("/v1/traces") {
                    Some(base) => format!("{base}/v1/logs"),
                    None => format!("{url}/v1/logs"),
                };
                Ok(OtlpClient::Http {
                    client,
                    url,
                    logs_url,
                    headers,
                    gzip,
                })
            }
        }
    }

    /// Where requests go, for logs.
    pub fn endpoint(&self) -> &str {
        match self {
            OtlpClient::Grpc { url, .. } | OtlpClient::Http { url, .. } => url,
        }
    }

    /// Sends one encoded `ExportTraceServiceRequest` or `ExportLogsServiceRequest`.
    pub async fn export(&self, signal: Signal, request: Bytes) -> Result<Accepted, SendError> {
        match self {
            OtlpClient::Grpc {
                channel,
                metadata,
                gzip,
                timeout,
                ..
            } => {
                let mut grpc = tonic::client::Grpc::new(channel.clone());
                if *gzip {
                    grpc = grpc
                        .send_compressed(CompressionEncoding::Gzip)
                        .accept_compressed(CompressionEncoding::Gzip);
                }
                grpc.ready()
                    .await
                    .map_err(|e| SendError::Transport(error_chain(&e)))?;
                let mut req = tonic::Request::new(request);
                *req.metadata_mut() = metadata.clone();
                req.set_timeout(*timeout);
                let path = http::uri::PathAndQuery::from_static(match signal {
                    Signal::Traces => TRACES_PATH,
                    Signal::Logs => LOGS_PATH,
                });
                match grpc.unary(req, path, RawCodec).await {
                    Ok(response) => Ok(accepted(response.into_inner())),
                    Err(status) => Err(grpc_error(&status)),
                }
            }
            OtlpClient::Http {
                client,
                url,
                logs_url,
                headers,
                gzip,
            } => {
                let url = match signal {
                    Signal::Traces => url,
                    Signal::Logs => logs_url,
                };
                let mut builder = client
                    .post(url.as_str())
                    .headers(headers.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf");
                builder = if *gzip {
                    builder
                        .header(reqwest::header::CONTENT_ENCODING, "gzip")
                        .body(gzip_bytes(&request))
                } else {
                    builder.body(request)
                };
                let response = builder
                    .send()
                    .await
                    .map_err(|e| SendError::Transport(error_chain(&e)))?;
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| SendError::Transport(error_chain(&e)))?;
                if status.is_success() {
                    // The logs response has the same layout (partial_success{count, message}).
                    let decoded =
                        ExportTraceServiceResponse::decode(body.as_ref()).unwrap_or_default();
                    Ok(accepted(decoded))
                } else {
                    let message = crate::otlp::status::Status::decode(body.as_ref())
                        .map(|s| s.message)
                        .unwrap_or_else(|_| {
                            String::from_utf8_lossy(&body[..body.len().min(256)]).into_owned()
                        });
                    Err(SendError::Http {
                        status: status.as_u16(),
                        message,
                        retry_after,
                    })
                }
            }
        }
    }
}

fn accepted(response: ExportTraceServiceResponse) -> Accepted {
    response
        .partial_success
        .map(|p| Accepted {
            rejected_spans: p.rejected_spans.max(0) as u64,
            message: p.error_message,
        })
        .unwrap_or_default()
}

fn grpc_error(status: &tonic::Status) -> SendError {
    SendError::Grpc {
        code: status.code(),
        message: status.message().to_string(),
        retry_info: crate::otlp::status::grpc_retry_delay(status),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

pub fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(data).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

/// Sends pre-encoded request bytes; decodes the response with prost. Trace and logs responses
/// share one layout (`partial_success { rejected count = 1, error_message = 2 }`), so one decoder
/// serves both.
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

struct ResponseDecoder;

impl Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, tonic::Status> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("undecodable export response: {e}")))
    }
}
