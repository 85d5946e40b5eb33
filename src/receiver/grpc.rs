//! OTLP/gRPC `TraceService/Export`, served with a pass-through codec: the request arrives as
//! bytes and is split at the wire level (see `wire.rs`) instead of being decoded into structs.

use super::Ingest;
use super::split::split_encoded;
use crate::otlp::status::grpc_status_with_retry;
use crate::pipeline::Refusal;
use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::{Code, Request, Response, Status};

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The gRPC trace receiver as a tower service, mounted with tonic's server.
#[derive(Clone)]
pub struct GrpcReceiver {
    ingest: Arc<Ingest>,
    max_bytes: usize,
    compression: EnabledCompressionEncodings,
}

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
        }
    }
}

impl tonic::server::NamedService for GrpcReceiver {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
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
            if request.uri().path() != EXPORT_PATH {
                return Ok(
                    Status::unimplemented("only TraceService/Export is served here").into_http(),
                );
            }
            let mut grpc = tonic::server::Grpc::new(PassThroughCodec)
                .apply_compression_config(this.compression, this.compression)
                .apply_max_message_size_config(Some(this.max_bytes), Some(4 * 1024 * 1024));
            Ok(grpc.unary(ExportMethod(this.ingest.clone()), request).await)
        })
    }
}

struct ExportMethod(Arc<Ingest>);

impl tonic::server::UnaryService<Bytes> for ExportMethod {
    type Response = ExportTraceServiceResponse;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Self::Response>, Status>> + Send>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let ingest = self.0.clone();
        Box::pin(async move {
            let split = split_encoded(request.get_ref()).map_err(|e| {
                ingest.failed_request("grpc");
                Status::invalid_argument(format!("undecodable ExportTraceServiceRequest: {e}"))
            })?;
            let rejected = split.rejected_spans;
            let message = split.reject_message.clone();
            ingest.accept(split, "grpc").await.map_err(refusal_status)?;
            let partial_success = (rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: rejected as i64,
                error_message: message,
            });
            Ok(Response::new(ExportTraceServiceResponse {
                partial_success,
            }))
        })
    }
}

/// Hands the request over as raw bytes; encodes the (small) response with prost.
struct PassThroughCodec;

impl Codec for PassThroughCodec {
    type Encode = ExportTraceServiceResponse;
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
    type Item = ExportTraceServiceResponse;
    type Error = Status;
    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(e.to_string()))
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
