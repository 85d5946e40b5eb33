use super::Ingest;
use super::split::split_by_trace;
use crate::otlp::status::grpc_status_with_retry;
use crate::pipeline::Refusal;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
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
    pub fn service(
        ingest: Ingest,
        max_bytes: usize,
        gzip: bool,
    ) -> TraceServiceServer<GrpcReceiver> {
        let mut service = TraceServiceServer::new(GrpcReceiver { ingest })
            .max_decoding_message_size(max_bytes)
            .max_encoding_message_size(4 * 1024 * 1024);
        if gzip {
            service = service
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip);
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
        self.ingest
            .accept(split, "grpc")
            .await
            .map_err(refusal_status)?;
        let partial_success = (rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: rejected as i64,
            error_message: message,
        });
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success,
        }))
    }
}

/// Every refusal is retryable: the client still holds the data.
pub fn refusal_status(refusal: Refusal) -> Status {
    match refusal {
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

/// tonic's own answers to bad requests use other codes than OTLP asks for: an uncompressed
/// message over the size limit gets OUT_OF_RANGE (OTLP: RESOURCE_EXHAUSTED) and an undecodable
/// message INTERNAL (OTLP: INVALID_ARGUMENT). The handler never returns either code itself.
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
