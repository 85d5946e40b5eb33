//! OTLP/gRPC `TraceService/Export` and `LogsService/Export`, served with a pass-through codec: the
//! request arrives as bytes and is split at the wire level (see `wire.rs`) instead of being
//! decoded into structs.

use super::Ingest;
use crate::core::Signal;
use crate::otlp::split::{split_encoded, split_encoded_logs};
use crate::otlp::status::grpc_status_with_retry;
use crate::pipeline::Refusal;
use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::{Code, Request, Response, Status};

const TRACES_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const LOGS_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// The gRPC trace receiver as a tower service, mounted with tonic's server.
#[derive(Clone)]
pub struct GrpcReceiver {
    ingest: Arc<Ingest>,
    max_bytes: usize,
    compression: EnabledCompressionEncodings,
    signal: Signal,
}

/// The same receiver for `LogsService` (tonic routes by the service name).
#[derive(Clone)]
pub struct GrpcLogsReceiver(GrpcReceiver);

impl GrpcReceiver {
    pub fn service(ingest: Ingest, max_bytes: usize, gzip: bool) -> GrpcReceiver {
        let mut compression = EnabledCompressionEncodings::default();
        if gzip {
            compression.enable(CompressionEncoding::Gzip);
        }
        GrpcReceiver {
            ingest: Arc::new(ingest),
            max_bytes,
            compression,
            signal: Signal::Traces,
        }
    }

    pub fn logs(&self) -> GrpcLogsReceiver {
        GrpcLogsReceiver(GrpcReceiver {
            signal: Signal::Logs,
            ..self.clone()
        })
    }
}

impl tonic::server::NamedService for GrpcReceiver {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl tonic::server::NamedService for GrpcLogsReceiver {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
}

impl<B> tower::Service<http::Request<B>> for GrpcLogsReceiver
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        <GrpcReceiver as tower::Service<http::Request<B>>>::poll_ready(&mut self.0, cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.0.call(request)
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, Infallible>> + Send>>;

impl<B> tower::Service<http::Request<B>> for GrpcReceiver
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let expected = match this.signal {
                Signal::Traces => TRACES_PATH,
                Signal::Logs => LOGS_PATH,
            };
            if request.uri().path() != expected {
                return Ok(Status::unimplemented("only Export is served here").into_http());
            }
            let mut grpc = tonic::server::Grpc::new(PassThroughCodec)
                .apply_compression_config(this.compression, this.compression)
                .apply_max_message_size_config(Some(this.max_bytes), Some(4 * 1024 * 1024));
            let reached_handler = Arc::new(AtomicBool::new(false));
            let method = ExportMethod {
                ingest: this.ingest.clone(),
                signal: this.signal,
                reached_handler: reached_handler.clone(),
            };
            let response = grpc.unary(method, request).await;
            // tonic refuses a message over the size limit (or one it cannot unframe) before the
            // handler runs; the handler counts its own failures.
            if !reached_handler.load(Ordering::Relaxed) {
                if let Some(reason) = framing_failure(&response) {
                    this.ingest.failed_request("grpc", reason);
                }
            }
            Ok(response)
        })
    }
}

struct ExportMethod {
    ingest: Arc<Ingest>,
    signal: Signal,
    /// Set once tonic has read the whole message and handed it over.
    reached_handler: Arc<AtomicBool>,
}

/// Why tonic refused a request before the handler saw it, read from its status: over the size
/// limit (OUT_OF_RANGE uncompressed, RESOURCE_EXHAUSTED after decompression) or unreadable.
fn framing_failure(response: &http::Response<tonic::body::Body>) -> Option<&'static str> {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok()?.parse::<i32>().ok())?;
    match Code::from_i32(code) {
        Code::Ok => None,
        Code::OutOfRange | Code::ResourceExhausted => Some("too_large"),
        Code::Unimplemented => Some("unsupported"),
        _ => Some("undecodable"),
    }
}

