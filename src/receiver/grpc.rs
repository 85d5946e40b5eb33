use super::Ingest;
use super::split::split_by_trace;
use crate::otlp::status::grpc_status_with_retry;
use crate::pipeline::Refusal;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use std::time::Duration;
use tonic::codec::CompressionEncoding;
use tonic::{Code, Request, Response, Status};

pub struct GrpcReceiver {
    ingest: Ingest,
}

impl GrpcReceiver {
    pub fn service(ingest: Ingest, max_bytes: usize, gzip: bool) -> TraceServiceServer<GrpcReceiver> {
        let mut service = TraceServiceServer::new(GrpcReceiver { ingest })
            .max_decoding_message_size(max_bytes)
            .max_encoding_message_size(4 * 1024 * 1024);
        if gzip {
            service = service.accept_compressed(CompressionEncoding::Gzip).send_compressed(CompressionEncoding::Gzip);
        }
        service
    }
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let split = split_by_trace(request.into_inner());
        let rejected = split.rejected_spans;
        let message = split.reject_message.clone();
        self.ingest.accept(split, "grpc").await.map_err(refusal_status)?;
        let partial_success = (rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: rejected as i64,
            error_message: message,
        });
        Ok(Response::new(ExportTraceServiceResponse { partial_success }))
    }
}

/// Every refusal is retryable: the client still holds the data.
pub fn refusal_status(refusal: Refusal) -> Status {
    match refusal {
        Refusal::Full { what, retry_after } => grpc_status_with_retry(Code::Unavailable, what, retry_after),
        Refusal::Storage(_) => grpc_status_with_retry(Code::Unavailable, "storage unavailable", Duration::from_secs(5)),
        Refusal::Stopped => grpc_status_with_retry(Code::Unavailable, "shutting down", Duration::from_secs(5)),
    }
}

/// tonic answers an uncompressed message over the size limit with OUT_OF_RANGE; OTLP (and the
/// Collector) say RESOURCE_EXHAUSTED. The receiver never produces OUT_OF_RANGE itself.
pub fn oversize_as_resource_exhausted(mut response: http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body> {
    let out_of_range = (Code::OutOfRange as i32).to_string();
    if response.headers().get("grpc-status").is_some_and(|v| v.as_bytes() == out_of_range.as_bytes()) {
        let exhausted = (Code::ResourceExhausted as i32).to_string();
        response.headers_mut().insert("grpc-status", exhausted.parse().expect("digits are a valid header"));
    }
    response
}
