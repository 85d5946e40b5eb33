//! OTLP/HTTP: `POST /v1/traces` and `POST /v1/logs` with `application/x-protobuf` or
//! `application/json`, plain or gzip. The response is written in the request's encoding.

use super::Ingest;
use crate::core::Signal;
use crate::otlp::split::{split_by_trace, split_encoded, split_encoded_logs, split_logs};
use crate::otlp::{json, json_logs, status};
use crate::pipeline::Refusal;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::BodyExt;
use prost::Message;
use std::io::Read;
use std::time::Duration;

#[derive(Clone)]
struct HttpState {
    ingest: Ingest,
    max_body: usize,
    /// How long the whole body may take to arrive; `None`: no limit.
    read_timeout: Option<Duration>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// `read_timeout`: how long a request's body may take to arrive (`None`: no limit).
pub fn router(ingest: Ingest, max_body: usize, read_timeout: Option<Duration>) -> Router {
    Router::new()
        .route(
            "/v1/traces",
            post(|state, headers, body| export(state, headers, body, Signal::Traces)),
        )
        .route(
            "/v1/logs",
            post(|state, headers, body| export(state, headers, body, Signal::Logs)),
        )
        // The limit is enforced below, after decompression, with OTLP's status codes.
        .layer(DefaultBodyLimit::disable())
        .with_state(HttpState {
            ingest,
            max_body,
            read_timeout,
        })
}

async fn export(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Body,
    signal: Signal,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let encoding = match content_type.as_str() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        other => {
            state.ingest.failed_request("http", "unsupported");
            let message = format!(
                "unsupported content type `{other}`; use application/x-protobuf or application/json"
            );
            return error(Encoding::Json, StatusCode::UNSUPPORTED_MEDIA_TYPE, &message);
        }
    };
    let reading = read_body(&headers, body, state.max_body);
    let read = match state.read_timeout {
        Some(limit) => match tokio::time::timeout(limit, reading).await {
            Ok(read) => read,
            Err(_) => return body_read_timed_out(&state, encoding, limit),
        },
        None => reading.await,
    };
    let body = match read {
        Ok(body) => body,
        Err((code, message)) => {
            let reason = match code {
                StatusCode::PAYLOAD_TOO_LARGE => "too_large",
                StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported",
                _ => "undecodable",
            };
            state.ingest.failed_request("http", reason);
            return error(encoding, code, &message);
        }
    };
    let split = match (encoding, signal) {
        (Encoding::Protobuf, Signal::Traces) => {
            split_encoded(&body).map_err(|e| format!("undecodable protobuf: {e}"))
        }
        (Encoding::Protobuf, Signal::Logs) => {
            split_encoded_logs(&body).map_err(|e| format!("undecodable protobuf: {e}"))
        }
        (Encoding::Json, Signal::Traces) => json::decode_traces(&body)
            .map_err(|e| e.to_string())
            .and_then(|request| split_by_trace(request).map_err(|e| e.to_string()))
            .map_err(|e| format!("undecodable OTLP/JSON: {e}")),
        (Encoding::Json, Signal::Logs) => json_logs::decode_logs(&body)
            .map_err(|e| e.to_string())
            .and_then(|request| split_logs(request).map_err(|e| e.to_string()))
            .map_err(|e| format!("undecodable OTLP/JSON: {e}")),
    };
    let split = match split {
        Ok(split) => split,
        Err(message) => {
            state.ingest.failed_request("http", "undecodable");
            return error(encoding, StatusCode::BAD_REQUEST, &message);
        }
    };
    let (rejected, reject_message) = (split.rejected_spans, split.reject_message.clone());
    match state.ingest.accept(split, signal, "http").await {
        Ok(()) => {
            let body = match (encoding, signal) {
                (Encoding::Protobuf, _) => {
                    super::grpc::export_response(signal, rejected, reject_message)
                }
                (Encoding::Json, Signal::Traces) => {
                    json::export_response(rejected, &reject_message)
                }
                (Encoding::Json, Signal::Logs) => {
                    json::logs_export_response(rejected, &reject_message)
                }
            };
            ([(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
        }
        Err(Refusal::TooLarge) => {
            let message =
                "request holds more spans than the whole sending queue (sending_queue.queue_size)";
            error(encoding, StatusCode::PAYLOAD_TOO_LARGE, message)
        }
        Err(refusal) => {
            let (message, retry_after) = match refusal {
                Refusal::Full { what, retry_after } => (what.to_string(), retry_after),
                Refusal::Storage(_) => (
                    "storage unavailable".to_string(),
                    std::time::Duration::from_secs(5),
                ),
                Refusal::Stopped | Refusal::TooLarge => (
                    "shutting down".to_string(),
                    std::time::Duration::from_secs(5),
                ),
            };
            let mut response = error(encoding, StatusCode::SERVICE_UNAVAILABLE, &message);
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
    }
}

/// 408 with `Connection: close`: the rest of the body is never read, so the connection cannot
/// carry another request. The client still holds the data and may retry.
fn body_read_timed_out(state: &HttpState, encoding: Encoding, limit: Duration) -> Response {
    state
        .ingest
        .metrics
        .receiver_closed_connections
        .get_or_create(&crate::telemetry::metrics::TransportReasonLabel {
            transport: "http",
            reason: "read_timeout",
        })
        .inc();
    let message = format!("request body not received within {limit:?} (read_timeout)");
    let mut response = error(encoding, StatusCode::REQUEST_TIMEOUT, &message);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The body, gunzipped if needed, refused with 413 once it exceeds `limit` bytes.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Vec<u8>, (StatusCode, String)> {
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body exceeds {limit} bytes"),
        )
    };
    // An oversize body is still read (and discarded, up to a cap) so the client gets a clean 413
    // instead of a connection reset mid-upload.
    let drain_cap = limit.saturating_mul(4).max(64 * 1024 * 1024);
    let mut raw = Vec::new();
    let mut seen = 0usize;
    let mut over = false;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("cannot read request body: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len();
        if !over && raw.len() + data.len() > limit {
            over = true;
            raw = Vec::new();
        }
        if over {
            if seen > drain_cap {
                break;
            }
        } else {
            raw.extend_from_slice(&data);
        }
    }
    if over {
        return Err(too_large());
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim();
    match encoding.to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(raw),
        "gzip" | "x-gzip" => {
            let mut out = Vec::new();
            let mut decoder =
                flate2::read::MultiGzDecoder::new(raw.as_slice()).take(limit as u64 + 1);
            decoder
                .read_to_end(&mut out)
                .map_err(|e| (StatusCode::BAD_REQUEST, format!("invalid gzip body: {e}")))?;
            if out.len() > limit {
                return Err(too_large());
            }
            Ok(out)
        }
        other => Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content encoding `{other}`; use gzip or none"),
        )),
    }
}

fn error(encoding: Encoding, code: StatusCode, message: &str) -> Response {
    let rpc_code = match code {
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            tonic::Code::InvalidArgument
        }
        StatusCode::PAYLOAD_TOO_LARGE => tonic::Code::ResourceExhausted,
        _ => tonic::Code::Unavailable,
    } as i32;
    let body = match encoding {
        Encoding::Protobuf => status::Status {
            code: rpc_code,
            message: message.to_string(),
            details: vec![],
        }
        .encode_to_vec(),
        Encoding::Json => json::status_body(rpc_code, message),
    };
    (
        code,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response()
}