impl tonic::server::UnaryService<Bytes> for ExportMethod {
    /// The encoded `Export*ServiceResponse`.
    type Response = Vec<u8>;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Self::Response>, Status>> + Send>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        self.reached_handler.store(true, Ordering::Relaxed);
        let (ingest, signal) = (self.ingest.clone(), self.signal);
        Box::pin(async move {
            let split = match signal {
                Signal::Traces => split_encoded(request.get_ref()),
                Signal::Logs => split_encoded_logs(request.get_ref()),
            }
            .map_err(|e| {
                ingest.failed_request("grpc", "undecodable");
                Status::invalid_argument(format!("undecodable export request: {e}"))
            })?;
            let rejected = split.rejected_spans;
            let message = split.reject_message.clone();
            ingest
                .accept(split, signal, "grpc")
                .await
                .map_err(refusal_status)?;
            Ok(Response::new(export_response(signal, rejected, message)))
        })
    }
}

/// The OTLP success response, with partial success when items were rejected.
pub fn export_response(signal: Signal, rejected: u64, message: String) -> Vec<u8> {
    match signal {
        Signal::Traces => ExportTraceServiceResponse {
            partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: rejected as i64,
                error_message: message,
            }),
        }
        .encode_to_vec(),
        Signal::Logs => ExportLogsServiceResponse {
            partial_success: (rejected > 0).then(|| ExportLogsPartialSuccess {
                rejected_log_records: rejected as i64,
                error_message: message,
            }),
        }
        .encode_to_vec(),
    }
}

/// Hands the request over as raw bytes and writes the pre-encoded response.
struct PassThroughCodec;

impl Codec for PassThroughCodec {
    type Encode = Vec<u8>;
    type Decode = Bytes;
    type Encoder = ResponseEncoder;
    type Decoder = BytesDecoder;
    fn encoder(&mut self) -> ResponseEncoder {
        ResponseEncoder
    }
    fn decoder(&mut self) -> BytesDecoder {
        BytesDecoder
    }
}

struct ResponseEncoder;

impl Encoder for ResponseEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

struct BytesDecoder;

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Every refusal but `TooLarge` is retryable: the client still holds the data.
pub fn refusal_status(refusal: Refusal) -> Status {
    match refusal {
        // Without RetryInfo, RESOURCE_EXHAUSTED tells OTLP clients not to retry.
        Refusal::TooLarge => Status::resource_exhausted(
            "request holds more spans than the whole sending queue (sending_queue.queue_size)",
        ),
        Refusal::Full { what, retry_after } => {
            grpc_status_with_retry(Code::Unavailable, what, retry_after)
        }
        Refusal::Storage(_) => grpc_status_with_retry(
            Code::Unavailable,
            "storage unavailable",
            Duration::from_secs(5),
        ),
        Refusal::Stopped => {
            grpc_status_with_retry(Code::Unavailable, "shutting down", Duration::from_secs(5))
        }
    }
}

/// tonic answers an uncompressed message over the size limit with OUT_OF_RANGE; OTLP asks for
/// RESOURCE_EXHAUSTED. (Undecodable messages are answered INVALID_ARGUMENT by the handler; an
/// INTERNAL mentioning `decode` is mapped too, in case tonic's framing reports one.)
pub fn otlp_status_codes(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok()?.parse::<i32>().ok());
    let message = response
        .headers()
        .get("grpc-message")
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    let replacement = match code {
        Some(c) if c == Code::OutOfRange as i32 => Some(Code::ResourceExhausted),
        Some(c) if c == Code::Internal as i32 && message.windows(6).any(|w| w == b"decode") => {
            Some(Code::InvalidArgument)
        }
        _ => None,
    };
    if let Some(code) = replacement {
        let value = (code as i32)
            .to_string()
            .parse()
            .expect("digits are a valid header");
        response.headers_mut().insert("grpc-status", value);
    }
    response
}
