//! Spans wait for their trace's facets and leave carrying them: on the root span (or every
//! span), at most `max_enrichment_delay` late, and never lost when the model is slow or down.

mod common;

use common::openai::{ModelServer, Scripted, chat_reply, embedding_reply};
use common::*;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::Value;
use std::time::Duration;
use tracetopics::Sidecar;
use tracetopics::classify::config::EnrichMode;
use tracetopics::config::types::HumanDuration;
use tracetopics::model::ModelConfig;

const WAIT: Duration = Duration::from_secs(20);

fn answers(_: &str, body: &Value) -> Value {
    if body.get("input").is_some() {
        return embedding_reply(body, 16);
    }
    chat_reply(
        // The conversations hold an error span ("boom"): an Issues NONE would be asked again.
        r#"{"task": "Find out where a refund is", "sentiment": "NEGATIVE: The user waited two weeks.", "issues": "A child operation failed with boom"}"#,
        100,
    )
}

fn remote(server: &ModelServer, timeout: Duration) -> ModelConfig {
    ModelConfig {
        timeout: HumanDuration(timeout),
        ..server.model_config()
    }
}

/// A root span with the conversation and two children.
fn conversation(trace: u32) -> Vec<Span> {
    let mut root = rich_span(trace, 0);
    root.events.clear();
    root.attributes = vec![
        string_attr("gen_ai.operation.name", "chat"),
        string_attr(
            "gen_ai.input.messages",
            r#"[{"role":"user","content":"Where is my refund? I have waited two weeks."}]"#,
        ),
    ];
    vec![root, rich_span(trace, 1), rich_span(trace, 2)]
}

