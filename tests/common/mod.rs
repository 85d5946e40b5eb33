//! Shared test fixtures: a real OTLP gRPC sink on loopback, span builders, and a sidecar config
//! that binds every port to 0 and keeps its redb file in a temp dir.
#![allow(dead_code)]

pub mod openai;
pub mod tls;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tracetopics::Config;

/// How the sink answers: fail the first `fail_first` requests with `code`, then accept.
#[derive(Clone)]
pub struct SinkBehaviour {
    pub fail_first: usize,
    pub code: tonic::Code,
    pub retry_delay: Option<Duration>,
    /// Refuse (INVALID_ARGUMENT) any request holding a span with this name.
    pub poison: Option<String>,
}

impl Default for SinkBehaviour {
    fn default() -> Self {
        Self {
            fail_first: 0,
            code: tonic::Code::Unavailable,
            retry_delay: None,
            poison: None,
        }
    }
}

#[derive(Default)]
struct SinkState {
    accepted: Vec<ExportTraceServiceRequest>,
    /// Log requests, each stamped with how many trace requests had arrived before it (order).
    logs: Vec<(usize, ExportLogsServiceRequest)>,
    attempts: usize,
}

/// A downstream OTLP/gRPC collector for tests.
#[derive(Clone)]
pub struct Sink {
    state: Arc<Mutex<SinkState>>,
    behaviour: SinkBehaviour,
    spans_seen: watch::Sender<usize>,
    logs_seen: watch::Sender<usize>,
    pub addr: SocketAddr,
}

struct SinkService(Sink);

#[tonic::async_trait]
impl LogsService for SinkService {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let sink = &self.0;
        let request = request.into_inner();
        let records: usize = request
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum();
        let mut state = sink.state.lock().unwrap();
        let order = state.accepted.len();
        state.logs.push((order, request));
        sink.logs_seen.send_modify(|n| *n += records);
        Ok(tonic::Response::new(ExportLogsServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl TraceService for SinkService {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let sink = &self.0;
        let mut state = sink.state.lock().unwrap();
        state.attempts += 1;
        if state.attempts <= sink.behaviour.fail_first {
            let b = &sink.behaviour;
            return Err(match b.retry_delay {
                Some(delay) => {
                    tracetopics::otlp::status::grpc_status_with_retry(b.code, "sink refuses", delay)
                }
                None => tonic::Status::new(b.code, "sink refuses"),
            });
        }
        let request = request.into_inner();
        if let Some(poison) = &sink.behaviour.poison {
            let poisoned = request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .any(|s| &s.name == poison);
            if poisoned {
                return Err(tonic::Status::invalid_argument("poisoned span"));
            }
        }
        let spans = count_spans(&request);
        state.accepted.push(request);
        sink.spans_seen.send_modify(|n| *n += spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Sink {
    pub async fn start(behaviour: SinkBehaviour) -> Sink {
        Self::start_on("127.0.0.1:0".parse().unwrap(), behaviour).await
    }

    pub async fn start_on(addr: SocketAddr, behaviour: SinkBehaviour) -> Sink {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sink = Sink {
            state: Arc::default(),
            behaviour,
            spans_seen: watch::channel(0).0,
            logs_seen: watch::channel(0).0,
            addr,
        };
        let logs = LogsServiceServer::new(SinkService(sink.clone()))
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        let service = TraceServiceServer::new(SinkService(sink.clone()))
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
            .max_decoding_message_size(64 * 1024 * 1024);
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .add_service(logs)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .unwrap();
        });
        sink
    }

    /// Waits (event-driven, bounded) until at least `n` spans arrived; returns how many did.
    pub async fn wait_for_spans(&self, n: usize, limit: Duration) -> usize {
        let mut seen = self.spans_seen.subscribe();
        let _ = tokio::time::timeout(limit, seen.wait_for(|count| *count >= n)).await;
        *seen.borrow()
    }

    /// Waits (event-driven, bounded) until at least `n` log records arrived; returns how many did.
    pub async fn wait_for_log_records(&self, n: usize, limit: Duration) -> usize {
        let mut seen = self.logs_seen.subscribe();
        let _ = tokio::time::timeout(limit, seen.wait_for(|count| *count >= n)).await;
        *seen.borrow()
    }

    /// Every received log record, with the number of trace requests received before it.
    pub fn log_records(&self) -> Vec<(usize, LogRecord)> {
        let state = self.state.lock().unwrap();
        let mut out = Vec::new();
        for (order, request) in &state.logs {
            for rl in &request.resource_logs {
                for sl in &rl.scope_logs {
                    out.extend(sl.log_records.iter().map(|r| (*order, r.clone())));
                }
            }
        }
        out
    }

    pub fn requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.state.lock().unwrap().accepted.clone()
    }

    pub fn attempts(&self) -> usize {
        self.state.lock().unwrap().attempts
    }

    /// Every received span with its resource's service name and its scope name.
    pub fn spans(&self) -> Vec<(String, String, Span)> {
        let mut out = Vec::new();
        for request in self.requests() {
            for rs in request.resource_spans {
                let service = rs.resource.as_ref().map(service_name).unwrap_or_default();
                for ss in rs.scope_spans {
                    let scope = ss
                        .scope
                        .as_ref()
                        .map(|s| s.name.clone())
                        .unwrap_or_default();
                    for span in ss.spans {
                        out.push((service.clone(), scope.clone(), span));
                    }
                }
            }
        }
        out
    }
}

pub fn count_spans(request: &ExportTraceServiceRequest) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

pub fn service_name(resource: &Resource) -> String {
    resource
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

pub fn string_attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

pub fn trace_id(n: u32) -> Vec<u8> {
    let mut id = vec![0xab; 16];
    id[12..].copy_from_slice(&n.to_be_bytes());
    id
}

pub fn span_id(trace: u32, index: u32) -> Vec<u8> {
    let mut id = vec![0; 8];
    id[..4].copy_from_slice(&trace.to_be_bytes());
    id[4..].copy_from_slice(&(index + 1).to_be_bytes());
    id
}

/// A span with attributes, an event, a link and a status, so fidelity can be checked.
pub fn rich_span(trace: u32, index: u32) -> Span {
    Span {
        trace_id: trace_id(trace),
        span_id: span_id(trace, index),
        parent_span_id: if index == 0 {
            vec![]
        } else {
            span_id(trace, 0)
        },
        name: format!("op-{trace}-{index}"),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(index),
        end_time_unix_nano: 1_700_000_000_000_000_500 + u64::from(index),
        attributes: vec![
            string_attr("gen_ai.operation.name", "chat"),
            KeyValue {
                key: "gen_ai.usage.input_tokens".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(i64::from(index) * 100)),
                }),
                ..Default::default()
            },
        ],
        events: vec![span::Event {
            time_unix_nano: 1_700_000_000_000_000_100,
            name: "gen_ai.content.prompt".into(),
            attributes: vec![string_attr("gen_ai.prompt", "hello")],
            dropped_attributes_count: 0,
        }],
        links: vec![span::Link {
            trace_id: trace_id(trace + 1_000_000),
            span_id: span_id(7, 7),
            trace_state: "k=v".into(),
            attributes: vec![string_attr("link", "yes")],
            dropped_attributes_count: 0,
            flags: 1,
        }],
        status: Some(Status {
            message: if index == 2 {
                "boom".into()
            } else {
                String::new()
            },
            code: if index == 2 { 2 } else { 1 },
        }),
        flags: 1,
        ..Default::default()
    }
}

