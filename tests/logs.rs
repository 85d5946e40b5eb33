//! OTLP logs: GenAI instrumentations emit message content as log records, so the sidecar accepts
//! logs over gRPC and HTTP, joins them to their trace by trace id, hands them to the pipeline hook
//! with the spans, and passes every record downstream unchanged.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, LogsData, ResourceLogs, ScopeLogs};
use prost::Message;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracetopics::Sidecar;
use tracetopics::core::AssembledTrace;
use tracetopics::pipeline::TraceHook;

const WAIT: Duration = Duration::from_secs(20);

fn log_record(trace: Option<u32>, span_index: u32, event: &str, content: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: 1_700_000_000_000_000_000,
        event_name: event.into(),
        trace_id: trace.map(trace_id).unwrap_or_default(),
        span_id: trace.map(|t| span_id(t, span_index)).unwrap_or_default(),
        attributes: vec![string_attr("event.name", event)],
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(content.into())),
        }),
        ..Default::default()
    }
}

fn logs_request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                attributes: vec![string_attr("service.name", "agent")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

/// Records what the pipeline hook saw of each trace: spans and decoded log bodies.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(u64, Vec<String>)>>>);

impl TraceHook for Recorder {
    fn on_trace(&mut self, trace: &mut AssembledTrace) {
        let logs = LogsData::decode(trace.logs.as_slice()).unwrap();
        let bodies = logs
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
            .map(|r| match r.body.as_ref().and_then(|b| b.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                _ => String::new(),
            })
            .collect::<Vec<_>>();
        assert_eq!(bodies.len() as u64, trace.log_records);
        self.0.lock().unwrap().push((trace.spans, bodies));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_join_their_trace_and_every_record_reaches_the_sink() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let recorder = Recorder::default();
    let sidecar =
        Sidecar::start_with_hook(config(dir.path(), sink.addr), Box::new(recorder.clone()))
            .await
            .unwrap();
    let grpc_addr = sidecar.addresses.grpc.unwrap();
    let http_addr = sidecar.addresses.http.unwrap();

    // The conversation arrives as log events before, between and after the spans.
    let mut logs_client = LogsServiceClient::connect(format!("http://{grpc_addr}"))
        .await
        .unwrap();
    logs_client
        .export(logs_request(vec![log_record(
            Some(1),
            1,
            "gen_ai.user.message",
            "first",
        )]))
        .await
        .unwrap();
    let mut client = grpc_client(grpc_addr).await;
    client
        .export(request(
            "agent",
            "s",
            vec![rich_span(1, 0), rich_span(1, 1)],
        ))
        .await
        .unwrap();
    let response = tracetopics::config::tls::http_client()
        .post(format!("http://{http_addr}/v1/logs"))
        .header("content-type", "application/x-protobuf")
        .body(
            logs_request(vec![
                log_record(Some(1), 1, "gen_ai.choice", "second"),
                log_record(None, 0, "app.startup", "untraced"),
            ])
            .encode_to_vec(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    assert_eq!(
        ExportLogsServiceResponse::decode(body.as_ref()).unwrap(),
        ExportLogsServiceResponse::default()
    );
    let json = serde_json::json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "traceId": hex::encode(trace_id(1)), "spanId": hex::encode(span_id(1, 1)),
        "eventName": "gen_ai.assistant.message", "severityNumber": 9,
        "body": {"stringValue": "third"}
    }]}]}]});
    let response = tracetopics::config::tls::http_client()
        .post(format!("http://{http_addr}/v1/logs"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&json).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "{}");

    assert_eq!(sink.wait_for_spans(2, WAIT).await, 2);
    assert_eq!(sink.wait_for_log_records(4, WAIT).await, 4);
    let seen = recorder.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(
            2,
            vec!["first".to_string(), "second".into(), "third".into()]
        )],
        "the hook gets the trace's spans and its logs, in arrival order; untraced logs skip it"
    );
    let records = sink.log_records();
    let bodies: Vec<String> = records
        .iter()
        .map(
            |(_, r)| match r.body.as_ref().unwrap().value.as_ref().unwrap() {
                any_value::Value::StringValue(s) => s.clone(),
                _ => unreachable!(),
            },
        )
        .collect();
    for expected in ["first", "second", "third", "untraced"] {
        assert_eq!(
            bodies.iter().filter(|b| *b == expected).count(),
            1,
            "{expected}"
        );
    }
    // The trace's logs leave after its spans, so a downstream can join them.
    for (order, record) in &records {
        if !record.trace_id.is_empty() {
            assert!(*order >= 1, "logs of trace 1 were sent before its spans");
        }
    }

    // A log record of an already released trace passes straight through.
    logs_client
        .export(logs_request(vec![log_record(
            Some(1),
            0,
            "gen_ai.evaluation.result",
            "late",
        )]))
        .await
        .unwrap();
    assert_eq!(sink.wait_for_log_records(5, WAIT).await, 5);
    let metrics_addr = sidecar.addresses.metrics;
    let text = metrics_text(metrics_addr).await;
    assert_eq!(
        metric(
            &text,
            "tracetopics_receiver_accepted_log_records_total{transport=\"http\"}"
        ),
        3.0
    );
    assert_eq!(
        metric(
            &text,
            "tracetopics_receiver_accepted_log_records_total{transport=\"grpc\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(&text, "tracetopics_assembler_late_log_records_total"),
        1.0
    );
    sidecar.shutdown().await;
    assert_eq!(recorder.0.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_records_with_bad_ids_are_rejected_alone_and_garbage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let sidecar = Sidecar::start(config(dir.path(), sink.addr)).await.unwrap();
    let http_addr = sidecar.addresses.http.unwrap();
    let grpc_addr = sidecar.addresses.grpc.unwrap();

    let mut bad = log_record(Some(2), 0, "gen_ai.user.message", "bad span id");
    bad.span_id = vec![1, 2, 3];
    let good = log_record(Some(2), 0, "gen_ai.user.message", "good");
    let mut client = LogsServiceClient::connect(format!("http://{grpc_addr}"))
        .await
        .unwrap();
    let response = client
        .export(logs_request(vec![bad, good]))
        .await
        .unwrap()
        .into_inner();
    let partial = response.partial_success.expect("partial success");
    assert_eq!(partial.rejected_log_records, 1);
    assert!(
        partial.error_message.contains("span id"),
        "{}",
        partial.error_message
    );

    let response = tracetopics::config::tls::http_client()
        .post(format!("http://{http_addr}/v1/logs"))
        .header("content-type", "application/json")
        .body(r#"{"resourceLogs": 5}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = tracetopics::config::tls::http_client()
        .post(format!("http://{http_addr}/v1/logs"))
        .header("content-type", "application/x-protobuf")
        .body(vec![0x0a, 0xff, 0xff])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    assert_eq!(sink.wait_for_log_records(1, WAIT).await, 1);
    sidecar.shutdown().await;
}

#[derive(Clone, Default)]
struct HttpLogSink {
    paths: Arc<Mutex<Vec<String>>>,
    seen: Arc<tokio::sync::watch::Sender<usize>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_exporter_sends_logs_to_v1_logs_beside_v1_traces() {
    let sink = HttpLogSink {
        seen: Arc::new(tokio::sync::watch::channel(0).0),
        ..Default::default()
    };
    async fn handle(
        axum::extract::State(sink): axum::extract::State<HttpLogSink>,
        uri: axum::http::Uri,
        headers: axum::http::HeaderMap,
        body: bytes::Bytes,
    ) -> Vec<u8> {
        use std::io::Read;
        assert_eq!(headers["content-encoding"], "gzip");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(body.as_ref())
            .read_to_end(&mut raw)
            .unwrap();
        let body = raw;
        let items = if uri.path().ends_with("/v1/logs") {
            let request = ExportLogsServiceRequest::decode(body.as_slice()).unwrap();
            request.resource_logs[0].scope_logs[0].log_records.len()
        } else {
            count_spans(
                &opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
                    body.as_slice(),
                )
                .unwrap(),
            )
        };
        sink.paths.lock().unwrap().push(uri.path().to_string());
        sink.seen.send_modify(|n| *n += items);
        Vec::new()
    }
    let router = axum::Router::new()
        .route("/otlp/v1/traces", axum::routing::post(handle))
        .route("/otlp/v1/logs", axum::routing::post(handle))
        .with_state(sink.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), addr);
    config.exporters.otlp.protocol = tracetopics::export::config::ExportProtocol::Http;
    config.exporters.otlp.endpoint = format!("http://{addr}/otlp");
    let sidecar = Sidecar::start(config).await.unwrap();
    let mut client = grpc_client(sidecar.addresses.grpc.unwrap()).await;
    client
        .export(request("agent", "s", vec![rich_span(3, 0)]))
        .await
        .unwrap();
    let mut logs =
        LogsServiceClient::connect(format!("http://{}", sidecar.addresses.grpc.unwrap()))
            .await
            .unwrap();
    logs.export(logs_request(vec![log_record(
        Some(3),
        0,
        "gen_ai.user.message",
        "x",
    )]))
    .await
    .unwrap();
    let mut seen = sink.seen.subscribe();
    tokio::time::timeout(WAIT, seen.wait_for(|n| *n >= 2))
        .await
        .unwrap()
        .unwrap();
    sidecar.shutdown().await;
    let paths = sink.paths.lock().unwrap().clone();
    assert_eq!(paths, vec!["/otlp/v1/traces", "/otlp/v1/logs"]);
}
