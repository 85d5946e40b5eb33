//! What clients get back for bad, big, partially invalid or unwelcome requests — each over a
//! real socket, each with the status code the OTLP spec asks for, and nothing silently dropped.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use std::time::Duration;
use tonic::Code;
use tracetopics::Sidecar;

const WAIT: Duration = Duration::from_secs(20);

fn big_request(bytes: usize) -> Vec<u8> {
    let mut span = rich_span(1, 0);
    span.attributes
        .push(string_attr("blob", &"a".repeat(bytes)));
    request("svc", "s", vec![span]).encode_to_vec()
}

async fn post(
    addr: std::net::SocketAddr,
    content_type: &str,
    gzip_body: bool,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut builder = tracetopics::config::tls::http_client()
        .post(format!("http://{addr}/v1/traces"))
        .header("content-type", content_type);
    builder = if gzip_body {
        builder.header("content-encoding", "gzip").body(gzip(&body))
    } else {
        builder.body(body)
    };
    builder.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_malformed_requests_get_the_otlp_codes() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let mut config = config(dir.path(), sink.addr);
    config
        .receivers
        .otlp
        .protocols
        .grpc
        .as_mut()
        .unwrap()
        .max_recv_msg_size_mib = 1;
    config
        .receivers
        .otlp
        .protocols
        .http
        .as_mut()
        .unwrap()
        .max_request_body_size = 1024 * 1024;
    let sidecar = Sidecar::start(config).await.unwrap();
    let grpc = sidecar.addresses.grpc.unwrap();
    let http = sidecar.addresses.http.unwrap();

    // gRPC: over the limit, plain and gzip (the compressed body is tiny; the limit applies after
    // decompression).
    let big = big_request(2 * 1024 * 1024);
    let plain = grpc_raw_export(grpc, big.clone(), false).await.unwrap_err();
    assert_eq!(plain.code(), Code::ResourceExhausted, "{plain:?}");
    let zipped = grpc_raw_export(grpc, big.clone(), true).await.unwrap_err();
    assert_eq!(zipped.code(), Code::ResourceExhausted, "{zipped:?}");
    // gRPC: undecodable protobuf.
    let garbage = grpc_raw_export(grpc, vec![0xff, 0xff, 0xff, 0x01, 0x02], false)
        .await
        .unwrap_err();
    assert_eq!(garbage.code(), Code::InvalidArgument, "{garbage:?}");

    // HTTP: over the limit, plain and as a gzip bomb.
    assert_eq!(
        post(http, "application/x-protobuf", false, big.clone())
            .await
            .status(),
        413
    );
    assert!(gzip(&big).len() < 64 * 1024);
    assert_eq!(
        post(http, "application/x-protobuf", true, big)
            .await
            .status(),
        413
    );
    // HTTP: undecodable protobuf and JSON, answered in the request's encoding.
    let response = post(
        http,
        "application/x-protobuf",
        false,
        vec![0xff, 0xff, 0xff],
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let status =
        tracetopics::otlp::status::Status::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(status.code, Code::InvalidArgument as i32);
    let response = post(
        http,
        "application/json",
        false,
        b"{\"resourceSpans\": [".to_vec(),
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["code"], 3);
    let response = post(
        http,
        "application/json",
        false,
        br#"{"resourceSpans": {"not": "an array"}}"#.to_vec(),
    )
    .await;
    assert_eq!(response.status(), 400);
    // Bad gzip and a content type OTLP does not define.
    assert_eq!(
        post(http, "application/x-protobuf", false, b"nope".to_vec())
            .await
            .status(),
        400
    );
    let response = tracetopics::config::tls::http_client()
        .post(format!("http://{http}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(b"not gzip".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        post(http, "text/plain", false, b"hi".to_vec())
            .await
            .status(),
        415
    );

    // OTLP/JSON nested deeper than the wire validator allows: a clear 400, not a crash.
    let mut nested = serde_json::json!({"stringValue": "leaf"});
    for _ in 0..40 {
        nested = serde_json::json!({"arrayValue": {"values": [nested]}});
    }
    let deep = serde_json::json!({"resourceSpans": [{"resource": {"attributes": [{"key": "k", "value": nested}]},
        "scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}]}]}]});
    let response = post(
        http,
        "application/json",
        false,
        serde_json::to_vec(&deep).unwrap(),
    )
    .await;
    assert_eq!(response.status(), 400);

    // A gzip body of two members (concatenated gzip streams) is read whole.
    let first = request("svc", "s", vec![rich_span(6, 0)]).encode_to_vec();
    let second = request("svc", "s", vec![rich_span(6, 1)]).encode_to_vec();
    let two_members = [gzip(&first), gzip(&second)].concat();
    let response = tracetopics::config::tls::http_client()
        .post(format!("http://{http}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(two_members)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // A small gzip request still goes through.
    let ok = request("svc", "s", vec![rich_span(5, 0)]).encode_to_vec();
    assert_eq!(
        post(http, "application/x-protobuf", true, ok)
            .await
            .status(),
        200
    );
    assert_eq!(
        sink.wait_for_spans(3, WAIT).await,
        3,
        "1 + both members of the two-member body"
    );

    // Every refused request is counted once, by transport and reason — gRPC's oversize ones
    // too, though tonic refuses them before the handler runs.
    let text = metrics_text(sidecar.addresses.metrics).await;
    let failed = |transport: &str, reason: &str| {
        metric(
            &text,
            &format!(
                "tracetopics_receiver_failed_requests_total{{transport=\"{transport}\",reason=\"{reason}\"}}"
            ),
        )
    };
    assert_eq!(failed("grpc", "too_large"), 2.0, "{text}");
    assert_eq!(failed("grpc", "undecodable"), 1.0, "{text}");
    assert_eq!(failed("http", "too_large"), 2.0, "{text}");
    assert_eq!(failed("http", "unsupported"), 1.0, "{text}");
    assert!(failed("http", "undecodable") >= 5.0, "{text}");
    sidecar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn individually_invalid_spans_are_rejected_through_partial_success() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let sidecar = Sidecar::start(config(dir.path(), sink.addr)).await.unwrap();
    let http = sidecar.addresses.http.unwrap();

    let mut zero_trace = rich_span(1, 1);
    zero_trace.trace_id = vec![0; 16];
    let mut short_span = rich_span(1, 2);
    short_span.span_id = vec![1, 2];
    let req = request("svc", "s", vec![rich_span(1, 0), zero_trace, short_span]);
    let mut client = grpc_client(sidecar.addresses.grpc.unwrap()).await;
    let response = client.export(req.clone()).await.unwrap().into_inner();
    let partial = response.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial.error_message.contains("trace id"),
        "{}",
        partial.error_message
    );

    let response = post(http, "application/x-protobuf", false, req.encode_to_vec()).await;
    assert_eq!(response.status(), 200);
    let decoded = ExportTraceServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(decoded.partial_success.unwrap().rejected_spans, 2);

    // JSON: an id that is not hex rejects just that span.
    let json = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[
        {"traceId":"zz000000000000000000000000000001","spanId":"0000000000000001","name":"bad"},
        {"traceId":"0000000000000000000000000000aBcD","spanId":"00000000000000F1","name":"good"}]}]}]}"#;
    let response = post(http, "application/json", false, json.to_vec()).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["partialSuccess"]["rejectedSpans"], "1");

    // Bad UTF-8 inside one span rejects that span only; its neighbour is delivered.
    let mut corrupt = rich_span(3, 0);
    corrupt.name = "Z~Z~".into();
    let mut bytes = request("svc", "s", vec![rich_span(3, 1), corrupt]).encode_to_vec();
    let at = bytes.windows(4).position(|w| w == b"Z~Z~").unwrap();
    bytes[at + 1] = 0xff;
    let response = post(http, "application/x-protobuf", false, bytes).await;
    assert_eq!(response.status(), 200);
    let decoded = ExportTraceServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    let partial = decoded.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("UTF-8"),
        "{}",
        partial.error_message
    );

    // Full success leaves partial_success unset.
    let response = client
        .export(request("svc", "s", vec![rich_span(2, 0)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.partial_success, None);

    // The valid spans all arrive: 1 + 1 (gRPC, HTTP: same span twice, different requests) + 1
    // (JSON) + 1 (beside the bad UTF-8) + 1.
    assert_eq!(sink.wait_for_spans(5, WAIT).await, 5);
    let text = metrics_text(sidecar.addresses.metrics).await;
    assert_eq!(
        metric(
            &text,
            "tracetopics_receiver_rejected_spans_total{transport=\"http\"}"
        ),
        4.0
    );
    sidecar.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_pushes_back_with_retryable_errors_and_drops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let mut config = config(dir.path(), sink.addr);
    config.assembler.max_traces = 2;
    config.assembler.idle_wait = tracetopics::config::types::HumanDuration::from_secs(3600);
    let sidecar = Sidecar::start(config).await.unwrap();
    let mut client = grpc_client(sidecar.addresses.grpc.unwrap()).await;
    let http = sidecar.addresses.http.unwrap();

    client
        .export(request("svc", "s", vec![rich_span(1, 0)]))
        .await
        .unwrap();
    client
        .export(request("svc", "s", vec![rich_span(2, 0)]))
        .await
        .unwrap();
    // A span of a buffered trace still fits.
    client
        .export(request("svc", "s", vec![rich_span(2, 1)]))
        .await
        .unwrap();

    let refused = client
        .export(request("svc", "s", vec![rich_span(3, 0)]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert!(
        tracetopics::otlp::status::grpc_retry_delay(&refused).is_some(),
        "RetryInfo attached"
    );
    let response = post(
        http,
        "application/x-protobuf",
        false,
        request("svc", "s", vec![rich_span(4, 0)]).encode_to_vec(),
    )
    .await;
    assert_eq!(response.status(), 503);
    assert!(
        response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );

    let text = metrics_text(sidecar.addresses.metrics).await;
    assert_eq!(
        metric(
            &text,
            "tracetopics_receiver_refused_spans_total{transport=\"grpc\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "tracetopics_receiver_refused_spans_total{transport=\"http\"}"
        ),
        1.0
    );
    assert_eq!(metric(&text, "tracetopics_assembler_traces_in_flight"), 2.0);

    // Shutdown releases the buffered traces: every accepted span arrives.
    let report = sidecar.shutdown().await;
    assert!(report.drained);
    assert_eq!(sink.wait_for_spans(3, WAIT).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sending_queue_pushes_back_too() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens downstream: spans stay queued.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = config(dir.path(), closed);
    config.exporters.otlp.sending_queue.queue_size = 3;
    config.service.shutdown_timeout = tracetopics::config::types::HumanDuration::from_millis(300);
    config.assembler.idle_wait = tracetopics::config::types::HumanDuration::from_millis(10);
    let sidecar = Sidecar::start(config).await.unwrap();
    let mut client = grpc_client(sidecar.addresses.grpc.unwrap()).await;
    client
        .export(request("svc", "s", vec![rich_span(1, 0), rich_span(1, 1)]))
        .await
        .unwrap();
    let refused = client
        .export(request("svc", "s", vec![rich_span(2, 0), rich_span(2, 1)]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert!(refused.message().contains("queue"), "{}", refused.message());
    // A request bigger than the whole queue can never fit: refused as non-retryable.
    let spans: Vec<_> = (0..4).map(|i| rich_span(9, i)).collect();
    let too_big = client
        .export(request("svc", "s", spans.clone()))
        .await
        .unwrap_err();
    assert_eq!(too_big.code(), Code::ResourceExhausted);
    assert_eq!(
        tracetopics::otlp::status::grpc_retry_delay(&too_big),
        None,
        "no RetryInfo: do not retry"
    );
    let response = post(
        sidecar.addresses.http.unwrap(),
        "application/x-protobuf",
        false,
        request("svc", "s", spans).encode_to_vec(),
    )
    .await;
    assert_eq!(response.status(), 413);
    let report = sidecar.shutdown().await;
    assert!(!report.drained);
    assert_eq!(report.spans_left, 2, "undelivered spans stay in storage");
}