fn string_value(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            Any::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

fn topic_keys(span: &Span) -> usize {
    span.attributes
        .iter()
        .filter(|a| a.key.starts_with("tracetopics."))
        .count()
}

async fn run(
    enrich: EnrichMode,
    delay: Duration,
    server: &ModelServer,
    model_timeout: Duration,
    send: Vec<Vec<Span>>,
    expect_spans: usize,
) -> (Vec<Span>, String) {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let mut config = config(dir.path(), sink.addr);
    config.models.facets = remote(server, model_timeout);
    config.models.embeddings = remote(server, model_timeout);
    config.facets.retry_backoff = HumanDuration::from_secs(60);
    config.classify.enrich = enrich;
    config.classify.max_enrichment_delay = HumanDuration(delay);
    let sidecar = Sidecar::start(config).await.unwrap();
    let mut client = grpc_client(sidecar.addresses.grpc.unwrap()).await;
    let mut sent = 0;
    for spans in send {
        sent += spans.len();
        client.export(request("shop", "s", spans)).await.unwrap();
        // Each batch is its own released trace or a late part of one: wait until it is out.
        assert_eq!(sink.wait_for_spans(sent, WAIT).await, sent);
    }
    assert_eq!(sink.wait_for_spans(expect_spans, WAIT).await, expect_spans);
    let text = metrics_text(sidecar.addresses.metrics).await;
    sidecar.shutdown().await;
    (sink.spans().into_iter().map(|(_, _, s)| s).collect(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_span_carries_the_facet_summaries() {
    let server = ModelServer::start(answers).await;
    let (spans, text) = run(
        EnrichMode::Root,
        Duration::from_secs(30),
        &server,
        Duration::from_secs(10),
        vec![conversation(1)],
        3,
    )
    .await;
    let root = spans.iter().find(|s| s.parent_span_id.is_empty()).unwrap();
    assert_eq!(
        string_value(root, "tracetopics.facet.task").as_deref(),
        Some("Find out where a refund is")
    );
    assert_eq!(
        string_value(root, "tracetopics.facet.sentiment").as_deref(),
        Some("NEGATIVE: The user waited two weeks.")
    );
    assert_eq!(
        string_value(root, "gen_ai.operation.name").as_deref(),
        Some("chat"),
        "the span's own attributes are kept"
    );
    for child in spans.iter().filter(|s| !s.parent_span_id.is_empty()) {
        assert_eq!(topic_keys(child), 0, "children are left alone in root mode");
    }
    assert_eq!(
        metric(
            &text,
            "tracetopics_enrichment_traces_total{reason=\"enriched\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_span_in_all_mode_and_late_spans_from_the_earlier_result() {
    let server = ModelServer::start(answers).await;
    let mut late = rich_span(4, 7);
    late.parent_span_id = common::span_id(4, 0);
    let (spans, text) = run(
        EnrichMode::All,
        Duration::from_secs(30),
        &server,
        Duration::from_secs(10),
        vec![conversation(4), vec![late]],
        4,
    )
    .await;
    // Three summaries and sentiment's label.
    assert!(spans.iter().all(|s| topic_keys(s) == 4), "{spans:#?}");
    assert_eq!(
        metric(&text, "tracetopics_enrichment_late_spans_total"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_model_delays_spans_by_at_most_the_limit() {
    let server = ModelServer::start(answers).await;
    // The facet call takes far longer than spans may wait.
    server.script([Scripted::Delay(Duration::from_secs(5))]);
    let (spans, text) = run(
        EnrichMode::Root,
        Duration::from_millis(300),
        &server,
        Duration::from_secs(30),
        vec![conversation(2)],
        3,
    )
    .await;
    assert!(spans.iter().all(|s| topic_keys(s) == 0));
    assert_eq!(
        metric(
            &text,
            "tracetopics_enrichment_traces_total{reason=\"timeout\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_is_down_releases_spans_at_once_without_attributes() {
    let server = ModelServer::start(answers).await;
    server.script((0..4).map(|_| Scripted::Status(503, None)));
    // A delay far beyond the test's patience: only the ticket coming back can release them.
    let (spans, text) = run(
        EnrichMode::Root,
        Duration::from_secs(3600),
        &server,
        Duration::from_secs(10),
        vec![conversation(3)],
        3,
    )
    .await;
    assert!(spans.iter().all(|s| topic_keys(s) == 0));
    assert_eq!(
        metric(
            &text,
            "tracetopics_enrichment_traces_total{reason=\"without_attributes\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrich_none_exports_without_waiting_or_attributes() {
    let server = ModelServer::start(answers).await;
    let (spans, text) = run(
        EnrichMode::None,
        Duration::from_secs(3600),
        &server,
        Duration::from_secs(10),
        vec![conversation(5)],
        3,
    )
    .await;
    assert!(spans.iter().all(|s| topic_keys(s) == 0));
    assert!(!text.contains("tracetopics_enrichment_traces_total{"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_arriving_after_a_restart_get_the_stored_topics() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(SinkBehaviour::default()).await;
    let server = ModelServer::start(answers).await;
    let mut config = config(dir.path(), sink.addr);
    config.models.facets = remote(&server, Duration::from_secs(10));
    config.models.embeddings = remote(&server, Duration::from_secs(10));
    config.classify.enrich = EnrichMode::All;
    let sidecar = Sidecar::start(config.clone()).await.unwrap();
    let mut client = grpc_client(sidecar.addresses.grpc.unwrap()).await;
    client
        .export(request("shop", "s", conversation(6)))
        .await
        .unwrap();
    assert_eq!(sink.wait_for_spans(3, WAIT).await, 3);
    sidecar.shutdown().await;

    // After the restart nothing in memory knows trace 6: its straggler is assembled as a trace
    // of its own, with no conversation to facet, and gets the stored summaries.
    let sidecar = Sidecar::start(config).await.unwrap();
    let mut client = grpc_client(sidecar.addresses.grpc.unwrap()).await;
    let mut straggler = rich_span(6, 9);
    straggler.events.clear();
    straggler.attributes.clear();
    client
        .export(request("shop", "s", vec![straggler]))
        .await
        .unwrap();
    assert_eq!(sink.wait_for_spans(4, WAIT).await, 4);
    sidecar.shutdown().await;
    let spans: Vec<Span> = sink.spans().into_iter().map(|(_, _, s)| s).collect();
    let late = spans
        .iter()
        .find(|s| s.span_id == common::span_id(6, 9))
        .unwrap();
    assert_eq!(
        string_value(late, "tracetopics.facet.task").as_deref(),
        Some("Find out where a refund is")
    );
    assert_eq!(
        server.wait_for_requests(2, WAIT).await,
        2,
        "no second facet call"
    );
}
