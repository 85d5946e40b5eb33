//! End-to-end through real sockets: OTLP clients → sidecar → OTLP/gRPC sink.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracetopics::Sidecar;
use tracetopics::core::AssembledTrace;
use tracetopics::pipeline::TraceHook;

const WAIT: Duration = Duration::from_secs(20);

async fn post(addr: std::net::SocketAddr, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    tracetopics::config::tls::http_client()
        .post(format!("http://{addr}/v1/traces"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// OTLP/JSON of one request, written the way OTLP/JSON producers write it (hex ids, numeric
/// enums, 64-bit ints as strings).
fn to_otlp_json(request: &ExportTraceServiceRequest) -> Vec<u8> {
    use serde_json::{Value, json};
    fn any(value: &opentelemetry_proto::tonic::common::v1::AnyValue) -> Value {
        use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
        match value.value.as_ref().unwrap() {
            V::StringValue(s) => json!({"stringValue": s}),
            V::IntValue(i) => json!({"intValue": i.to_string()}),
            other => panic!("not used in tests: {other:?}"),
        }
    }
    fn attrs(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> Value {
        Value::Array(
            kvs.iter()
                .map(|kv| json!({"key": kv.key, "value": any(kv.value.as_ref().unwrap())}))
                .collect(),
        )
    }
    let resource_spans: Vec<Value> = request.resource_spans.iter().map(|rs| {
        json!({
            "resource": {"attributes": attrs(&rs.resource.as_ref().unwrap().attributes)},
            "scopeSpans": rs.scope_spans.iter().map(|ss| json!({
                "scope": {"name": ss.scope.as_ref().unwrap().name, "version": ss.scope.as_ref().unwrap().version},
                "spans": ss.spans.iter().map(|s| json!({
                    "traceId": hex::encode(&s.trace_id),
                    "spanId": hex::encode(&s.span_id),
                    "parentSpanId": hex::encode(&s.parent_span_id),
                    "name": s.name,
                    "kind": s.kind,
                    "flags": s.flags,
                    "startTimeUnixNano": s.start_time_unix_nano.to_string(),
                    "endTimeUnixNano": s.end_time_unix_nano,
                    "attributes": attrs(&s.attributes),
                    "events": s.events.iter().map(|e| json!({"timeUnixNano": e.time_unix_nano.to_string(), "name": e.name, "attributes": attrs(&e.attributes)})).collect::<Vec<_>>(),
                    "links": s.links.iter().map(|l| json!({"traceId": hex::encode_upper(&l.trace_id), "spanId": hex::encode(&l.span_id), "traceState": l.trace_state, "attributes": attrs(&l.attributes), "flags": l.flags})).collect::<Vec<_>>(),
                    "status": {"code": s.status.as_ref().unwrap().code, "message": s.status.as_ref().unwrap().message},
                    "someFutureField": {"ignored": true},
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }).collect();
    serde_json::to_vec(&json!({"resourceSpans": resource_spans})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_from_grpc_and_http_reach_the_sink_exactly_once_and_intact() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let mut config = config(dir.path(), sink.addr);
    // The spans of a trace arrive ~120 requests apart; on a busy machine that outlasts the
    // shared 200ms idle wait, the trace leaves in parts and its root is faceted alone.
    config.assembler.idle_wait = tracetopics::config::types::HumanDuration::from_secs(2);
    let sidecar = Sidecar::start(config).await.unwrap();
    let grpc_addr = sidecar.addresses.grpc.unwrap();
    let http_addr = sidecar.addresses.http.unwrap();
    let mut client = grpc_client(grpc_addr).await;

    // 30 traces × 4 spans, sent span by span in an interleaved order over three transports.
    let traces = 30u32;
    let mut expected = Vec::new();
    for index in 0..4 {
        for trace in 0..traces {
            let span = rich_span(trace, index);
            expected.push(span.clone());
            let service = format!("svc-{}", trace % 3);
            let req = request(&service, "scope-a", vec![span]);
            match (trace + index) % 3 {
                0 => {
                    client.export(req).await.unwrap();
                }
                1 => {
                    let response =
                        post(http_addr, "application/x-protobuf", req.encode_to_vec()).await;
                    assert_eq!(response.status(), 200);
                    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
                }
                _ => {
                    let response = post(http_addr, "application/json", to_otlp_json(&req)).await;
                    assert_eq!(response.status(), 200);
                    assert_eq!(response.headers()["content-type"], "application/json");
                }
            }
        }
    }
    let total = expected.len();
    assert_eq!(sink.wait_for_spans(total, WAIT).await, total);

    let received = sink.spans();
    assert_eq!(received.len(), total, "every span exactly once");
    let ids: HashSet<_> = received.iter().map(|(_, _, s)| s.span_id.clone()).collect();
    assert_eq!(ids.len(), total, "no duplicates");
    for (service, scope, span) in &received {
        let trace = u32::from_be_bytes(span.trace_id[12..].try_into().unwrap());
        assert_eq!(service, &format!("svc-{}", trace % 3), "resource kept");
        assert_eq!(scope, "scope-a", "scope kept");
        let original = expected.iter().find(|e| e.span_id == span.span_id).unwrap();
        // The builtin facets summarize each trace onto its root span; nothing else changes.
        let mut span = span.clone();
        let added = span.attributes.len();
        span.attributes
            .retain(|a| !a.key.starts_with("tracetopics."));
        let added = added - span.attributes.len();
        assert_eq!(
            added > 0,
            span.parent_span_id.is_empty(),
            "only roots are enriched"
        );
        assert_eq!(&span, original, "attributes, events, links, status intact");
    }
    // Grouped by trace: each trace's spans left together in one export request.
    for request in sink.requests() {
        let traces_in_request: HashSet<_> = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.trace_id.clone())
            .collect();
        for trace in traces_in_request {
            let spans_here = request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .filter(|s| s.trace_id == trace)
                .count();
            assert_eq!(spans_here, 4, "a trace's spans are exported together");
        }
    }

    // The sink answering is not the end of the story: the exporter counts the send and the
    // engine deletes the records after it. Shutdown drains and joins both, so read the metrics
    // once it returns.
    let metrics = sidecar.metrics.clone();
    let report = sidecar.shutdown().await;
    assert!(report.drained);
    let text = metrics.encode();
    let accepted: f64 = ["grpc", "http"]
        .iter()
        .map(|t| {
            metric(
                &text,
                &format!("tracetopics_receiver_accepted_spans_total{{transport=\"{t}\"}}"),
            )
        })
        .sum();
    assert_eq!(accepted, total as f64);
    assert_eq!(
        metric(&text, "tracetopics_exporter_sent_spans_total"),
        total as f64
    );
    assert_eq!(metric(&text, "tracetopics_exporter_queue_size"), 0.0);
    assert_eq!(
        metric(
            &text,
            "tracetopics_assembler_released_traces_total{reason=\"idle\"}"
        ),
        f64::from(traces)
    );
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<AssembledTrace>>>);

impl TraceHook for Recorder {
    fn on_trace(&mut self, trace: &mut AssembledTrace) {
        self.0.lock().unwrap().push(trace.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_split_over_requests_and_protocols_is_released_once_and_late_spans_pass_through() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let recorder = Recorder::default();
    let sidecar =
        Sidecar::start_with_hook(config(dir.path(), sink.addr), Box::new(recorder.clone()))
            .await
            .unwrap();
    let mut client = grpc_client(sidecar.addresses.grpc.unwrap()).await;
    let http_addr = sidecar.addresses.http.unwrap();

    client
        .export(request("api", "s", vec![rich_span(1, 1), rich_span(1, 2)]))
        .await
        .unwrap();
    post(
        http_addr,
        "application/x-protobuf",
        request("worker", "s", vec![rich_span(1, 3)]).encode_to_vec(),
    )
    .await;
    post(
        http_addr,
        "application/json",
        to_otlp_json(&request("api", "s", vec![rich_span(1, 0)])),
    )
    .await;
    assert_eq!(sink.wait_for_spans(4, WAIT).await, 4);
    {
        let released = recorder.0.lock().unwrap();
        assert_eq!(released.len(), 1, "one trace, released once");
        assert_eq!(released[0].spans, 4);
        let decoded = opentelemetry_proto::tonic::trace::v1::TracesData::decode(
            released[0].payload.as_slice(),
        )
        .unwrap();
        let services: HashSet<_> = decoded
            .resource_spans
            .iter()
            .map(|r| service_name(r.resource.as_ref().unwrap()))
            .collect();
        assert_eq!(
            services,
            HashSet::from(["api".to_string(), "worker".to_string()])
        );
    }

    // A span of the released trace goes straight out, without a second release.
    client
        .export(request("api", "s", vec![rich_span(1, 9)]))
        .await
        .unwrap();
    assert_eq!(sink.wait_for_spans(5, WAIT).await, 5);
    assert_eq!(recorder.0.lock().unwrap().len(), 1);
    let text = metrics_text(sidecar.addresses.metrics).await;
    assert_eq!(metric(&text, "tracetopics_assembler_late_spans_total"), 1.0);
    sidecar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_endpoints_answer_with_collector_style_names() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let sidecar = Sidecar::start(config(dir.path(), sink.addr)).await.unwrap();
    let health = tracetopics::config::tls::http_client()
        .get(format!("http://{}/", sidecar.addresses.health))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.text().await.unwrap().contains("Server available"));
    let mut client = grpc_client(sidecar.addresses.grpc.unwrap()).await;
    client
        .export(request("svc", "s", vec![rich_span(1, 0)]))
        .await
        .unwrap();
    let text = metrics_text(sidecar.addresses.metrics).await;
    for name in [
        "tracetopics_receiver_accepted_spans_total{transport=\"grpc\"} 1",
        "tracetopics_exporter_queue_capacity 500000",
        "tracetopics_assembler_traces_in_flight",
        "tracetopics_exporter_sent_spans_total",
        "tracetopics_exporter_queue_size",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
    sidecar.shutdown().await;
}
