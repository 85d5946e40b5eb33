//! The exporter against misbehaving downstreams: retryable refusals, permanent errors, an outage,
//! and the OTLP/HTTP client against a real HTTP server.

mod common;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::Code;
use tracetopics::Sidecar;
use tracetopics::export::config::ExportProtocol;

const WAIT: Duration = Duration::from_secs(20);

async fn send_traces(addr: std::net::SocketAddr, traces: u32, spans: u32) {
    let mut client = grpc_client(addr).await;
    for trace in 0..traces {
        client
            .export(request(
                "svc",
                "s",
                (0..spans).map(|i| rich_span(trace, i)).collect(),
            ))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_refusing_for_a_while_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour {
        fail_first: 4,
        code: Code::Unavailable,
        retry_delay: Some(Duration::from_millis(30)),
        poison: None,
    })
    .await;
    let sidecar = Sidecar::start(config(dir.path(), sink.addr)).await.unwrap();
    send_traces(sidecar.addresses.grpc.unwrap(), 10, 3).await;
    assert_eq!(sink.wait_for_spans(30, WAIT).await, 30);
    assert!(sink.attempts() >= 5);
    let metrics = sidecar.metrics.clone();
    sidecar.shutdown().await;
    let text = metrics.encode();
    assert!(metric(&text, "tracetopics_exporter_requests_retried_total") >= 4.0);
    assert_eq!(metric(&text, "tracetopics_exporter_sent_spans_total"), 30.0);
    assert_eq!(metric(&text, "tracetopics_exporter_queue_size"), 0.0);
    assert_eq!(spans_by_trace(&sink).len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_long_retry_info_is_capped_and_retried_within_the_time_budget() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour {
        fail_first: 2,
        code: Code::Unavailable,
        retry_delay: Some(Duration::from_secs(3600)),
        poison: None,
    })
    .await;
    let mut config = config(dir.path(), sink.addr);
    // Uncapped, the first answer would exceed the budget and the batch would be dropped at once.
    config.exporters.otlp.retry_on_failure.max_elapsed_time =
        tracetopics::config::types::HumanDuration::from_secs(60);
    let sidecar = Sidecar::start(config).await.unwrap();
    send_traces(sidecar.addresses.grpc.unwrap(), 2, 3).await;
    assert_eq!(sink.wait_for_spans(6, WAIT).await, 6);
    let metrics = sidecar.metrics.clone();
    sidecar.shutdown().await;
    let text = metrics.encode();
    assert!(metric(&text, "tracetopics_exporter_requests_retried_total") >= 2.0);
    assert_eq!(metric(&text, "tracetopics_exporter_sent_spans_total"), 6.0);
    assert!(
        !text.contains("tracetopics_exporter_send_failed_spans_total{"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_that_is_down_then_comes_up_gets_everything() {
    let dir = tempfile::tempdir().unwrap();
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = reserved.local_addr().unwrap();
    drop(reserved);
    let sidecar = Sidecar::start(config(dir.path(), addr)).await.unwrap();
    send_traces(sidecar.addresses.grpc.unwrap(), 5, 2).await;
    // Wait until the exporter has failed at least twice against the closed port.
    let metrics = sidecar.metrics.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while metrics.exporter_requests_retried.get() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(metrics.exporter_requests_retried.get() >= 2);
    let sink = Sink::start_on(addr, SinkBehaviour::default()).await;
    assert_eq!(sink.wait_for_spans(10, WAIT).await, 10);
    sidecar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_are_counted_not_retried() {
    for code in [Code::InvalidArgument, Code::ResourceExhausted] {
        let dir = tempfile::tempdir().unwrap();
        let sink = Sink::start(SinkBehaviour {
            fail_first: usize::MAX,
            code,
            retry_delay: None,
            poison: None,
        })
        .await;
        let sidecar = Sidecar::start(config(dir.path(), sink.addr)).await.unwrap();
        send_traces(sidecar.addresses.grpc.unwrap(), 1, 3).await;
        let metrics = sidecar.metrics.clone();
        let report = sidecar.shutdown().await;
        assert!(
            report.drained,
            "{code:?}: a permanent failure is final, not stuck in the queue"
        );
        assert_eq!(report.spans_left, 0);
        assert_eq!(sink.attempts(), 1, "{code:?} must not be retried");
        let text = metrics.encode();
        assert_eq!(
            metric(
                &text,
                "tracetopics_exporter_send_failed_spans_total{reason=\"permanent\"}"
            ),
            3.0,
            "{code:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refused_trace_does_not_take_its_batch_neighbours_down() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour {
        poison: Some("poison".into()),
        ..Default::default()
    })
    .await;
    let sidecar = Sidecar::start(config(dir.path(), sink.addr)).await.unwrap();
    let mut bad = rich_span(2, 0);
    bad.name = "poison".into();
    // One request, three traces: released together, exported in one batch.
    let spans = vec![rich_span(1, 0), rich_span(1, 1), bad, rich_span(3, 0)];
    grpc_client(sidecar.addresses.grpc.unwrap())
        .await
        .export(request("svc", "s", spans))
        .await
        .unwrap();
    let metrics = sidecar.metrics.clone();
    sidecar.shutdown().await;
    let text = metrics.encode();
    assert_eq!(sink.spans().len(), 3, "the good traces arrive");
    assert_eq!(
        metric(
            &text,
            "tracetopics_exporter_send_failed_spans_total{reason=\"permanent\"}"
        ),
        1.0
    );
    assert_eq!(metric(&text, "tracetopics_exporter_sent_spans_total"), 3.0);
}

#[derive(Clone, Default)]
struct HttpSink {
    requests: Arc<Mutex<Vec<(HeaderMap, ExportTraceServiceRequest)>>>,
    attempts: Arc<Mutex<usize>>,
    spans: Arc<tokio::sync::watch::Sender<usize>>,
}

async fn http_sink_handler(
    axum::extract::State(sink): axum::extract::State<HttpSink>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let attempt = {
        let mut attempts = sink.attempts.lock().unwrap();
        *attempts += 1;
        *attempts
    };
    let mut out = HeaderMap::new();
    if attempt <= 2 {
        out.insert("retry-after", "0".parse().unwrap());
        return (StatusCode::SERVICE_UNAVAILABLE, out, Vec::new());
    }
    let mut raw = Vec::new();
    if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        flate2::read::GzDecoder::new(body.as_ref())
            .read_to_end(&mut raw)
            .unwrap();
    } else {
        raw = body.to_vec();
    }
    let request = ExportTraceServiceRequest::decode(raw.as_slice()).unwrap();
    let spans = count_spans(&request);
    sink.requests.lock().unwrap().push((headers, request));
    sink.spans.send_modify(|n| *n += spans);
    out.insert("content-type", "application/x-protobuf".parse().unwrap());
    (
        StatusCode::OK,
        out,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

/// An OTLP/HTTP sink on loopback whose first two answers are 503 with `Retry-After: 0`.
async fn start_http_sink() -> (HttpSink, std::net::SocketAddr) {
    let sink = HttpSink {
        spans: Arc::new(tokio::sync::watch::channel(0).0),
        ..Default::default()
    };
    let router = axum::Router::new()
        .route("/v1/traces", axum::routing::post(http_sink_handler))
        .with_state(sink.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (sink, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_exporter_retries_503_with_retry_after_and_sends_headers_and_gzip() {
    let (sink, addr) = start_http_sink().await;

    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), addr);
    config.exporters.otlp.protocol = ExportProtocol::Http;
    config.exporters.otlp.endpoint = format!("http://{addr}");
    config.exporters.otlp.headers.insert(
        "x-api-key".into(),
        tracetopics::config::types::Secret("k3y".into()),
    );
    let sidecar = Sidecar::start(config).await.unwrap();
    send_traces(sidecar.addresses.grpc.unwrap(), 4, 2).await;
    let mut seen = sink.spans.subscribe();
    tokio::time::timeout(WAIT, seen.wait_for(|n| *n >= 8))
        .await
        .unwrap()
        .unwrap();
    let requests = sink.requests.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .all(|(h, _)| h["x-api-key"] == "k3y" && h["content-encoding"] == "gzip")
    );
    assert_eq!(
        requests.iter().map(|(_, r)| count_spans(r)).sum::<usize>(),
        8
    );
    assert!(*sink.attempts.lock().unwrap() >= 3);
    sidecar.shutdown().await;
}

/// OTLP/HTTP to an `https://` downstream, trusted through `tls.ca_file`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_exporter_sends_over_tls_to_an_https_endpoint() {
    // The sink's first two answers are 503s: the retries go over TLS too.
    let (sink, plain) = start_http_sink().await;
    let proxy = common::tls::tls_proxy(plain).await;

    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), plain);
    config.exporters.otlp.protocol = ExportProtocol::Http;
    config.exporters.otlp.endpoint = format!("https://localhost:{}", proxy.port());
    config.exporters.otlp.tls.ca_file = Some(common::tls::fixture("ca.pem"));
    let sidecar = Sidecar::start(config).await.unwrap();
    send_traces(sidecar.addresses.grpc.unwrap(), 3, 2).await;
    let mut seen = sink.spans.subscribe();
    tokio::time::timeout(WAIT, seen.wait_for(|n| *n >= 6))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sidecar.shutdown().await.spans_left, 0);
}

/// OTLP/gRPC to an `https://` downstream (h2 over TLS), trusted through `tls.ca_file`; without
/// it the certificate is not trusted and nothing is delivered (the spans stay queued).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_exporter_sends_over_tls_to_an_https_endpoint() {
    let sink = Sink::start(SinkBehaviour::default()).await;
    let proxy = common::tls::tls_proxy(sink.addr).await;

    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), sink.addr);
    config.exporters.otlp.endpoint = format!("https://localhost:{}", proxy.port());
    config.exporters.otlp.tls.ca_file = Some(common::tls::fixture("ca.pem"));
    let sidecar = Sidecar::start(config).await.unwrap();
    send_traces(sidecar.addresses.grpc.unwrap(), 3, 2).await;
    assert_eq!(sink.wait_for_spans(6, WAIT).await, 6);
    assert_eq!(sidecar.shutdown().await.spans_left, 0);

    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path(), sink.addr);
    config.exporters.otlp.endpoint = format!("https://localhost:{}", proxy.port());
    config.service.shutdown_timeout = tracetopics::config::types::HumanDuration::from_millis(500);
    let sidecar = Sidecar::start(config).await.unwrap();
    send_traces(sidecar.addresses.grpc.unwrap(), 2, 2).await;
    let report = sidecar.shutdown().await;
    assert_eq!(sink.spans().len(), 6, "an untrusted server gets nothing");
    assert_eq!(
        report.spans_left, 4,
        "the spans stay queued for the next start"
    );
}