pub fn request(service: &str, scope: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_attr("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: scope.into(),
                    version: "1.0".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// A config on loopback with ephemeral ports, a temp redb file, short waits and the given sink.
/// Tests adjust fields directly.
pub fn config(dir: &std::path::Path, sink: SocketAddr) -> Config {
    let text = format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:0\n      http:\n        endpoint: 127.0.0.1:0\n\
assembler:\n  idle_wait: 200ms\n\
exporters:\n  otlp:\n    endpoint: {sink}\n    retry_on_failure:\n      initial_interval: 20ms\n      max_interval: 100ms\n    batch:\n      timeout: 20ms\n\
storage:\n  path: {}\n\
telemetry:\n  metrics:\n    endpoint: 127.0.0.1:0\n\
health_check:\n  endpoint: 127.0.0.1:0\ntopics:\n  admin:\n    endpoint: 127.0.0.1:0\n\
service:\n  shutdown_timeout: 5s\n",
        dir.join("tracetopics.redb").display()
    );
    Config::parse(&text, |_| None).unwrap_or_else(|e| panic!("{e}"))
}

pub async fn grpc_client(
    addr: SocketAddr,
) -> opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient<
    tonic::transport::Channel,
> {
    opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

/// Spans per trace id from what the sink received.
pub fn spans_by_trace(sink: &Sink) -> HashMap<Vec<u8>, Vec<Span>> {
    let mut out: HashMap<Vec<u8>, Vec<Span>> = HashMap::new();
    for (_, _, span) in sink.spans() {
        out.entry(span.trace_id.clone()).or_default().push(span);
    }
    out
}

pub async fn metrics_text(addr: SocketAddr) -> String {
    tracetopics::config::tls::http_client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of one Prometheus sample line, e.g. `tracetopics_exporter_sent_spans_total`.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// Sends arbitrary bytes as a gRPC TraceService/Export request (for malformed-payload tests).
pub async fn grpc_raw_export(
    addr: SocketAddr,
    body: Vec<u8>,
    gzip: bool,
) -> Result<(), tonic::Status> {
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
    struct Raw;
    struct RawEnc;
    struct RawDec;
    impl Encoder for RawEnc {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
            bytes::BufMut::put_slice(dst, &item);
            Ok(())
        }
    }
    impl Decoder for RawDec {
        type Item = ();
        type Error = tonic::Status;
        fn decode(&mut self, _src: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
            Ok(Some(()))
        }
    }
    impl Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = ();
        type Encoder = RawEnc;
        type Decoder = RawDec;
        fn encoder(&mut self) -> RawEnc {
            RawEnc
        }
        fn decoder(&mut self) -> RawDec {
            RawDec
        }
    }
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    if gzip {
        grpc = grpc.send_compressed(tonic::codec::CompressionEncoding::Gzip);
    }
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    grpc.unary(tonic::Request::new(body), path, Raw)
        .await
        .map(|_| ())
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}
